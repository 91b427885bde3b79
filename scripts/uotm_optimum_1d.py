#!/usr/bin/env python3
"""The exact optimum of UOTM's semi-dual problem on 1-D outlier targets, on grids.

For data 0.99 N(1, 0.1^2) + 0.01 N(o, 0.1^2), source N(m, s^2) and cost tau |x - y|^2, minimises the
convex semi-dual J(v) = sum_x mu(x) Psi1*(max_y [v(y) - c(x, y)]) + sum_y nu(y) Psi2*(-v(y)) over v
on a y grid (L-BFGS on a soft-max of temperature min(1e-3, tau / 50)), then reports what the optimal map
T(x) = argmax_y [v(y) - c(x, y)] does with the source: the share of mu it sends to the outlier side
(the generator's outlier mass at the optimum) and the mean and std of the rest. Needs torch.

    python3 scripts/uotm_optimum_1d.py            # the table of docs/methods/uotm.md

tests/ot/test_semidual_optimum.cpp checks three of these numbers with uotflow's own conjugates.
"""
import torch

torch.set_default_dtype(torch.float64)
CONJUGATES = {"kl": lambda s: torch.exp(s) - 1, "linear": lambda s: s}


def optimum(tau, phi="kl", outlier=-1.0, source_mean=0.0, source_std=1.0, ny=241, nx=1201):
    y = torch.linspace(min(outlier, 1.0) - 0.6, max(outlier, 1.0) + 0.6, ny)

    def gaussian(t, mean, std):
        d = torch.exp(-0.5 * ((t - mean) / std) ** 2)
        return d / d.sum()

    nu = 0.99 * gaussian(y, 1.0, 0.1) + 0.01 * gaussian(y, outlier, 0.1)
    x = torch.linspace(source_mean - 6 * source_std, source_mean + 6 * source_std, nx)
    mu = gaussian(x, source_mean, source_std)
    cost = tau * (x[:, None] - y[None, :]) ** 2
    psi = CONJUGATES[phi]
    temperature = min(1e-3, 0.02 * tau)  # well below the cost differences between grid points
    v = torch.zeros(ny, requires_grad=True)
    opt = torch.optim.LBFGS([v], lr=1, max_iter=3000, tolerance_grad=1e-12, tolerance_change=1e-15,
                            history_size=30, line_search_fn="strong_wolfe")

    def objective():
        opt.zero_grad()
        c_transform = temperature * torch.logsumexp((v[None, :] - cost) / temperature, 1)
        value = (mu * psi(c_transform)).sum() + (nu * psi(-v)).sum()
        value.backward()
        return value

    opt.step(objective)
    with torch.no_grad():
        target = y[torch.argmax(v[None, :] - cost, 1)]
        side = target < (outlier + 1) / 2
        inl = ~side
        mean = (mu[inl] * target[inl]).sum() / mu[inl].sum()
        std = ((mu[inl] * (target[inl] - mean) ** 2).sum() / mu[inl].sum()).sqrt()
    return mu[side].sum().item(), mean.item(), std.item()


def main():
    print("| source | outliers at | conjugates | cost_scale | T#mu on the outliers | inlier mean / std |")
    print("|---|---|---|---|---|---|")
    rows = [("N(0, 1)", -1.0, 0.0, 1.0, phi, tau)
            for phi, taus in (("linear", [0.05]), ("kl", [0.001, 0.01, 0.03, 0.05, 0.1, 0.3, 1.0]))
            for tau in taus]
    rows += [("N(1, 0.5^2)", -3.0, 1.0, 0.5, phi, tau) for phi, tau in
             (("linear", 0.5), ("kl", 0.05), ("kl", 0.5))]
    for name, outlier, m, s, phi, tau in rows:
        mass, mean, std = optimum(tau, phi, outlier, m, s)
        print(f"| {name} | {outlier:g} | {phi} | {tau:g} | {mass:.4f} | {mean:.3f} / {std:.3f} |",
              flush=True)


if __name__ == "__main__":
    main()

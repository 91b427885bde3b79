#!/usr/bin/python3
"""One inner iteration of the SWGF JKO step (RealNVP flow, KL to a Gaussian) in plain PyTorch: the side-by-side
baseline for bench/bench_swgf_step.cpp, following the reference algorithm (weighted quantile 1-D OT).

Prints one JSON line: {"impl": "python", "median_s": ..., ...}. Run with Debian's /usr/bin/python3.
"""
import argparse
import copy
import json
import math

import torch
from torch import nn

from timing import median_seconds

TAU = 0.05
LR = 1e-3


def mlp(d_in, width, d_out):
    return nn.Sequential(nn.Linear(d_in, width), nn.LeakyReLU(), nn.Linear(width, width), nn.LeakyReLU(),
                         nn.Linear(width, d_out))


class Coupling(nn.Module):
    """Affine coupling: the first half passes through, the second is scaled by exp(tanh(s)) and shifted."""

    def __init__(self, d, width):
        super().__init__()
        self.k = d // 2
        self.scale = mlp(self.k, width, d - self.k)
        self.shift = mlp(self.k, width, d - self.k)

    def forward(self, z):
        z1, z2 = z[:, :self.k], z[:, self.k:]
        s = torch.tanh(self.scale(z1))
        return torch.cat([z1, z2 * torch.exp(s) + self.shift(z1)], 1), s.sum(1)


class RealNVP(nn.Module):
    """Couplings with a Reverse permutation (coordinate flip) between them; z -> (x, log|det dx/dz|)."""

    def __init__(self, d, couplings, width):
        super().__init__()
        self.layers = nn.ModuleList(Coupling(d, width) for _ in range(couplings))

    def forward(self, z):
        logdet = torch.zeros(z.shape[0], dtype=z.dtype)
        for i, layer in enumerate(self.layers):
            if i > 0:
                z = z.flip(1)
            z, ld = layer(z)
            logdet = logdet + ld
        return z, logdet


def w2sq_weighted(u, v):
    """Per row of u (L, n) and v (L, m): W2^2 between uniform empirical measures through the quantile functions,
    as the reference computes it for general weights."""
    n, m = u.shape[1], v.shape[1]
    wu = torch.full((n,), 1.0 / n, dtype=u.dtype)
    wv = torch.full((m,), 1.0 / m, dtype=v.dtype)
    u, iu = torch.sort(u, -1)
    v, iv = torch.sort(v, -1)
    cu = torch.cumsum(wu[iu], -1)
    cv = torch.cumsum(wv[iv], -1)
    levels, _ = torch.sort(torch.cat([cu, cv], -1), -1)
    qu = torch.gather(u, 1, torch.searchsorted(cu, levels).clamp(0, n - 1))
    qv = torch.gather(v, 1, torch.searchsorted(cv, levels).clamp(0, m - 1))
    delta = torch.diff(levels, dim=-1, prepend=torch.zeros_like(levels[:, :1]))
    return (delta * (qu - qv).pow(2)).sum(-1)


def w2sq_sorted(u, v):
    """Equal-size uniform samples: mean squared difference of the two sorted rows."""
    return (torch.sort(u, -1)[0] - torch.sort(v, -1)[0]).pow(2).mean(-1)


def directions(L, d, dtype=torch.float32):
    theta = torch.randn(L, d, dtype=dtype)
    return theta / theta.norm(dim=1, keepdim=True)


def sw2sq(x, y, theta, mode):
    w2 = w2sq_weighted if mode == "weighted" else w2sq_sorted
    return w2(theta @ x.T, theta @ y.T).mean()


class SwgfStep:
    def __init__(self, args):
        torch.manual_seed(args.seed)
        d = self.d = args.dim
        self.args = args
        q, _ = torch.linalg.qr(torch.randn(d, d))
        self.A = q @ torch.diag(torch.rand(d) * 1.5 + 0.25) @ q.T  # SPD, eigenvalues in [0.25, 1.75]
        self.b = torch.randn(d)
        self.flow = RealNVP(d, args.couplings, args.width)
        self.old = copy.deepcopy(self.flow)  # previous JKO step: frozen reference
        for p in self.old.parameters():
            p.requires_grad_(False)
        self.opt = torch.optim.Adam(self.flow.parameters(), lr=LR)

    def functional(self, x, z, logdet):
        """KL to N(b, A^-1) up to a constant: E V(x) + E log rho(x), log rho(x) = log N(z) - log|det|."""
        r = x - self.b
        potential = 0.5 * ((r @ self.A) * r).sum(1)
        log_nz = -0.5 * z.pow(2).sum(1) - 0.5 * self.d * math.log(2 * math.pi)
        return (potential + log_nz - logdet).mean()

    def __call__(self):
        a = self.args
        z = torch.randn(a.batch, self.d)
        x, logdet = self.flow(z)
        with torch.no_grad():
            x_old, _ = self.old(torch.randn(a.batch, self.d))
        sw = sw2sq(x, x_old, directions(a.projections, self.d), a.mode)
        loss = sw + 2 * TAU * self.functional(x, z, logdet)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss.item()


def check(args):
    torch.manual_seed(args.seed)
    for dtype in (torch.float64, torch.float32):
        x = torch.randn(args.batch, args.dim, dtype=dtype)
        y = 0.5 * torch.randn(args.batch, args.dim, dtype=dtype) + 1.0
        theta = directions(args.projections, args.dim, dtype)
        w = sw2sq(x, y, theta, "weighted").item()
        s = sw2sq(x, y, theta, "sorted").item()
        rel = abs(w - s) / abs(s)
        if rel > 1e-5:
            raise AssertionError(f"{dtype}: weighted {w} vs sorted {s}, relative {rel:.2e}")
        print(f"ok {dtype}: weighted {w:.8f} sorted {s:.8f} relative {rel:.1e}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dim", type=int, default=10)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--projections", type=int, default=1000)
    parser.add_argument("--couplings", type=int, default=5)
    parser.add_argument("--width", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mode", choices=("weighted", "sorted"), default="weighted")
    parser.add_argument("--check", action="store_true", help="weighted vs sorted SW2^2 to 1e-5 relative, then exit")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.check:
        check(args)
        return

    step = SwgfStep(args)
    median_s, _ = median_seconds(step, args.iters, args.warmup)
    print(json.dumps({"impl": "python", "mode": args.mode, "dim": args.dim, "batch": args.batch,
                      "projections": args.projections, "median_s": median_s, "iters": args.iters,
                      "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()

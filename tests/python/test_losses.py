"""The differentiable functions of the Python module: gradcheck in float64 and closed forms."""
import math

import pytest
import torch
from torch.autograd import gradcheck

import uotflow


def test_sliced_wasserstein_loss_gradcheck():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randn(9, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda a, b: uotflow.sliced_wasserstein_loss(a, b, n_projections=20, seed=3),
                     (x, y), eps=1e-6, atol=1e-6)
    # SW_2^2 of the same directions: the metric squared.
    loss = uotflow.sliced_wasserstein_loss(x, y, n_projections=20, seed=3)
    metric = uotflow.sliced_wasserstein(x, y, n_projections=20, seed=3)
    assert loss.item() == pytest.approx(metric.item() ** 2, rel=1e-12)


@pytest.mark.parametrize("name", ["linear", "kl", "chi2", "softplus"])
def test_psi_star_gradcheck(name):
    s = torch.linspace(-1.5, 0.9, 17, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda t: uotflow.psi_star(name, t, marginal_weight=0.7), (s,), eps=1e-6)
    # Normalised: Psi*(0) = 0, Psi*'(0) = 1.
    zero = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    value = uotflow.psi_star(name, zero)
    (grad,) = torch.autograd.grad(value.sum(), zero)
    assert value.item() == pytest.approx(0, abs=1e-12)
    assert grad.item() == pytest.approx(1, abs=1e-12)


def test_kl_conjugate_closed_form():
    s = torch.tensor([-1.0, 0.0, 0.5], dtype=torch.float64)
    assert torch.allclose(uotflow.psi_star("kl", s), torch.exp(s) - 1)
    alpha = 2.0
    assert torch.allclose(uotflow.psi_star("kl", s, marginal_weight=alpha),
                          alpha * (torch.exp(s / alpha) - 1))


def test_semidual_losses():
    g = torch.Generator().manual_seed(1)
    v_fake = torch.randn(8, generator=g, dtype=torch.float64, requires_grad=True)
    cost = torch.rand(8, generator=g, dtype=torch.float64, requires_grad=True)
    v_real = torch.randn(6, generator=g, dtype=torch.float64, requires_grad=True)
    f = lambda a, c, r: uotflow.semidual_potential_loss(a, c, r, phi1="kl", phi2="chi2")
    assert gradcheck(f, (v_fake, cost, v_real), eps=1e-6)
    # E Psi1*(v - c) + E Psi2*(-v_real), with both linear: E[v - c] - E[v_real].
    lin = uotflow.semidual_potential_loss(v_fake, cost, v_real, phi1="linear", phi2="linear")
    assert lin.item() == pytest.approx((v_fake - cost).mean().item() - v_real.mean().item())
    kl = uotflow.semidual_potential_loss(v_fake, cost, v_real)
    ref = (torch.exp(v_fake - cost) - 1).mean() + (torch.exp(-v_real) - 1).mean()
    assert kl.item() == pytest.approx(ref.item(), rel=1e-12)
    gen = uotflow.semidual_generator_loss(v_fake, cost)
    assert gen.item() == pytest.approx((cost - v_fake).mean().item(), rel=1e-12)
    assert gradcheck(uotflow.semidual_generator_loss, (v_fake, cost), eps=1e-6)


def test_gradient_penalty_matches_autograd():
    g = torch.Generator().manual_seed(2)
    w = torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randn(10, 3, generator=g, dtype=torch.float64, requires_grad=True)
    v = torch.sin(y @ w)  # v(y), grad_y v = cos(y.w) w
    penalty = uotflow.gradient_penalty(v, y)
    ref = ((torch.cos(y @ w)[:, None] * w) ** 2).sum(1).mean()
    assert penalty.item() == pytest.approx(ref.item(), rel=1e-12)
    (dw,) = torch.autograd.grad(penalty, w)  # differentiable: it trains the potential
    (dw_ref,) = torch.autograd.grad(ref, w)
    assert torch.allclose(dw, dw_ref)
    assert math.isfinite(dw.sum().item())

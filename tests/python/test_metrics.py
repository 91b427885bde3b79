"""Metric parity of the Python module with POT and SciPy on random inputs, batching, NumPy-free
zero-copy passing, and the errors a bad input raises."""
import numpy as np
import ot
import pytest
import scipy.linalg
import scipy.spatial.distance as ssd
import torch

import uotflow


def clouds(n=300, m=250, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randn(m, d, generator=g, dtype=torch.float64) * 0.7 + 0.5
    return x, y


def weights(n, seed):
    w = torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + 0.1
    return w / w.sum()


@pytest.mark.parametrize("p", [1.0, 2.0])
def test_sliced_wasserstein_matches_pot(p):
    x, y = clouds()
    theta = uotflow.random_directions(3, 200, seed=4, dtype=torch.float64)
    assert theta.shape == (3, 200)
    ours = uotflow.sliced_wasserstein(x, y, p=p, directions=theta).item()
    # POT 0.8.2 divides by its n_projections argument even when given the projections: pass both.
    pot = ot.sliced_wasserstein_distance(x.numpy(), y.numpy(), n_projections=200, p=p,
                                         projections=theta.numpy())
    assert ours == pytest.approx(pot, rel=1e-10)
    # Weighted, N != M.
    a, b = weights(300, 1), weights(250, 2)
    ours = uotflow.sliced_wasserstein(x, y, p=p, weights_x=a, weights_y=b, directions=theta).item()
    pot = ot.sliced_wasserstein_distance(x.numpy(), y.numpy(), a.numpy(), b.numpy(),
                                         n_projections=200, p=p, projections=theta.numpy())
    assert ours == pytest.approx(pot, rel=1e-9)


def test_sliced_wasserstein_seeds_and_batches():
    x, y = clouds()
    one = uotflow.sliced_wasserstein(x, y, n_projections=100, seed=7)
    assert one.item() == uotflow.sliced_wasserstein(x, y, n_projections=100, seed=7).item()
    assert one.item() != uotflow.sliced_wasserstein(x, y, n_projections=100, seed=8).item()
    # The seeded directions are random_directions(D, L, seed) in the inputs' dtype.
    theta = uotflow.random_directions(3, 100, seed=7, dtype=torch.float64)
    assert one.item() == pytest.approx(
        uotflow.sliced_wasserstein(x, y, directions=theta).item(), rel=1e-12)
    batched = uotflow.sliced_wasserstein(torch.stack([x, x]), torch.stack([y, x[:250]]),
                                         n_projections=100, seed=7)
    assert batched.shape == (2,)
    assert batched[0].item() == pytest.approx(one.item(), rel=1e-12)


@pytest.mark.parametrize("p", [1.0, 2.0])
def test_exact_wasserstein_matches_pot(p):
    x, y = clouds(120, 90)
    a, b = weights(120, 3), weights(90, 4)
    cost = ssd.cdist(x.numpy(), y.numpy()) ** p
    pot = ot.emd2(a.numpy(), b.numpy(), cost) ** (1 / p)
    assert uotflow.wasserstein(x, y, p=p, weights_x=a, weights_y=b) == pytest.approx(pot, rel=1e-9)
    res = uotflow.exact_ot(a, b, torch.from_numpy(cost), return_plan=True)
    assert res["cost"] == pytest.approx(ot.emd2(a.numpy(), b.numpy(), cost), rel=1e-9)
    assert torch.allclose(res["plan"].sum(1), a, atol=1e-12)


def test_sinkhorn_matches_pot():
    x, y = clouds(80, 60)
    a, b = weights(80, 5), weights(60, 6)
    cost = ssd.cdist(x.numpy(), y.numpy(), "sqeuclidean")
    eps = 0.5
    # Balanced: fixed marginals make the entropy's reference measure a constant, so POT's plan
    # (reference 1) is the plan.
    ours = uotflow.sinkhorn(x, y, epsilon=eps, weights_x=a, weights_y=b, return_plan=True,
                            tolerance=1e-12, max_iter=20000)
    plan = ot.sinkhorn(a.numpy(), b.numpy(), cost, eps, method="sinkhorn_log", numItermax=20000,
                       stopThr=1e-13)
    assert np.allclose(ours["plan"].numpy(), plan, atol=1e-9)
    assert ours["transport_cost"].item() == pytest.approx((plan * cost).sum(), rel=1e-7)
    # OT_eps = <P, C> + eps KL(P | a x b) at the optimum.
    ab = np.outer(a.numpy(), b.numpy())
    ot_eps = (plan * cost).sum() + eps * (plan * np.log(plan / ab)).sum()
    assert ours["value"].item() == pytest.approx(ot_eps, rel=1e-6)
    # Unbalanced: POT's sinkhorn_unbalanced with cost C - eps (log a_i + log b_j).
    rho = 2.0
    ours = uotflow.sinkhorn(x, y, epsilon=eps, rho=rho, weights_x=a, weights_y=b,
                            return_plan=True, tolerance=1e-12, max_iter=20000)
    shifted = cost - eps * (np.log(a.numpy())[:, None] + np.log(b.numpy())[None, :])
    plan = ot.unbalanced.sinkhorn_unbalanced(a.numpy(), b.numpy(), shifted, eps, rho,
                                             numItermax=20000, stopThr=1e-14)
    assert np.allclose(ours["plan"].numpy(), plan, atol=1e-8)
    # For a cost matrix directly.
    again = uotflow.sinkhorn_cost(torch.from_numpy(cost), a, b, epsilon=eps, rho=rho,
                                  return_plan=True, tolerance=1e-12, max_iter=20000)
    assert torch.allclose(again["plan"], ours["plan"], atol=1e-10)


def test_sinkhorn_divergence():
    x, y = clouds(60, 50)
    eps = 1.0
    s = uotflow.sinkhorn_divergence(x, y, epsilon=eps, tolerance=1e-12, max_iter=20000).item()

    def ot_eps(u, v):
        c = ssd.cdist(u, v, "sqeuclidean")
        a, b = np.full(len(u), 1 / len(u)), np.full(len(v), 1 / len(v))
        plan = ot.sinkhorn(a, b, c, eps, method="sinkhorn_log", numItermax=20000, stopThr=1e-13)
        return (plan * c).sum() + eps * (plan * np.log(plan / np.outer(a, b))).sum()

    u, v = x.numpy(), y.numpy()
    ref = ot_eps(u, v) - (ot_eps(u, u) + ot_eps(v, v)) / 2
    assert s == pytest.approx(ref, rel=1e-5)
    assert uotflow.sinkhorn_divergence(x, x, epsilon=eps).item() == pytest.approx(0, abs=1e-10)


def test_mmd_energy_and_gaussians_match_scipy():
    x, y = clouds(200, 150)
    u, v = x.numpy(), y.numpy()
    s = [0.5, 1.0, 2.0]

    def k(p, q):
        d2 = ssd.cdist(p, q, "sqeuclidean")
        return sum(np.exp(-d2 / (2 * b * b)) for b in s)

    def u_mean(m):  # mean over i != j
        n = len(m)
        return (m.sum() - np.trace(m)) / (n * (n - 1))

    ref = u_mean(k(u, u)) + u_mean(k(v, v)) - 2 * k(u, v).mean()
    assert uotflow.mmd(x, y, kernel="gaussian", bandwidths=s) == pytest.approx(ref, rel=1e-10)
    energy = 2 * ssd.cdist(u, v).mean() - u_mean(ssd.cdist(u, u)) - u_mean(ssd.cdist(v, v))
    assert uotflow.energy(x, y) == pytest.approx(energy, rel=1e-10)
    # The sliced estimate is unbiased over directions: close with many of them.
    assert uotflow.energy(x, y, n_projections=20000, seed=1) == pytest.approx(energy, rel=0.05)
    # Gaussian W2 (Bures) between the moment fits, and the FID formula on features.
    mu, mv = u.mean(0), v.mean(0)
    cu, cv = np.cov(u, rowvar=False), np.cov(v, rowvar=False)
    root = scipy.linalg.sqrtm(cu)
    bures = np.sum((mu - mv) ** 2) + np.trace(cu + cv - 2 * scipy.linalg.sqrtm(root @ cv @ root))
    assert uotflow.gaussian_w2(x, y) == pytest.approx(np.sqrt(bures.real), rel=1e-8)
    assert uotflow.fid_from_features(x, y) == pytest.approx(bures.real, rel=1e-8)
    assert uotflow.metric("gauss_w2", x, y) == pytest.approx(np.sqrt(bures.real), rel=1e-8)


def test_tensors_cross_without_copies():
    s = torch.randn(1000, dtype=torch.float64)
    out = uotflow.psi_star("linear", s)  # Psi*(s) = s: the same tensor comes back
    assert out.data_ptr() == s.data_ptr()
    # Arguments are not copied either: an in-place change after a call is seen by the next call.
    x = torch.randn(100, 2)
    y = x.clone()
    assert uotflow.sliced_wasserstein(x, y, seed=0).item() == 0.0
    y.add_(1.0)
    assert uotflow.sliced_wasserstein(x, y, seed=0).item() == pytest.approx(1.0, rel=0.3)


def test_bad_input_raises_value_error_with_one_line():
    x = torch.randn(10, 2)
    with pytest.raises(ValueError) as e:
        uotflow.metric("no_such_metric", x, x)
    assert "no_such_metric" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ValueError):
        uotflow.sinkhorn(x, torch.randn(10, 3))
    with pytest.raises(ValueError):
        uotflow.psi_star("nope", x)


def test_help_names_shapes():
    doc = uotflow.sliced_wasserstein.__doc__
    assert "[N, D]" in doc and "n_projections" in doc
    assert "sinkhorn" in uotflow.__doc__


def test_numpy_arrays_are_accepted():
    x, y = clouds(100, 80)
    a = uotflow.sliced_wasserstein(x.numpy(), y.numpy(), n_projections=50, seed=1)
    assert a.item() == uotflow.sliced_wasserstein(x, y, n_projections=50, seed=1).item()
    assert uotflow.wasserstein(x.numpy(), y.numpy()) == uotflow.wasserstein(x, y)
    assert "Sliced Wasserstein" in uotflow.sliced_wasserstein.__doc__

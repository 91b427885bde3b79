"""A walk through uotflow's Python module: metrics next to POT, a loss in a loop of your own, UOTM
trained on a tensor in memory, then in a run directory that is continued.

    PYTHONPATH=build/python python3 examples/python_walkthrough.py [STEPS] [OUT_DIR]
"""
import sys
import tempfile

import torch

import uotflow

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 1500
out = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="uotflow-walkthrough-")
print("uotflow", uotflow.__version__, "| BLAS:", uotflow.info()["blas"])

# 1. Metrics on tensors (NumPy arrays: torch.from_numpy first).
torch.manual_seed(0)
x, y = torch.randn(5000, 2), torch.randn(5000, 2) * 0.5 + 1.0
print("SW2", uotflow.sliced_wasserstein(x, y, n_projections=500, seed=0).item())
print("W2 (exact, 1000 points)", uotflow.wasserstein(x[:1000], y[:1000]))
print("Sinkhorn divergence", uotflow.sinkhorn_divergence(x[:1000], y[:1000], epsilon=0.1).item())
try:
    import ot

    theta = uotflow.random_directions(2, 500, seed=0)
    print("  POT, same directions:",
          ot.sliced_wasserstein_distance(x.numpy(), y.numpy(), n_projections=500,
                                         projections=theta.numpy()))
except ImportError:
    pass

# 2. A differentiable loss in a loop of your own: move particles towards y along SW2^2.
z = torch.randn(2000, 2, requires_grad=True)
opt = torch.optim.Adam([z], lr=0.05)
for it in range(200):
    loss = uotflow.sliced_wasserstein_loss(z, y, n_projections=100, seed=it)
    opt.zero_grad()
    loss.backward()
    opt.step()
print("particles: SW2 to y after 200 steps", uotflow.sliced_wasserstein(z.detach(), y).item())

# 3. UOTM on a tensor, in memory: a ring with 2% far outliers.
angle = torch.rand(4000) * 6.2832
ring = torch.stack([angle.cos(), angle.sin()], 1) * 2 + 0.05 * torch.randn(4000, 2)
data = torch.cat([ring, torch.randn(80, 2) * 0.1 + 6.0])
config = {"method": "uotm", "loss": {"cost_scale": 0.1}, "train": {"lr_g": 1e-3, "lr_d": 1e-3},
          "eval": {"metrics": ["sw2"]}}
run = uotflow.train(config, data=data, out=None, steps=steps, seed=0, progress=False)
radius = run.sample(2000, seed=1).norm(dim=1)
print(f"in memory: mean radius {radius.mean():.3f}, mass near the outliers "
      f"{(radius > 4).float().mean():.4f}, last sw2 {run.evaluations[-1]['value']:.4f}")

# 4. The same in a run directory, stopped half-way and continued exactly.
run = uotflow.train(config, data=data, out=out, steps=steps, seed=0, progress=False, run=False)
run.step(steps // 2)
run.checkpoint()
where = run.dir
run.close()
run = uotflow.load_run(where, data=data, progress=False)
run.run()
print("run directory", run.dir, "at step", run.current_step)

#!/usr/bin/python3
"""The UOTM toy step of bench/bench_uotm_step.cpp written in plain PyTorch, as the Python baseline.

Same nets, losses, optimiser and settings as `uotflow train` with the reference toy config (batch 400,
ResNet-FC width 128 x 3 blocks, kl/kl, cost 0.1 * sum, R1 0.2, Adam 1e-4 betas (0.5, 0.9), EMA 0.999).
Prints one JSON line: {"it_per_s": ..., "steps": N, ...}. Run with Debian's /usr/bin/python3.
"""
import argparse
import copy
import json
import math
import time

import torch
from torch import nn

BATCH = 400
DIM = 2
WIDTH = 128
BLOCKS = 3
NZ = 2
COST_SCALE = 0.1
R1_GAMMA = 0.2
LR = 1e-4
BETAS = (0.5, 0.9)
EMA_DECAY = 0.999


class ResNetFC(nn.Module):
    """Linear(d, W), then blocks of [Linear(W, W) + SiLU] x 3 with h = (h + block(h)) / sqrt(2)."""

    def __init__(self, d, width, blocks):
        super().__init__()
        self.input = nn.Linear(d, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(*[m for _ in range(3) for m in (nn.Linear(width, width), nn.SiLU())])
            for _ in range(blocks))
        self.scale = 1.0 / math.sqrt(2.0)

    def forward(self, x):
        h = self.input(x)
        for block in self.blocks:
            h = (h + block(h)) * self.scale
        return h


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk = ResNetFC(DIM, WIDTH, BLOCKS)
        self.z_embed = nn.Sequential(nn.Linear(NZ, WIDTH), nn.SiLU(), nn.Linear(WIDTH, WIDTH))
        self.head = nn.Sequential(nn.Linear(WIDTH, WIDTH), nn.SiLU(), nn.Linear(WIDTH, DIM))

    def forward(self, x, z):
        return self.head(self.trunk(x) + self.z_embed(z))


class Potential(nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk = ResNetFC(DIM, WIDTH, BLOCKS)
        self.head = nn.Sequential(nn.Linear(WIDTH, WIDTH), nn.SiLU(), nn.Linear(WIDTH, 1))

    def forward(self, y):
        return self.head(self.trunk(y)).squeeze(-1)


def eight_gaussians(n, gen):
    """Centres on the circle of radius 2 sqrt(2), std 0.5 / sqrt(2)."""
    angle = torch.arange(8, dtype=torch.float32) * (math.pi / 4)
    centres = 2 * math.sqrt(2) * torch.stack([torch.cos(angle), torch.sin(angle)], 1)
    k = torch.randint(8, (n,), generator=gen)
    return centres[k] + (0.5 / math.sqrt(2)) * torch.randn(n, 2, generator=gen)


def cost(x, y):
    return COST_SCALE * (x - y).pow(2).sum(1)


class UotmStep:
    def __init__(self, seed=0, device="cpu"):
        """Batches are drawn on the CPU and copied to `device`, where the nets live."""
        torch.manual_seed(seed)
        self.device = torch.device(device)
        self.g = Generator().to(self.device)
        self.g_ema = copy.deepcopy(self.g)
        for p in self.g_ema.parameters():
            p.requires_grad_(False)
        self.v = Potential().to(self.device)
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=LR, betas=BETAS)
        self.opt_v = torch.optim.Adam(self.v.parameters(), lr=LR, betas=BETAS)
        self.data_gen = torch.Generator().manual_seed(seed)
        self.noise_gen = torch.Generator().manual_seed(seed + 1)
        self.g_params = list(self.g.parameters())
        self.ema_params = list(self.g_ema.parameters())

    def source(self):
        x = torch.randn(BATCH, DIM, generator=self.noise_gen)
        z = torch.randn(BATCH, NZ, generator=self.noise_gen)
        return x.to(self.device), z.to(self.device)

    def __call__(self):
        # Potential step: semi-dual loss (kl/kl) + R1 on real data.
        for p in self.v.parameters():
            p.requires_grad_(True)
        real = eight_gaussians(BATCH, self.data_gen).to(self.device)
        x, z = self.source()
        with torch.no_grad():
            fake = self.g(x, z)
        real.requires_grad_(True)
        v_real = self.v(real)
        v_fake = self.v(fake)
        loss_v = torch.expm1(v_fake - cost(x, fake)).mean() + torch.expm1(-v_real).mean()
        grad, = torch.autograd.grad(v_real.sum(), real, create_graph=True)
        r1 = grad.pow(2).sum(1).mean()
        total = loss_v + 0.5 * R1_GAMMA * r1
        self.opt_v.zero_grad()
        total.backward()
        self.opt_v.step()

        # Generator step against the fixed potential.
        for p in self.v.parameters():
            p.requires_grad_(False)
        x, z = self.source()
        fake = self.g(x, z)
        loss_g = (cost(x, fake) - self.v(fake)).mean()
        self.opt_g.zero_grad()
        loss_g.backward()
        self.opt_g.step()

        with torch.no_grad():
            torch._foreach_mul_(self.ema_params, EMA_DECAY)
            torch._foreach_add_(self.ema_params, self.g_params, alpha=1.0 - EMA_DECAY)
        return {"loss_v": loss_v.item(), "loss_g": loss_g.item(), "r1": r1.item()}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300, help="timed steps")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    step = UotmStep()
    for _ in range(args.warmup):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        out = step()
    elapsed = time.perf_counter() - start
    print(json.dumps({"it_per_s": args.steps / elapsed, "steps": args.steps, "seconds": elapsed,
                      "threads": torch.get_num_threads(), "torch": torch.__version__,
                      "loss_v": out["loss_v"], "loss_g": out["loss_g"]}))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""One inner iteration of SW-JKO as an image generator in plain PyTorch: the side-by-side baseline for
bench/bench_swgf_image_step.cpp. The same step: 1000 images of rho (28 x 28) from a DCGAN-style decoder
(Linear to 4 x 4, three transposed 4 x 4 convs with GroupNorm + SiLU, conv 3 x 3, tanh, cropped from 32 to 28),
SW2^2(rho, rho_k) / (2 tau) + SW2^2(rho, data) / 2 with L = 1000 fresh directions each (two sorts per
direction), Adam. The data are fixed random images.

Prints one JSON line: {"impl": "python", "median_s": ..., ...}. Run with Debian's /usr/bin/python3.
"""
import argparse
import copy
import json

import torch
from torch import nn

from timing import median_seconds

TAU = 5.0
LR = 1e-3


def groups(channels):
    return min(channels // 4, 32)


class Decoder(nn.Module):
    def __init__(self, width, nz):
        super().__init__()
        self.top = width << 3
        self.input = nn.Linear(nz, 16 * self.top)
        self.input_norm = nn.GroupNorm(groups(self.top), self.top)
        layers = []
        for level in (3, 2, 1):
            out = width << (level - 1)
            layers += [nn.ConvTranspose2d(width << level, out, 4, stride=2, padding=1), nn.GroupNorm(groups(out), out),
                       nn.SiLU()]
        self.up = nn.Sequential(*layers)
        self.output = nn.Conv2d(width, 1, 3, padding=1)

    def forward(self, z):
        h = nn.functional.silu(self.input_norm(self.input(z).view(-1, self.top, 4, 4)))
        x = torch.tanh(self.output(self.up(h)))
        return x[:, :, 2:30, 2:30].reshape(z.shape[0], -1)


def sw2sq(x, y, theta):
    """Equal-size uniform samples: mean over directions of the mean squared difference of the sorted rows."""
    return (torch.sort(theta @ x.T, -1)[0] - torch.sort(theta @ y.T, -1)[0]).pow(2).mean()


def directions(L, d):
    theta = torch.randn(L, d)
    return theta / theta.norm(dim=1, keepdim=True)


class Step:
    def __init__(self, args):
        torch.manual_seed(args.seed)
        self.args = args
        self.data = torch.rand(10000, 784) * 2 - 1
        self.net = Decoder(args.width, args.nz)
        self.old = copy.deepcopy(self.net)  # previous JKO step: frozen reference
        for p in self.old.parameters():
            p.requires_grad_(False)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=LR)

    def __call__(self):
        a = self.args
        x = self.net(torch.randn(a.batch, a.nz))
        with torch.no_grad():
            x_old = self.old(torch.randn(a.batch, a.nz))
        y = self.data[torch.randint(self.data.shape[0], (a.batch,))]
        loss = sw2sq(x, x_old, directions(a.projections, 784)) / (2 * TAU) + \
            0.5 * sw2sq(x, y, directions(a.projections, 784))
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss.item()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--projections", type=int, default=1000)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--nz", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    step = Step(args)
    median_s, _ = median_seconds(step, args.iters, args.warmup)
    print(json.dumps({"impl": "python", "batch": args.batch, "projections": args.projections, "width": args.width,
                      "nz": args.nz, "median_s": median_s, "iters": args.iters,
                      "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()

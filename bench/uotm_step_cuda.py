#!/usr/bin/env python3
"""The UOTM toy step of bench/cuda/bench_cuda_graph.cpp in PyTorch on CUDA: the same three versions.

  method  uotm_step.UotmStep on the GPU: batches drawn on the CPU and copied over, PyTorch's default
          Adam (foreach on CUDA), three host syncs for the logged losses;
  eager   a static step: batches drawn on the GPU into fixed buffers, Adam(fused=True, capturable=True),
          foreach EMA, no sync;
  graph   the static step captured with torch.cuda.graph and replayed (batches drawn outside the graph).

Same nets, losses and settings as bench/uotm_step.py. Before timing, eager and graph run side by side from
the same weights on the same batches and must agree. Prints a table, then one JSON line of medians.
"""
import argparse
import copy
import json
import math
import statistics
import time

import torch

from uotm_step import (BATCH, BETAS, DIM, EMA_DECAY, LR, NZ, R1_GAMMA, Generator, Potential, UotmStep,
                       cost)


class StaticStep:
    def __init__(self, device, seed=0):
        torch.manual_seed(seed)
        self.g = Generator().to(device)
        self.g_ema = copy.deepcopy(self.g)
        for p in self.g_ema.parameters():
            p.requires_grad_(False)
        self.v = Potential().to(device)
        adam = dict(lr=LR, betas=BETAS, fused=True, capturable=True)
        self.opt_g = torch.optim.Adam(self.g.parameters(), **adam)
        self.opt_v = torch.optim.Adam(self.v.parameters(), **adam)
        self.g_params = list(self.g.parameters())
        self.ema_params = list(self.g_ema.parameters())
        self.real = torch.empty(BATCH, DIM, device=device)
        self.x_v = torch.empty(BATCH, DIM, device=device)
        self.z_v = torch.empty(BATCH, NZ, device=device)
        self.x_g = torch.empty(BATCH, DIM, device=device)
        self.z_g = torch.empty(BATCH, NZ, device=device)
        angle = torch.arange(8, dtype=torch.float32, device=device) * (math.pi / 4)
        self.centres = 2 * math.sqrt(2) * torch.stack([torch.cos(angle), torch.sin(angle)], 1)

    def buffers(self):
        return [self.real, self.x_v, self.z_v, self.x_g, self.z_g]

    @torch.no_grad()
    def draw(self):
        k = torch.randint(8, (BATCH,), device=self.real.device)
        self.real.copy_(self.centres[k] + (0.5 / math.sqrt(2)) * torch.randn_like(self.real))
        for t in self.buffers()[1:]:
            t.copy_(torch.randn_like(t))

    def copy_batches_from(self, other):
        for mine, theirs in zip(self.buffers(), other.buffers()):
            mine.copy_(theirs)

    def __call__(self):
        for p in self.v.parameters():
            p.requires_grad_(True)
        with torch.no_grad():
            fake = self.g(self.x_v, self.z_v)
        real = self.real.detach().requires_grad_(True)
        v_real = self.v(real)
        v_fake = self.v(fake)
        self.loss_v = torch.expm1(v_fake - cost(self.x_v, fake)).mean() + torch.expm1(-v_real).mean()
        grad, = torch.autograd.grad(v_real.sum(), real, create_graph=True)
        self.r1 = grad.pow(2).sum(1).mean()
        self.opt_v.zero_grad(set_to_none=True)
        (self.loss_v + 0.5 * R1_GAMMA * self.r1).backward()
        self.opt_v.step()

        for p in self.v.parameters():
            p.requires_grad_(False)
        fake = self.g(self.x_g, self.z_g)
        self.loss_g = (cost(self.x_g, fake) - self.v(fake)).mean()
        self.opt_g.zero_grad(set_to_none=True)
        self.loss_g.backward()
        self.opt_g.step()
        with torch.no_grad():
            torch._foreach_mul_(self.ema_params, EMA_DECAY)
            torch._foreach_add_(self.ema_params, self.g_params, alpha=1.0 - EMA_DECAY)

    def params(self):
        return self.g_params + self.ema_params + list(self.v.parameters())


def capture(step):
    """Warm-up on a side stream, then one step captured into a CUDA graph."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    torch.cuda.synchronize()
    return graph


def time_steps(one_step, steps, warmup):
    for _ in range(warmup):
        one_step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        one_step()
    torch.cuda.synchronize()
    return steps / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    device = torch.device("cuda")

    eager, graphed = StaticStep(device), StaticStep(device)
    graphed.draw()
    graph = capture(graphed)
    eager.copy_batches_from(graphed)
    for _ in range(3):  # the warm-up steps of capture(); the captured step was recorded, not run
        eager()
    for _ in range(10):
        eager.draw()
        graphed.copy_batches_from(eager)
        eager()
        graph.replay()
    torch.cuda.synchronize()
    diff = max(((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()
               for a, b in zip(graphed.params(), eager.params()))
    print(f"agreement after 13 steps: max relative weight difference {diff:.3g}")
    if not diff <= 1e-4:
        raise SystemExit("uotm_step_cuda: the graph replay disagrees with the eager step")

    method = UotmStep(device=device)

    def method_step():
        method()

    def eager_step():
        eager.draw()
        eager()

    def graph_step():
        graphed.draw()
        graph.replay()

    its = {"method": [], "eager": [], "graph": []}
    for _ in range(args.rounds):
        its["method"].append(time_steps(method_step, args.steps, args.warmup))
        its["eager"].append(time_steps(eager_step, args.steps, args.warmup))
        its["graph"].append(time_steps(graph_step, args.steps, args.warmup))
    print(f"UOTM toy step on cuda, PyTorch {torch.__version__}, {args.rounds} rounds of {args.steps} steps"
          f" (+{args.warmup} warm-up)")
    for name, values in its.items():
        m = statistics.median(values)
        print(f"{name:8} {m:10.1f} it/s  {1e3 / m:8.3f} ms/step   rounds: "
              + " ".join(f"{x:.1f}" for x in values))
    out = {name: statistics.median(values) for name, values in its.items()}
    out.update(agreement=diff, torch=torch.__version__)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

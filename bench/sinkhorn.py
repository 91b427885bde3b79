"""POT's ot.sinkhorn2 on the case of bench_sinkhorn.cpp: n = m = 2,000 points in d = 2 drawn from
torch's CPU generator seeded 0 (the same points as the C++ side), cost ot.dist (|x - y|^2) / max,
reg = 0.05 x mean cost, uniform weights; cost construction included in the time.

Prints one JSON line per case: {"case": ..., "ms": median milliseconds, "iterations": ...,
"transport_cost": ...}. Cases, for method='sinkhorn' (POT's default, the scaling algorithm with
NumPy matrix-vector products) and method='sinkhorn_log':
  fixed       --iters iterations, stopThr=0 (no early stopping)
  tol         stopThr=1e-9 on POT's criterion, the L2 norm of the column-marginal error
  tol_strict  stopThr=1e-9/sqrt(n): an L2 bound that implies L1 <= 1e-9, uotflow's criterion

--impl uotflow times uotflow's Python API instead (uotflow.sinkhorn_cost on
uotflow.squared_euclidean_cost, the fused float64 pass, no annealing: the call bench_sinkhorn's
fixed/f64/fused and tol/f64/fused cases make from C++), cases fixed/uotflow and tol/uotflow; it
needs PYTHONPATH=BUILD/python.
"""
import argparse
import json
import warnings

import numpy as np
import ot
import torch

from timing import median_seconds

parser = argparse.ArgumentParser()
parser.add_argument("--n", type=int, default=2000)
parser.add_argument("--iters", type=int, default=100)
parser.add_argument("--reps", type=int, default=3)
parser.add_argument("--methods", default="sinkhorn,sinkhorn_log")
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--impl", choices=["pot", "uotflow"], default="pot")
args = parser.parse_args()
torch.set_num_threads(args.threads)
warnings.simplefilter("ignore")  # "Sinkhorn did not converge" for the fixed-iteration cases

torch.manual_seed(0)
x = torch.randn(args.n, 2, dtype=torch.float64).numpy()
y = (torch.randn(args.n, 2, dtype=torch.float64) + 1.0).numpy()
a = np.full(args.n, 1.0 / args.n)


def solve(method, num_iter, stop):
    M = ot.dist(x, y)  # squared Euclidean
    M /= M.max()
    reg = 0.05 * M.mean()
    cost, log = ot.sinkhorn2(a, a, M, reg, method=method, numItermax=num_iter, stopThr=stop,
                             log=True)
    return float(cost), int(log.get("niter", num_iter - 1)) + 1




def solve_uotflow(num_iter, tol):
    import uotflow

    cmat = uotflow.squared_euclidean_cost(xt, yt)
    cmat.div_(cmat.max())
    r = uotflow.sinkhorn_cost(cmat, epsilon=0.05 * cmat.mean().item(), max_iter=num_iter,
                              tolerance=tol, epsilon_scaling=0.0)
    return r["transport_cost"].item(), r["iterations"]


def timed(name, solve, *solve_args):
    solve(*solve_args[:-2], 2, 0.0)  # warm-up (imports, allocations)
    seconds, (cost, iterations) = median_seconds(lambda: solve(*solve_args), args.reps)
    print(json.dumps({"case": name, "ms": 1000 * seconds, "iterations": iterations,
                      "transport_cost": cost}), flush=True)


if args.impl == "uotflow":
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    timed("fixed/uotflow", solve_uotflow, args.iters, 0.0)
    timed("tol/uotflow", solve_uotflow, 100000, 1e-9)
else:
    for method in args.methods.split(","):
        cases = (("fixed", args.iters, 0.0), ("tol", 100000, 1e-9),
                 ("tol_strict", 100000, 1e-9 / args.n ** 0.5))
        for name, num_iter, stop in cases:
            timed(f"{name}/{method}", solve, method, num_iter, stop)

"""The cases of bench_sliced.cpp from Python: POT's ot.sliced_wasserstein_distance with the torch
backend (--impl pot), or uotflow's Python API, the same C++ call as bench_sliced's (--impl uotflow;
needs PYTHONPATH=BUILD/python).

Prints one JSON line per dimension: {"d": D, "ms": median milliseconds per call}.
"""
import argparse
import json
import statistics
import time

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--reps", type=int, default=5)
parser.add_argument("--dims", default="2,100,1000")
parser.add_argument("--impl", choices=["pot", "uotflow"], default="pot")
args = parser.parse_args()
if args.impl == "pot":
    import ot

    def sliced(x, y, L, seed):
        return ot.sliced_wasserstein_distance(x, y, n_projections=L, p=2, seed=seed)
else:
    import uotflow

    def sliced(x, y, L, seed):
        return uotflow.sliced_wasserstein(x, y, n_projections=L, p=2, seed=seed)

torch.set_num_threads(1)
n, L = 10000, 1000
for d in (int(v) for v in args.dims.split(",")):
    torch.manual_seed(0)
    x = torch.randn(n, d)
    y = torch.randn(n, d) + 1.0
    sliced(x, y, L, 0)  # warm-up
    times = []
    for rep in range(args.reps):
        start = time.perf_counter()
        float(sliced(x, y, L, rep))
        times.append(1000 * (time.perf_counter() - start))
    print(json.dumps({"d": d, "ms": statistics.median(times)}), flush=True)

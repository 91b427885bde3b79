#!/usr/bin/python3
"""Exact W2 with POT (ot.dist + ot.emd2), the Python baseline of bench/bench_exact_ot.cpp.

x ~ N(0, I), y ~ N(1, I) in 2-D, n = m points with uniform weights, the same points as
bench_exact_ot.cpp (a counter-based generator both sides implement); the timed call builds the squared-distance matrix and solves (POT's network simplex,
numItermax raised so that it never stops early). --impl uotflow times uotflow's Python API on the
same points instead (uotflow.wasserstein: the call bench_exact_ot makes from C++; PYTHONPATH=BUILD/python).
Prints one JSON line per size: {"n": ..., "seconds": [...], "median_s": ..., "w2": ...}. Run with
Debian's /usr/bin/python3.
"""
import argparse
import json
import os
import statistics
import time

import numpy as np


def gaussians(count, seed):
    """Standard normals: splitmix64 of seed + k, then Box-Muller (as bench_exact_ot.cpp)."""
    with np.errstate(over="ignore"):
        k = np.arange(2 * count, dtype=np.uint64)
        z = np.uint64(seed) + (k + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = ((z >> np.uint64(11)) + np.uint64(1)).astype(np.float64) * 2.0 ** -53  # in (0, 1]
    return np.sqrt(-2.0 * np.log(u[0::2])) * np.cos(2.0 * np.pi * u[1::2])


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000])
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per size")
    parser.add_argument("--impl", choices=["pot", "uotflow"], default="pot")
    args = parser.parse_args()
    if os.environ.get("OMP_NUM_THREADS") != "1":
        print("exact_ot.py: set OMP_NUM_THREADS=1 for single-thread numbers", flush=True)
    import ot  # after the environment check: NumPy's BLAS reads the variable at import

    if args.impl == "uotflow":
        import torch

        import uotflow

        def w2_squared(a, b, x, y):
            return uotflow.wasserstein(torch.from_numpy(x), torch.from_numpy(y)) ** 2
    else:
        def w2_squared(a, b, x, y):
            return ot.emd2(a, b, ot.dist(x, y), numItermax=100_000_000)

    for n in args.sizes:
        x = gaussians(n * 2, 1).reshape(n, 2)
        y = gaussians(n * 2, 2).reshape(n, 2) + 1.0
        a = np.full(n, 1.0 / n)
        b = np.full(n, 1.0 / n)
        seconds, w2 = [], None
        for _ in range(args.repeats):
            start = time.perf_counter()
            cost = w2_squared(a, b, x, y)
            seconds.append(time.perf_counter() - start)
            w2 = float(np.sqrt(cost))
        print(json.dumps({"n": n, "seconds": seconds, "median_s": statistics.median(seconds),
                          "w2": w2}), flush=True)


if __name__ == "__main__":
    main()

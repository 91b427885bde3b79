#!/usr/bin/env bash
# The accuracy side of the JKO flows' comparison (docs/methods/comparison.md): the Fokker-Planck flow
# from N(0, I) towards N(b, A^-1) (A random SPD, b ~ N(0, I), the same seed-0 target for every
# method) in d dimensions, by S-JKO, SW-JKO (RealNVP) and JKO-ICNN, K = 10 JKO steps of 0.1 in
# W-time (SW-JKO: tau = 0.1 / d in SW-time, the dilation), several seeds. For each run: the KL of
# the samples' Gaussian fit to the closed form (the run's own ou_kl row) at t = 0.5 and t = 1, the
# symmetric KL at t = 1, and the training wall-clock (metrics.jsonl); then the medians and spreads
# over seeds, and `uotflow report` of seed 0's three runs (ou_kl against W-time, overlaid).
#
# The iterations per JKO step are set per method so that the runs take comparable wall-clock in
# d = 2 (the table states the measured times); ITERS_SJKO, ITERS_SWJKO and ITERS_ICNN change them,
# ICNN_LOG_DET=stochastic picks JKO-ICNN's stochastic log det.
# Usage: bash bench/compare_flows.sh [BUILD_DIR] (env: DIMS="2 8" SEEDS="0 1 2" OUT=compare-flows
# METHODS="sjko swjko jko_icnn";
# runs are added under OUT, the table reads the newest of each name)
set -euo pipefail

BUILD=${1:-build}
DIMS=${DIMS:-2 8}
SEEDS=${SEEDS:-0 1 2}
METHODS=${METHODS:-sjko swjko jko_icnn}
OUT=${OUT:-compare-flows}
ROUNDS=1
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_binary uotflow
CONFIGS=$HERE/../configs/flow

run_method() {  # METHOD DIM SEED
  local method=$1 d=$2 seed=$3 sets=()
  case $method in
    sjko)
      config=$CONFIGS/sjko_ou_d2.json
      sets=(data.params.dim="$d" data.params.seed=0 sjko.n_phases=10
            sjko.init_iterations="${ITERS_SJKO:-1500}" sjko.iterations="${ITERS_SJKO:-1500}"
            train.checkpoint_every=0) ;;
    swjko)
      config=$CONFIGS/swgf_ou_d2.json
      sets=(functional.params.target.params.dim="$d" swjko.n_phases=10
            swjko.jko_step_size="$("$PY" -c "print(0.1 / $d)")"
            swjko.iterations="${ITERS_SWJKO:-150}") ;;
    jko_icnn)
      config=$CONFIGS/jko_icnn_ou_d2.json
      sets=(functional.params.target.params.dim="$d" jko_icnn.n_phases=10
            jko_icnn.iterations="${ITERS_ICNN:-400}" jko_icnn.log_det="${ICNN_LOG_DET:-exact}") ;;
  esac
  local args=()
  for s in "${sets[@]}"; do args+=(--set "$s"); done
  "$BUILD/uotflow" flow --config "$config" --seed "$seed" "${args[@]}" --set eval.n=10000 \
    --out "$OUT/d$d" --name "$method-s$seed" >/dev/null
}

for d in $DIMS; do
  for seed in $SEEDS; do
    for method in $METHODS; do
      echo "d = $d, seed $seed: $method" >&2
      run_method "$method" "$d" "$seed"
    done
  done
done

"$PY" - "$OUT" "$METHODS" $DIMS <<'PY'
import json, pathlib, statistics, sys
import numpy as np
out, methods, dims = pathlib.Path(sys.argv[1]), sys.argv[2].split(), sys.argv[3:]

def rows(path):
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]

def exact(target, t):
    # The Fokker-Planck solution towards N(b, A^-1) from N(m0, S0) at W-time t (A = U diag(l) U^T).
    b, a = np.array(target["mean"]), np.array(target["precision"])
    m0, s0 = np.array(target["source"]["mean"]), np.array(target["source"]["covariance"])
    l, u = np.linalg.eigh(a)
    decay = u @ np.diag(np.exp(-t * l)) @ u.T
    return b + decay @ (m0 - b), decay @ s0 @ decay + u @ np.diag((1 - np.exp(-2 * t * l)) / l) @ u.T

def kl(m1, s1, m2, s2):  # KL(N(m1, s1) | N(m2, s2))
    inv = np.linalg.inv(s2)
    d = m2 - m1
    return 0.5 * (np.trace(inv @ s1) + d @ inv @ d - len(m1)
                  + np.linalg.slogdet(s2)[1] - np.linalg.slogdet(s1)[1])

def cell(v):
    if len(v) == 1:
        return f"{v[0]:.4f}"
    return f"{statistics.median(v):.4f} ({min(v):.4f}-{max(v):.4f})"

print("| d | method | seeds | KL at t = 0.5 | KL at t = 1 | symmetric KL at t = 1 | wall-clock s |")
print("|---|---|---|---|---|---|---|")
for d in dims:
    for method in methods:
        kl5, kl10, sym, secs = [], [], [], []
        newest = {run.name.split("-", 1)[1]: run for run in sorted((out / f"d{d}").glob(f"*-{method}-s*"))}
        for run in newest.values():
            ou = {round(r["time"], 6): r["value"] for r in rows(run / "eval.jsonl") if r["metric"] == "ou_kl"}
            kl5.append(ou.get(0.5, float("nan")))
            kl10.append(ou.get(1.0, float("nan")))
            last = sorted((run / "samples").glob("phase-*.npy"))[-1]
            x = np.load(last).astype(np.float64)
            fm, fs = x.mean(0), np.cov(x, rowvar=False)
            em, es = exact(json.loads((run / "target.json").read_text()), 1.0)
            sym.append(kl(fm, fs, em, es) + kl(em, es, fm, fs))
            secs.append(rows(run / "metrics.jsonl")[-1]["time"])
        print(f"| {d} | {method} | {len(secs)} | {cell(kl5)} | {cell(kl10)} | {cell(sym)} | {statistics.median(secs):.0f} |")
    # The floor: the same statistics of N draws of the exact solution itself (N as the runs: the
    # evaluation's for KL, the phase samples' for the symmetric KL), over 20 draws.
    target = json.loads((run / "target.json").read_text())
    n_eval, n_phase = rows(run / "eval.jsonl")[-1]["n"], len(x)
    rng = np.random.default_rng(0)
    def floor(t, n, symmetric):
        em, es = exact(target, t)
        values = []
        for _ in range(20):
            y = rng.multivariate_normal(em, es, size=n)
            fm, fs = y.mean(0), np.cov(y, rowvar=False)
            values.append(kl(fm, fs, em, es) + (kl(em, es, fm, fs) if symmetric else 0))
        return [statistics.median(values)]
    print(f"| {d} | exact solution (floor) | 20 draws | {cell(floor(0.5, n_eval, False))} | "
          f"{cell(floor(1.0, n_eval, False))} | {cell(floor(1.0, n_phase, True))} | |")
PY
runs=()
for method in $METHODS; do
  runs+=("$(ls -d "$OUT/d${DIMS%% *}"/*-"$method-s${SEEDS%% *}" | tail -1)")
done
"$BUILD/uotflow" report "${runs[@]}" --out "$OUT/report.html" --overwrite

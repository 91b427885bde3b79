#!/usr/bin/env bash
# One SW-JKO inner iteration at the reference settings (RealNVP 5 x 100, batch 1024, L = 1000,
# d = 10): uotflow (bench_swgf_step, equal-size sort path with its dedicated backward, and the same
# loss through autograd of torch::sort) against swgf_step.py following the
# reference algorithm (weighted quantile-function 1-D OT for every projection), 1 thread each,
# ROUNDS interleaved rounds, then the medians and their ratio. The weighted C++ path and the sorted
# Python path are timed too, to separate the algorithm from the implementation.
# Both sides keep freed memory (KEEP_FREED, see lib.sh): on this machine kind returning the
# iteration's buffers to the OS and faulting them in again costs more than the iteration's arithmetic.
# Usage: bash bench/compare_swgf.sh [BUILD_DIR]   (env: ROUNDS=3 ITERS=10 DIM=10 KEEP_FREED=1)
set -euo pipefail

BUILD=${1:-build}
ROUNDS=${ROUNDS:-3}
ITERS=${ITERS:-10}
DIM=${DIM:-10}
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_binary bench_swgf_step

run_cpp() {
  for mode in sorted sorted-autograd weighted; do
    "$BIN" --iters "$ITERS" --dim "$DIM" --mode "$mode" >>"$TMP/rows.jsonl"
  done
}
run_py() {
  for mode in weighted sorted; do
    "$PY" "$HERE/swgf_step.py" --iters "$ITERS" --dim "$DIM" --mode "$mode" | tail -1 >>"$TMP/rows.jsonl"
  done
}
interleave_rounds

"$PY" - "$TMP/rows.jsonl" <<'PYEOF'
import json, statistics, sys
times = {}
for line in open(sys.argv[1]):
    row = json.loads(line)
    times.setdefault((row["impl"], row["mode"]), []).append(row["median_s"])
med = {k: statistics.median(v) for k, v in times.items()}
ref = med[("python", "weighted")]
print(f"{'implementation':<28}{'s / iteration':>15}{'speed-up vs reference':>24}")
for key in [("python", "weighted"), ("python", "sorted"), ("uotflow", "weighted"),
            ("uotflow", "sorted-autograd"), ("uotflow", "sorted")]:
    print(f"{key[0] + ' (' + key[1] + ')':<28}{med[key]:15.4f}{ref / med[key]:23.2f}x")
PYEOF

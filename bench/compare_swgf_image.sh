#!/usr/bin/env bash
# One inner iteration of SW-JKO as an image generator at the paper's image settings (1000 images of
# rho per iteration, L = 1000 directions for each SW term, 28 x 28, the ambient convolutional
# generator of width 32 and nz 32): uotflow (bench_swgf_image_step, what method swjko runs with
# parametrization conv_generator and functional sw_data) against swgf_image_step.py (the same step
# in plain PyTorch), 1 thread each, ROUNDS interleaved rounds, then the medians and their ratio.
# Usage: bash bench/compare_swgf_image.sh [BUILD_DIR]   (env: ROUNDS=3 ITERS=5 KEEP_FREED=1)
set -euo pipefail

BUILD=${1:-build}
ROUNDS=${ROUNDS:-3}
ITERS=${ITERS:-5}
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_binary bench_swgf_image_step

run_cpp() {
  "$BIN" --iters "$ITERS" >>"$TMP/rows.jsonl"
}
run_py() {
  "$PY" "$HERE/swgf_image_step.py" --iters "$ITERS" | tail -1 >>"$TMP/rows.jsonl"
}
interleave_rounds

"$PY" - "$TMP/rows.jsonl" <<'PYEOF'
import json, statistics, sys
times = {}
for line in open(sys.argv[1]):
    row = json.loads(line)
    times.setdefault(row["impl"], []).append(row["median_s"])
med = {k: statistics.median(v) for k, v in times.items()}
print(f"{'implementation':<16}{'s / iteration':>15}{'speed-up vs PyTorch':>22}")
for impl in ("python", "uotflow"):
    print(f"{impl:<16}{med[impl]:15.4f}{med['python'] / med[impl]:21.2f}x")
PYEOF

#!/usr/bin/env bash
# UOTM toy step, C++ (bench_uotm_step) against the plain-PyTorch script (uotm_step.py), side by side:
# ROUNDS interleaved rounds (the order alternates), 1 thread each, then a table of medians.
# Usage: bash bench/compare_uotm_step.sh [BUILD_DIR]   (env: ROUNDS=5 STEPS=300 WARMUP=20)
set -euo pipefail

BUILD=${1:-build}
ROUNDS=${ROUNDS:-5}
STEPS=${STEPS:-300}
WARMUP=${WARMUP:-20}
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_binary bench_uotm_step

run_cpp() {
  "$BIN" --uotm_steps="$STEPS" --uotm_warmup="$WARMUP" --benchmark_filter='BM_UotmStep|BM_Matmul' \
    --benchmark_format=json >"$TMP/cpp_$1.json" 2>/dev/null
}
run_py() {
  "$PY" "$HERE/uotm_step.py" --steps "$STEPS" --warmup "$WARMUP" --threads 1 >"$TMP/py_$1.json"
}

echo "UOTM toy step: batch 400, ResNet-FC 128 x 3, R1 on, 1 thread; $ROUNDS rounds of $STEPS steps" \
  "(+ $WARMUP warm-up) per side, interleaved" >&2
interleave_rounds

"$PY" - "$TMP" "$ROUNDS" <<'EOF'
import json, statistics, sys

tmp, rounds = sys.argv[1], int(sys.argv[2])
cpp_its, generic_its, py_its, peaks, shape = [], [], [], [], []
flops = None
for r in range(rounds):
    for b in json.load(open(f"{tmp}/cpp_{r}.json"))["benchmarks"]:
        if b["name"].startswith("BM_UotmStep/fused:1"):
            cpp_its.append(b["it_per_s"])
            flops = b["GFLOP_per_step"]
        elif b["name"].startswith("BM_UotmStep/fused:0"):
            generic_its.append(b["it_per_s"])
            flops = b["GFLOP_per_step"]
        elif b["name"].startswith("BM_MatmulStepShape"):
            shape.append(b["GFLOP/s"])
        elif b["name"].startswith("BM_Matmul/"):
            peaks.append(b["GFLOP/s"])
    py_its.append(json.loads(open(f"{tmp}/py_{r}.json").read().strip().splitlines()[-1])["it_per_s"])

med = statistics.median
ratios = [c / p for c, p in zip(cpp_its, py_its)]
peak = max(peaks)
c, g, p = med(cpp_its), med(generic_its), med(py_its)
print(f"per-round it/s  C++: {' '.join(f'{x:.2f}' for x in cpp_its)}")
print(f"per-round it/s  C++, generic graph: {' '.join(f'{x:.2f}' for x in generic_its)}")
print(f"per-round it/s  Py : {' '.join(f'{x:.2f}' for x in py_its)}")
print(f"per-round ratio    : {' '.join(f'{x:.3f}' for x in ratios)}")
print()
print(f"{'':24}{'it/s (median)':>15}{'GFLOP/s':>10}{'% of peak':>11}")
print(f"{'C++ (uotflow)':24}{c:15.2f}{c * flops:10.1f}{100 * c * flops / peak:10.1f}%")
print(f"{'C++, generic graph':24}{g:15.2f}{g * flops:10.1f}{100 * g * flops / peak:10.1f}%")
print(f"{'Python (torch ' + '1.13)':24}{p:15.2f}{p * flops:10.1f}{100 * p * flops / peak:10.1f}%")
print()
print(f"ratio C++/Python: {c / p:.3f} (ratio of medians), {med(ratios):.3f} (median of per-round ratios)"
      f"; target >= 1.6")
print(f"ratio C++ generic graph/Python: {g / p:.3f}; explicit passes / generic graph: {c / g:.3f}")
print(f"FLOP per step (matmuls, analytic): {flops:.3f} GFLOP")
print(f"matmul peak, 1 thread (max of 512^3, 1024^3 mm over rounds): {peak:.1f} GFLOP/s;"
      f" [400,128]x[128,128] linear: {med(shape):.1f} GFLOP/s (median)")
EOF

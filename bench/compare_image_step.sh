#!/usr/bin/env bash
# UOTM image step at 32x32 (DCGAN pair and NCSN++ pair), C++ (bench_image_step) against the
# plain-PyTorch script (image_step.py), side by side: first a parity check (parameter names, shapes
# and counts, outputs for the same deterministic weights), then ROUNDS interleaved rounds (the order
# alternates), 1 thread each, then a table of medians in images/s.
# Usage: bash bench/compare_image_step.sh [BUILD_DIR]   (env: ROUNDS=3 STEPS=15 WARMUP=2)
set -euo pipefail

BUILD=${1:-build}
ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-15}
WARMUP=${WARMUP:-2}
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_binary bench_image_step

"$BIN" --image_parity=1 >"$TMP/parity_cpp.json"
"$PY" "$HERE/image_step.py" --parity >"$TMP/parity_py.json"

run_cpp() {
  "$BIN" --image_steps="$STEPS" --image_warmup="$WARMUP" --benchmark_filter='BM_ImageStep' \
    --benchmark_format=json >"$TMP/cpp_$1.json" 2>/dev/null
}
run_py() {
  for config in dcgan ncsnpp; do
    "$PY" "$HERE/image_step.py" --config "$config" --steps "$STEPS" --warmup "$WARMUP" \
      --threads 1 >"$TMP/py_${config}_$1.json"
  done
}

echo "UOTM image step, 32x32, DCGAN pair (batch 32) and NCSN++ pair (batch 16), R1 on, 1 thread;" \
  "$ROUNDS rounds of $STEPS steps (+ $WARMUP warm-up) per side and pair, interleaved" >&2
interleave_rounds

"$PY" - "$TMP" "$ROUNDS" <<'EOF'
import json, statistics, sys

tmp, rounds = sys.argv[1], int(sys.argv[2])
pairs = ["dcgan", "ncsnpp"]

# Parity: same parameter names, shapes and counts, and the same outputs for the same weights.
cpp_par, py_par = json.load(open(f"{tmp}/parity_cpp.json")), json.load(open(f"{tmp}/parity_py.json"))
print("parity (deterministic weights and inputs, batch 4):")
for name in pairs:
    c, p = cpp_par[name], py_par[name]
    for net in ("generator", "potential"):
        same = c[net]["names"] == p[net]["names"] and c[net]["shapes"] == p[net]["shapes"]
        print(f"  {name:7} {net:10} params C++ {c[net]['params']:>9,} Py {p[net]['params']:>9,}"
              f"  {len(c[net]['names'])} tensors, names and shapes {'equal' if same else 'DIFFER'}")
    outs_c = c["fake_head"] + [c["fake_sum"], c["fake_abs_sum"]] + c["v"]
    outs_p = p["fake_head"] + [p["fake_sum"], p["fake_abs_sum"]] + p["v"]
    err = max(abs(a - b) / max(1.0, abs(b)) for a, b in zip(outs_c, outs_p))
    print(f"  {name:7} outputs T(x, z) and v(y): max relative difference {err:.1e}")
print()

med = statistics.median
cpp = {n: [] for n in pairs}
py = {n: [] for n in pairs}
cpp_cpu = {n: [] for n in pairs}  # images per CPU second (the machine is shared)
py_cpu = {n: [] for n in pairs}
batch = {}
for r in range(rounds):
    for b in json.load(open(f"{tmp}/cpp_{r}.json"))["benchmarks"]:
        name = b["name"].split("/")[1]
        cpp[name].append(b["img_per_s"])
        batch[name] = int(b["batch"])
        cpp_cpu[name].append(b["batch"] * 1e3 / b["cpu_time"])  # cpu_time: ms per step
    for name in pairs:
        row = json.loads(open(f"{tmp}/py_{name}_{r}.json").read().strip().splitlines()[-1])
        py[name].append(row["img_per_s"])
        py_cpu[name].append(row["cpu_img_per_s"])

print(f"{'pair':8}{'batch':>6}{'C++ img/s':>11}{'Py img/s':>10}{'C++ s/step':>12}{'Py s/step':>11}"
      f"{'ratio':>8}{'median per-round ratio':>24}")
for name in pairs:
    c, p = med(cpp[name]), med(py[name])
    ratios = [a / b for a, b in zip(cpp[name], py[name])]
    print(f"{name:8}{batch[name]:6d}{c:11.2f}{p:10.2f}{batch[name] / c:12.3f}{batch[name] / p:11.3f}"
          f"{c / p:8.3f}{med(ratios):24.3f}")
print()
print("by CPU time (images per CPU second, medians):")
for name in pairs:
    c, p = med(cpp_cpu[name]), med(py_cpu[name])
    print(f"  {name:7} C++ {c:8.2f}  Py {p:8.2f}  ratio {c / p:.3f}")
print()
for name in pairs:
    print(f"per-round img/s {name:7} C++: {' '.join(f'{x:.2f}' for x in cpp[name])}")
    print(f"per-round img/s {name:7} Py : {' '.join(f'{x:.2f}' for x in py[name])}")
EOF

#!/usr/bin/env bash
# Exact W2 between two 2-D Gaussian samples (n = m points, uniform weights), C++ (bench_exact_ot:
# wasserstein_exact) against POT (exact_ot.py: ot.dist + ot.emd2), cost matrix included on both
# sides: ROUNDS interleaved rounds (the order alternates), REPS calls per size and round, 1 thread.
# Usage: bash bench/compare_exact_ot.sh [BUILD_DIR]   (env: ROUNDS=5 REPS=3 SIZES="500 2000")
# SIZES="500 2000 5000" adds the largest case (POT alone then needs several minutes).
set -euo pipefail

BUILD=${1:-build}
ROUNDS=${ROUNDS:-5}
REPS=${REPS:-3}
SIZES=${SIZES:-500 2000}
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_binary bench_exact_ot

FILTER="BM_ExactW2/($(echo $SIZES | tr ' ' '|'))/"
run_cpp() {
  "$BIN" --benchmark_filter="$FILTER" --benchmark_repetitions="$REPS" \
    --benchmark_report_aggregates_only=true --benchmark_format=json >"$TMP/cpp_$1.json" 2>/dev/null
}
run_py() {
  # shellcheck disable=SC2086  # SIZES is a list
  "$PY" "$HERE/exact_ot.py" --sizes $SIZES --repeats "$REPS" >"$TMP/py_$1.json"
  # shellcheck disable=SC2086
  PYTHONPATH="$BUILD/python" "$PY" "$HERE/exact_ot.py" --impl uotflow --sizes $SIZES \
    --repeats "$REPS" >"$TMP/api_$1.json"
}

echo "exact W2, 2-D, n = m in {$SIZES}, uniform weights, 1 thread; $ROUNDS rounds of $REPS calls" \
  "per size and side, interleaved" >&2
interleave_rounds

"$PY" - "$TMP" "$ROUNDS" $SIZES <<'EOF'
import json, statistics, sys

tmp, rounds, sizes = sys.argv[1], int(sys.argv[2]), [int(s) for s in sys.argv[3:]]
med = statistics.median
cpp = {n: [] for n in sizes}  # per-round medians, seconds
py = {n: [] for n in sizes}
api = {n: [] for n in sizes}
w2_cpp, w2_py = {}, {}
for r in range(rounds):
    for b in json.load(open(f"{tmp}/cpp_{r}.json"))["benchmarks"]:
        # With REPS > 1 only the aggregates are written (take the median); with 1, the one run.
        if b.get("run_type") == "iteration" or b.get("aggregate_name") == "median":
            n = int(b["name"].split("/")[1])
            cpp[n].append(b["real_time"] / 1e3 if b["time_unit"] == "ms" else b["real_time"])
            w2_cpp[n] = b["w2"]
    for line in open(f"{tmp}/py_{r}.json"):
        if line.startswith("{"):
            row = json.loads(line)
            py[row["n"]].append(row["median_s"])
            w2_py[row["n"]] = row["w2"]
    for line in open(f"{tmp}/api_{r}.json"):
        if line.startswith("{"):
            api[json.loads(line)["n"]].append(json.loads(line)["median_s"])

print(f"{'n':>6}{'C++ (s, median)':>18}{'POT (s, median)':>18}{'POT / C++':>11}"
      f"{'per-round ratios':>30}{'W2 C++':>10}{'W2 POT':>10}")
for n in sizes:
    c, p = med(cpp[n]), med(py[n])
    ratios = " ".join(f"{q / x:.2f}" for x, q in zip(cpp[n], py[n]))
    print(f"{n:>6}{c:>18.4f}{p:>18.4f}{p / c:>11.2f}{ratios:>30}{w2_cpp[n]:>10.4f}{w2_py[n]:>10.4f}")
for n in sizes:
    print(f"{n:>6}  Python API (uotflow.wasserstein) {med(api[n]):.4f} s: {med(api[n]) / med(cpp[n]):.3f}x the C++ call")
print()
print("C++: uotflow::wasserstein_exact (difference-based squared distances, LEMON network simplex).")
print("POT: ot.emd2(a, b, ot.dist(x, y)) (python3-pot 0.8.2); target POT / C++ >= 1 at n = 2000.")
print("Same points on both sides (x ~ N(0, I), y ~ N(1, I) from a generator both implement):"
      " the W2 columns must agree.")
EOF

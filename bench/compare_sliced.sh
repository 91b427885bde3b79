#!/usr/bin/env bash
# Sliced W2, n = 10,000, L = 1,000, d in {2, 100, 1000}: uotflow (bench_sliced) against POT's
# ot.sliced_wasserstein_distance with the torch backend (sliced.py), and uotflow's Python API
# (sliced.py --impl uotflow: the same C++ call from Python), 1 thread each, ROUNDS interleaved rounds, then the
# medians and their ratios.
# Usage: bash bench/compare_sliced.sh [BUILD_DIR]   (env: ROUNDS=3 REPS=3)
set -euo pipefail

BUILD=${1:-build}
ROUNDS=${ROUNDS:-3}
REPS=${REPS:-3}
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_binary bench_sliced

run_cpp() { "$BIN" --benchmark_filter=BM_SlicedW2 --benchmark_repetitions="$REPS" --benchmark_format=json >"$TMP/cpp_$1.json" 2>/dev/null; }
run_py() {
  "$PY" "$HERE/sliced.py" --reps "$REPS" >"$TMP/py_$1.json"
  PYTHONPATH="$BUILD/python" "$PY" "$HERE/sliced.py" --impl uotflow --reps "$REPS" >"$TMP/api_$1.json"
}
interleave_rounds

"$PY" - "$TMP" "$ROUNDS" <<'PYEOF'
import json, statistics, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
cpp, pot, api = {}, {}, {}
for r in range(rounds):
    for b in json.load(open(f"{tmp}/cpp_{r}.json"))["benchmarks"]:
        if b.get("run_type") == "iteration" and b["name"].startswith("BM_SlicedW2/"):
            cpp.setdefault(int(b["name"].split("/")[1]), []).append(b["real_time"])
    for name, into in (("py", pot), ("api", api)):
        for line in open(f"{tmp}/{name}_{r}.json"):
            row = json.loads(line)
            into.setdefault(row["d"], []).append(row["ms"])
print(f"{'d':>6}{'uotflow ms':>14}{'POT (torch) ms':>16}{'ratio':>9}{'Python API ms':>15}{'API / C++':>11}")
for d in sorted(cpp):
    c, p, a = (statistics.median(v[d]) for v in (cpp, pot, api))
    print(f"{d:>6}{c:14.1f}{p:16.1f}{p / c:8.1f}x{a:15.1f}{a / c:10.3f}x")
PYEOF

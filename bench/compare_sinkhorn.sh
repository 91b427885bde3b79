#!/usr/bin/env bash
# Entropic OT, n = m = 2,000 points in d = 2 (the same points on both sides), cost |x - y|^2 / max,
# epsilon = 0.05 x mean cost, cost construction included: uotflow (bench_sinkhorn) against POT's
# ot.sinkhorn2 (sinkhorn.py) with method='sinkhorn' (POT's default, NumPy scaling iterations) and
# method='sinkhorn_log'. ROUNDS interleaved rounds (the order alternates), 1 thread each, then a
# table of medians and ratios (POT time / uotflow time).
#
# Two kinds of rows: a fixed number of iterations with no early stopping (the same work on both
# sides), and to tolerance 1e-9, checked every 10 iterations on both sides. uotflow tests the L1
# norm of the row-marginal error, POT the L2 norm of the column-marginal error: POT is run with
# stopThr 1e-9 (looser than uotflow's test) and 1e-9 / sqrt(n) (an L2 bound implying L1 <= 1e-9,
# at least as strict); the iteration counts are printed next to the times.
# Usage: bash bench/compare_sinkhorn.sh [BUILD_DIR]   (env: ROUNDS=3 REPS=3 ITERS=100)
set -euo pipefail

BUILD=${1:-build}
ROUNDS=${ROUNDS:-3}
REPS=${REPS:-3}
ITERS=${ITERS:-100}
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_binary bench_sinkhorn

run_cpp() {
  "$BIN" --sinkhorn_iters="$ITERS" --benchmark_repetitions="$REPS" --benchmark_format=json \
    >"$TMP/cpp_$1.json" 2>/dev/null
}
run_py() {
  "$PY" "$HERE/sinkhorn.py" --iters "$ITERS" --reps "$REPS" >"$TMP/py_$1.json"
  PYTHONPATH="$BUILD/python" "$PY" "$HERE/sinkhorn.py" --impl uotflow --iters "$ITERS" --reps "$REPS" \
    >>"$TMP/py_$1.json"
}

echo "Sinkhorn n = m = 2000, d = 2, 1 thread; $ROUNDS rounds, $REPS repetitions each, interleaved" >&2
interleave_rounds

"$PY" - "$TMP" "$ROUNDS" "$ITERS" <<'PYEOF'
import json, statistics, sys

tmp, rounds, iters = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cpp, solver_its, pot, pot_its = {}, {}, {}, {}
for r in range(rounds):
    for b in json.load(open(f"{tmp}/cpp_{r}.json"))["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        case = "/".join(b["name"].split("/")[1:4])  # e.g. fixed/f64/fused
        cpp.setdefault(case, []).append(b["real_time"])
        solver_its[case] = int(round(b["solver_iterations"]))
    for line in open(f"{tmp}/py_{r}.json"):
        row = json.loads(line)
        pot.setdefault(row["case"], []).append(row["ms"])
        pot_its[row["case"]] = row["iterations"]
med = statistics.median

rows = [
    (f"fixed {iters} its, f64, fused pass", "fixed/f64/fused", "fixed"),
    (f"fixed {iters} its, f64, generic path", "fixed/f64/generic", "fixed"),
    (f"fixed {iters} its, f32, fused pass *", "fixed/f32/fused", "fixed"),
    ("tol, f64, fused | POT 1e-9", "tol/f64/fused", "tol"),
    ("tol, f64, fused | POT 1e-9/sqrt(n)", "tol/f64/fused", "tol_strict"),
    ("tol, f64, annealed | POT 1e-9", "tol_anneal/f64/fused", "tol"),
    ("tol, f64, generic | POT 1e-9", "tol/f64/generic", "tol"),
]
head = f"{'case':36}{'uotflow ms':>11}{'its':>6}"
for method in ("sinkhorn", "sinkhorn_log"):
    head += f"{'POT ' + method + ' ms':>24}{'its':>6}{'ratio':>8}"
print(head)
for label, case, kind in rows:
    if case not in cpp:
        continue
    c = med(cpp[case])
    line = f"{label:36}{c:11.1f}{solver_its.get(case, 0):6d}"
    for method in ("sinkhorn", "sinkhorn_log"):
        key = f"{kind}/{method}"
        if key in pot:
            p = med(pot[key])
            line += f"{p:24.1f}{pot_its[key]:6d}{p / c:7.2f}x"
    print(line)
print("* float32 on the uotflow side, POT in float64.")
for label, case, kind in ((f"fixed {iters} its, f64, fused", "fixed/f64/fused", "fixed"),
                          ("tol, f64, fused", "tol/f64/fused", "tol")):
    key = f"{kind}/uotflow"
    if case in cpp and key in pot:
        c, a = med(cpp[case]), med(pot[key])
        print(f"Python API, {label}: {a:.1f} ms ({pot_its[key]} its) against C++ {c:.1f} ms: "
              f"{a / c:.3f}x")
print("per-round uotflow ms, fixed/f64/fused:", " ".join(f"{x:.1f}" for x in cpp["fixed/f64/fused"]))
print("per-round POT ms, fixed/sinkhorn:     ", " ".join(f"{x:.1f}" for x in pot["fixed/sinkhorn"]))
PYEOF

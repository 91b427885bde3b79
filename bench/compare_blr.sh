#!/usr/bin/env bash
# Bayesian logistic regression, SW-JKO (RealNVP) against JKO-ICNN (docs/methods/comparison.md): each
# method's shipped config (configs/flow/swgf_blr_DATA.json, jko_icnn_blr_DATA.json: 10 JKO steps of
# 0.1 from N(0, 0.1^2 I)) on German credit and Pima diabetes, several seeds; the test accuracy and
# test log-likelihood of the posterior predictive at the last JKO step (eval.jsonl) and the training
# wall-clock (metrics.jsonl), medians and ranges over seeds. The data: `make setup`.
# Usage: bash bench/compare_blr.sh [BUILD_DIR] (env: DATA="german diabetes" SEEDS="0 1 2" OUT=compare-blr)
set -euo pipefail

BUILD=${1:-build}
DATA=${DATA:-german diabetes}
SEEDS=${SEEDS:-0 1 2}
OUT=${OUT:-compare-blr}
ROUNDS=1
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_binary uotflow
CONFIGS=$HERE/../configs/flow

for data in $DATA; do
  for seed in $SEEDS; do
    for method in swjko jko_icnn; do
      echo "$data, seed $seed: $method" >&2
      prefix=$([ "$method" = swjko ] && echo swgf || echo jko_icnn)
      "$BUILD/uotflow" flow --config "$CONFIGS/${prefix}_blr_$data.json" --seed "$seed" \
        --out "$OUT/$data" --name "$method-s$seed" >/dev/null
    done
  done
done

"$PY" - "$OUT" $DATA <<'PY'
import json, pathlib, statistics, sys
out, sets = pathlib.Path(sys.argv[1]), sys.argv[2:]
def rows(path):
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]
def cell(v, digits=3):
    return f"{statistics.median(v):.{digits}f} ({min(v):.{digits}f}-{max(v):.{digits}f})"
print("| data | method | seeds | test accuracy | test log-likelihood | wall-clock s |")
print("|---|---|---|---|---|---|")
for data in sets:
    for method in ("swjko", "jko_icnn"):
        acc, ll, secs = [], [], []
        newest = {r.name.split("-", 1)[1]: r for r in sorted((out / data).glob(f"*-{method}-s*"))}
        for run in newest.values():
            last = {r["metric"]: r["value"] for r in rows(run / "eval.jsonl")}
            acc.append(last["test_accuracy"])
            ll.append(last["test_loglik"])
            secs.append(rows(run / "metrics.jsonl")[-1]["time"])
        print(f"| {data} | {method} | {len(secs)} | {cell(acc)} | {cell(ll)} | {statistics.median(secs):.0f} |")
PY

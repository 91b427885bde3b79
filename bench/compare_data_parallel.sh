#!/usr/bin/env bash
# Data-parallel scaling on this machine: `uotflow train` of the same run (global batch fixed) in one
# process of 1 thread, one process of 2 threads, and 2 processes of 1 thread (--nproc 2, Gloo on the
# loopback interface), for the toy step (configs/toy/uotm_8gaussians.json) and the image step
# (configs/image/uotm_fashion_mnist.json). Per setting: the median over ROUNDS interleaved rounds of
# the seconds per step after the first log row (start-up excluded), steps and samples per second,
# the speed-up against one process of 1 thread, and rank 0's seconds per step in collectives.
# Usage: bash bench/compare_data_parallel.sh [BUILD_DIR]   (env: ROUNDS=3 TOY_STEPS=600 IMAGE_STEPS=12)
set -euo pipefail

BUILD=${1:-build}
ROUNDS=${ROUNDS:-3}
TOY_STEPS=${TOY_STEPS:-600}
IMAGE_STEPS=${IMAGE_STEPS:-12}
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_binary uotflow
ROOT=$(cd "$HERE/.." && pwd)

# run_one CASE CONFIG STEPS SETTING: one training run; appends {"case", "setting", per-step times}.
run_one() {
  local case=$1 config=$2 steps=$3 setting=$4 flags=()
  case $setting in
    1proc-1thread) flags=(--threads 1) ;;
    1proc-2threads) flags=(--threads 2) ;;
    2proc-1thread) flags=(--threads 1 --nproc 2) ;;
  esac
  local out="$TMP/runs-$case-$setting"
  rm -rf "$out"
  "$BIN" train --config "$ROOT/$config" --steps "$steps" --seed 0 --out "$out" \
    --set eval.n=0 --set eval.at_start=false --set train.eval_every=0 --set train.snapshot_every=0 \
    --set train.checkpoint_every=0 --set train.log_every=$((steps / 3)) \
    --set 'eval.features.metrics=[]' "${flags[@]}" >/dev/null 2>"$TMP/stderr" ||
    { cat "$TMP/stderr" >&2; exit 1; }
  "$PY" - "$out" "$case" "$setting" "$ROOT/$config" >>"$TMP/rows.jsonl" <<'PYEOF'
import glob, json, re, sys
out, case, setting, config = sys.argv[1:]
rows = [json.loads(l) for l in open(glob.glob(out + "/*/metrics.jsonl")[0])]
rows = rows[1:]  # the first row holds the start-up
text = re.sub(r"//[^\n]*", "", open(config).read())
batch = json.loads(text)["train"]["batch_size"]
sec = sum(r["sec_per_step"] * r["steps_averaged"] for r in rows) / sum(r["steps_averaged"] for r in rows)
comm = sum(r.get("comm_sec_per_step", 0) * r["steps_averaged"] for r in rows) / sum(r["steps_averaged"] for r in rows)
print(json.dumps({"case": case, "setting": setting, "sec": sec, "comm": comm, "batch": batch}))
PYEOF
}

run_cpp() {
  for setting in 1proc-1thread 1proc-2threads 2proc-1thread; do
    run_one toy configs/toy/uotm_8gaussians.json "$TOY_STEPS" "$setting"
    run_one image configs/image/uotm_fashion_mnist.json "$IMAGE_STEPS" "$setting"
  done
}
run_py() { :; }
interleave_rounds

"$PY" - "$TMP/rows.jsonl" <<'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"{'case':<7}{'setting':<16}{'s / step':>10}{'steps/s':>9}{'samples/s':>11}{'speed-up':>10}{'comm s/step':>13}")
for case in ("toy", "image"):
    base = None
    for setting in ("1proc-1thread", "1proc-2threads", "2proc-1thread"):
        mine = [r for r in rows if r["case"] == case and r["setting"] == setting]
        sec = statistics.median(r["sec"] for r in mine)
        comm = statistics.median(r["comm"] for r in mine)
        base = base or sec
        batch = mine[0]["batch"]
        print(f"{case:<7}{setting:<16}{sec:10.4f}{1 / sec:9.1f}{batch / sec:11.0f}{base / sec:9.2f}x{comm:13.4f}")
PYEOF

#!/usr/bin/env bash
# The runs behind the UOTM claims of docs/methods/uotm.md, all on the CPU, one thread per run, JOBS
# runs at a time:
#
#   scripts/uotm_claims.sh [GROUP ...]      (default: every group)
#
# Groups:
#   outliers1d  UOTM and OTM on the reference 1-D outlier toy (uotm_outlier1d.json, otm_outlier1d.json),
#               seeds 0-4
#   outliers2d  UOTM and OTM on 8 Gaussians plus two far outlier modes (uotm_outliers2d.json,
#               otm_outliers2d.json), seeds 0-2
#   stability   UOTM and OTM on clean 8 Gaussians (uotm_8gaussians.json, otm_8gaussians.json), seeds 0-4,
#               the eval metrics every 250 steps, with and without the source-side gradient penalty (loss.source_gp)
#   tau         UOTM (kl/kl) on the 1-D outlier toy at cost_scale 0.001 .. 1, seed 0
#   far1d       outliers far from the source (uotm_far_outlier1d.json): over seeds 0-2 UOTM at cost_scale
#               0.5 (1500 steps), and UOTM and OTM there with R1 0.01 on the data (2500 steps: OTM's
#               share of the outliers settles after 1500); at seed 0 both at cost_scale 0.05 without R1
#   images      UOTM and OTM on Fashion-MNIST plus 5% MNIST digits (uotm_fashion_mnist_outliers.json at
#               the CPU size: width 16, IMAGE_STEPS steps), seeds IMAGE_SEEDS, all judged by one
#               classifier trained first with `uotflow fid-ref` on the same mix
#               ($ROOT/images/mix.classifier.safetensors). No samples: the summary reads each run's
#               eval.jsonl. About 95 minutes a run on one CPU core; on a GPU, DEVICE=cuda
#
# Each run writes its run directory under $ROOT/GROUP/NAME and 100,000 (1-D) or 10,000 (2-D) samples
# of its EMA generator to $ROOT/GROUP/NAME.npy. scripts/uotm_claims_summary.py turns them into the
# tables of docs/methods/uotm.md.
#
# Environment: UOTFLOW (default build/uotflow), ROOT (default claims), JOBS (default: the cores),
# SEEDS (default "0 1 2 3 4": the seeds of outliers1d and stability), STABILITY (default
# "uotm:0.01 otm:0.01 otm:0 uotm:0": the model:source_gp pairs of stability), SKIP_DONE=1 (keep the runs whose
# samples exist: resumes an interrupted campaign). For images: DEVICE (default cpu), IMAGE_SEEDS
# (default "0 1 2"), IMAGE_STEPS (default 1500), FMNIST_DIR and MNIST_DIR (the data sets' folders when
# they are not at their default places), CLASSIFIER_STEPS (default 2000, as the config).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
UOTFLOW="${UOTFLOW:-build/uotflow}"
ROOT="${ROOT:-claims}"
JOBS="${JOBS:-$(nproc)}"
SEEDS="${SEEDS:-0 1 2 3 4}"
STABILITY="${STABILITY:-uotm:0.01 otm:0.01 otm:0 uotm:0}"
GROUPS_TO_RUN=("$@")
[ ${#GROUPS_TO_RUN[@]} -eq 0 ] && GROUPS_TO_RUN=(outliers1d outliers2d stability tau far1d images)
DEVICE="${DEVICE:-cpu}"
IMAGE_SEEDS="${IMAGE_SEEDS:-0 1 2}"
IMAGE_STEPS="${IMAGE_STEPS:-1500}"
IMAGE_FRACTION=0.05  # the digits' share of the images group's mix

# The image mix of the images group as data.params (JSON) and as --set overrides of the config.
image_mix_json() {
  local base='"split": "train"' outliers=""
  [ -n "${FMNIST_DIR:-}" ] && base="$base, \"path\": \"$FMNIST_DIR\""
  [ -n "${MNIST_DIR:-}" ] && outliers="\"path\": \"$MNIST_DIR\""
  echo "{\"base\": {\"name\": \"fashion_mnist\", \"params\": {$base}}, \"outliers\": {\"name\": \"mnist\", \"params\": {$outliers}}, \"fraction\": $IMAGE_FRACTION, \"seed\": 0}"
}
image_mix_sets() {
  echo -n "--set data.params.fraction=$IMAGE_FRACTION"
  [ -n "${FMNIST_DIR:-}" ] && echo -n " --set data.params.base.params.path=$FMNIST_DIR"
  [ -n "${MNIST_DIR:-}" ] && echo -n " --set data.params.outliers.params.path=$MNIST_DIR"
  echo
}

# One line per run: GROUP NAME CONFIG SEED N_SAMPLES [--set KEY=VALUE ...]
jobs_of() {
  case "$1" in
    outliers1d)
      for seed in $SEEDS; do
        for m in uotm otm; do echo "outliers1d ${m}_s$seed ${m}_outlier1d.json $seed 100000"; done
      done ;;
    outliers2d)
      for seed in 0 1 2; do
        for m in uotm otm; do echo "outliers2d ${m}_s$seed ${m}_outliers2d.json $seed 10000"; done
      done ;;
    stability)
      for seed in $SEEDS; do
        for variant in $STABILITY; do
          m=${variant%:*} gp=${variant#*:}
          echo "stability ${m}_gp${gp}_s$seed ${m}_8gaussians.json $seed 10000" \
            "--set loss.source_gp=$gp --set train.eval_every=250 --set eval.n=2000"
        done
      done ;;
    tau)
      for scale in 0.001 0.003 0.01 0.03 0.1 0.3 1; do
        echo "tau uotm_c$scale uotm_outlier1d.json 0 100000 --set loss.cost_scale=$scale"
      done ;;
    far1d)
      local otm="--set loss.phi1=linear --set loss.phi2=linear" r1="--set loss.r1_gamma=0.01"
      for seed in 0 1 2; do
        echo "far1d uotm_c0.5_s$seed uotm_far_outlier1d.json $seed 100000 --set train.steps=1500"
        echo "far1d uotm_c0.5_r1_s$seed uotm_far_outlier1d.json $seed 100000 --set train.steps=2500 $r1"
        echo "far1d otm_c0.5_r1_s$seed uotm_far_outlier1d.json $seed 100000 --set train.steps=2500 $otm $r1"
      done
      echo "far1d uotm_c0.05_s0 uotm_far_outlier1d.json 0 100000 --set train.steps=1500 --set loss.cost_scale=0.05"
      echo "far1d otm_c0.05_s0 uotm_far_outlier1d.json 0 100000 --set train.steps=1500 $otm --set loss.cost_scale=0.05"
      ;;
    images)
      local classifier="$ROOT/images/mix.classifier.safetensors"
      local common
      common="--steps $IMAGE_STEPS $(image_mix_sets) --set generator.width=16 --set potential.width=16"
      common="$common --set eval.features.extractor=$classifier"
      for seed in $IMAGE_SEEDS; do
        echo "images uotm_s$seed image/uotm_fashion_mnist_outliers.json $seed 0 $common"
        echo "images otm_s$seed image/uotm_fashion_mnist_outliers.json $seed 0 $common" \
          "--set loss.phi1=linear --set loss.phi2=linear"
      done ;;
    *) echo "unknown group '$1' (known: outliers1d outliers2d stability tau far1d images)" >&2; exit 2 ;;
  esac
}

# run_one GROUP NAME CONFIG SEED N [ARGS...]: CONFIG is relative to configs/ when it has a folder, else
# to configs/toy/; N = 0 draws no samples (the run's folder then marks it done).
run_one() {
  local group="$1" name="$2" config="$3" seed="$4" n="$5"
  shift 5
  local dir="$ROOT/$group/$name"
  local done_mark="$dir.npy"
  [ "$n" = 0 ] && done_mark="$dir.done"
  if [ "${SKIP_DONE:-0}" = 1 ] && [ -f "$done_mark" ]; then
    echo "$group/$name kept"
    return
  fi
  rm -rf "$dir" "$dir.npy" "$dir.done"
  [[ "$config" == */* ]] || config="toy/$config"
  # shellcheck disable=SC2086,SC2048  # the --set arguments are words
  "$UOTFLOW" train --config "configs/$config" --out "$dir" --seed "$seed" --threads 1 --device "$DEVICE" \
    --set train.snapshot_every=0 --set train.checkpoint_every=0 $* > "$dir.log" 2>&1 ||
    { echo "$group/$name FAILED (see $dir.log)"; return 0; }
  # An interrupted run exits 0 too (its checkpoint resumes it): no mark, no samples.
  if grep -q "interrupted at step" "$dir.log"; then
    echo "$group/$name interrupted (resume: $UOTFLOW train --resume $(ls -d "$dir"/0*))"
    return 0
  fi
  if [ "$n" = 0 ]; then
    touch "$dir.done"
    echo "$group/$name done"
    return
  fi
  "$UOTFLOW" sample --run "$(ls -d "$dir"/0*)" --n "$n" --seed 7 --out "$dir.npy" >> "$dir.log" 2>&1 ||
    { echo "$group/$name: sampling FAILED (see $dir.log)"; return 0; }
  echo "$group/$name done"
}
export -f run_one
export UOTFLOW ROOT DEVICE

# The one classifier of the images group, before its runs.
if [[ " ${GROUPS_TO_RUN[*]} " == *" images "* ]]; then
  mkdir -p "$ROOT/images"
  if [ ! -f "$ROOT/images/mix.classifier.safetensors" ]; then
    "$UOTFLOW" fid-ref --data image_mix --params "$(image_mix_json)" --extractor classifier \
      --classifier-steps "${CLASSIFIER_STEPS:-2000}" --device "$DEVICE" --out "$ROOT/images/mix.npz" > "$ROOT/images/mix.log" 2>&1 ||
      { echo "images: the classifier FAILED (see $ROOT/images/mix.log)"; exit 1; }
    echo "images: classifier $(tail -1 "$ROOT/images/mix.log")"
  fi
fi

for group in "${GROUPS_TO_RUN[@]}"; do
  mkdir -p "$ROOT/$group"
  jobs_of "$group"
done | xargs -P "$JOBS" -L 1 bash -c 'run_one "$@"' _

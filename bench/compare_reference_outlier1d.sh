#!/usr/bin/env bash
# The reference code itself against uotflow on the reference's 1-D outlier experiment (its README
# command: 4000 source and 4000 target points, p = 0.01, tau 0.1, --regularize --lmbda 0.01, batch 256,
# 5 potential steps per generator step, lr 1e-4), 1 thread each, on the CPU.
#
#   bash bench/compare_reference_outlier1d.sh REF_DIR [BUILD_DIR]   (env: EPOCHS=20 ROUNDS=3 PHI=kl)
#
# REF_DIR is a checkout of the public UOTM code (Jae-Moo/UOTM); nothing is fetched, and nothing of it
# is copied into this repository. The script copies the files it needs to a temporary folder and
# patches them there so that they run on a CPU-only machine with Debian's python3-torch:
#   - train_toy.py imports get_datasets from utils, where it is not defined (it is in dataset.py):
#     the import is corrected (as published, the script stops with an ImportError);
#   - dataset.py imports torchvision and PIL for its image sets, which the toy sets do not use: stubbed;
#   - matplotlib, pandas and seaborn are only used by the evaluation every save_every epochs, which
#     is pushed past the run (--save_every larger than --epochs): stubbed;
#   - .cuda() becomes the CPU, torch.set_num_threads(1), and each epoch's wall time is printed.
# The training step itself is left exactly as published (including its 1-D potential loss).
#
# uotflow runs the same experiment: configs/toy/otm_outlier1d.json (or uotm_...) with the reference's
# nets (resnet_fc width 128, depth 3), lr 1e-4, EMA off and eval off, EPOCHS x 15 generator steps
# (4000 / 256 batches per epoch, the last partial one dropped). Reported: generator steps per
# second (each with 5 potential steps), medians over ROUNDS interleaved rounds, and the ratio.
set -euo pipefail

REF=${1:?usage: compare_reference_outlier1d.sh REF_DIR [BUILD_DIR]}
BUILD=${2:-build}
EPOCHS=${EPOCHS:-20}
ROUNDS=${ROUNDS:-3}
PHI=${PHI:-kl}
PY=${PY:-/usr/bin/python3}
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
UOTFLOW="$BUILD/uotflow"
[ -x "$UOTFLOW" ] || { echo "no $UOTFLOW: build the CLI first" >&2; exit 2; }
for f in train_toy.py dataset.py utils.py models/toy.py; do
  [ -f "$REF/$f" ] || { echo "$REF/$f missing: REF_DIR must be a checkout of the UOTM code" >&2; exit 2; }
done
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/ref/models"
cp "$REF/train_toy.py" "$REF/dataset.py" "$REF/utils.py" "$TMP/ref/"
cp "$REF/models/toy.py" "$TMP/ref/models/"
touch "$TMP/ref/models/__init__.py"

"$PY" - "$TMP/ref" <<'PYEOF'
import pathlib, sys
root = pathlib.Path(sys.argv[1])

def patch(name, pairs):
    path = root / name
    text = path.read_text()
    for old, new in pairs:
        if old not in text:
            sys.exit(f"patch: '{old}' not found in {name}: the reference code changed")
        text = text.replace(old, new)
    path.write_text(text)

patch("train_toy.py", [
    ("from utils import get_datasets, select_phi",
     "from utils import select_phi\nfrom dataset import get_datasets\nimport time\ntorch.set_num_threads(1)"),
    ("import matplotlib.pyplot as plt", "plt = None"),
    ("import pandas as pd", "pd = None"),
    ("import seaborn as sns", "sns = None"),
    (".cuda()", ""),
    ("    for epoch in range(cfg.epochs):\n",
     "    for epoch in range(cfg.epochs):\n        t0 = time.perf_counter()\n"),
    ("        # evaluation\n",
     "        print(f'epoch_seconds {time.perf_counter() - t0:.6f}', flush=True)\n        # evaluation\n"),
])
patch("dataset.py", [
    ("import torchvision.transforms as transforms", "transforms = None"),
    ("from torchvision.datasets import MNIST, CIFAR10", "MNIST = CIFAR10 = None"),
    ("from PIL import Image", "Image = None"),
])
PYEOF

STEPS=$((EPOCHS * 15))
run_reference() {
  (cd "$TMP/ref" && "$PY" train_toy.py --exp outlier --num_data 4000 --data_dim 1 --p 0.01 \
    --source_name noise --target_name outlier --phi1 "$PHI" --phi2 "$PHI" --tau 0.1 --regularize \
    --lmbda 0.01 --epochs "$EPOCHS" --save_every $((EPOCHS + 1)) --batch_size 256 --lr 1e-4 \
    --savepath "$TMP/ref_out") >"$TMP/ref.log" 2>&1 ||
    { echo "the reference run failed:" >&2; tail -5 "$TMP/ref.log" >&2; exit 1; }
  awk '/^epoch_seconds/ {n++; if (n > 1) {s += $2; k++}} END {printf "%.6f\n", 15 * k / s}' "$TMP/ref.log"
}
run_uotflow() {
  local config=configs/toy/otm_outlier1d.json
  [ "$PHI" = kl ] && config=configs/toy/uotm_outlier1d.json
  rm -rf "$TMP/ours"
  "$ROOT/$UOTFLOW" train --config "$ROOT/$config" --out "$TMP/ours" --seed 0 --threads 1 \
    --set generator.width=128 --set generator.depth=3 --set potential.width=128 \
    --set potential.depth=3 --set train.lr_g=1e-4 --set train.lr_d=1e-4 --set train.ema_decay=0 \
    --set train.steps="$STEPS" --set train.log_every="$STEPS" --set eval.n=0 \
    --set train.snapshot_every=0 --set train.checkpoint_every=0 2>&1 |
    awk -v steps="$STEPS" '/ it\/s / {for (i = 1; i <= NF; i++) if ($(i + 1) == "it/s") v = $i} END {print v}'
}

echo "round reference_it_s uotflow_it_s"
for r in $(seq 1 "$ROUNDS"); do
  ref=$(run_reference)
  ours=$(run_uotflow)
  echo "$r $ref $ours" | tee -a "$TMP/rows.txt"
done
"$PY" - "$TMP/rows.txt" "$PHI" <<'PYEOF'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1]) if line[0].isdigit()]
ref = statistics.median(float(r[1]) for r in rows)
ours = statistics.median(float(r[2]) for r in rows)
print(f"phi {sys.argv[2]}: reference {ref:.1f} it/s, uotflow {ours:.1f} it/s, ratio {ours / ref:.2f}x "
      f"(generator steps, each with 5 potential steps; medians of {len(rows)} rounds)")
PYEOF

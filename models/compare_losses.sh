#!/bin/bash
# Side-by-side NT-Xent vs semi-hard triplet: two short runs from scratch with the same seed,
# data, augmentation and time budget, then the dev metric of each on the full dev index.
#   nohup nice -n 3 models/compare_losses.sh [minutes] > models/checkpoints/compare.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-8}
for loss in ntxent triplet; do
  /usr/bin/python3 models/train.py --run "cmp-$loss" --loss "$loss" --budget-min "$minutes" \
    --dev-min 1000 --ckpt-min 2
done
for loss in ntxent triplet; do
  echo "== $loss"
  /usr/bin/python3 models/dev_eval.py "models/checkpoints/cmp-$loss/last.pt" --n-seen 92
done

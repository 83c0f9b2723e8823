#!/bin/bash
# Side-by-side NT-Xent vs semi-hard triplet: two short runs from scratch with the same seed,
# data, augmentation and time budget, then the dev metric of each on the full dev index.
#   nohup nice -n 3 models/compare-losses.sh [minutes] > models/checkpoints/compare.log 2>&1 &
# Data as in train-recipe.sh: EARSHOT_CORPUS (default $HOME/.cache/earshot-corpus, train set in
# train/) and EARSHOT_DEV_QUERIES (default $EARSHOT_CORPUS/q-train-dev).
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-8}
corpus=${EARSHOT_CORPUS:-$HOME/.cache/earshot-corpus}
dev_queries=${EARSHOT_DEV_QUERIES:-$corpus/q-train-dev}
for loss in ntxent triplet; do
  /usr/bin/python3 -m models.train --run "cmp-$loss" --loss "$loss" --budget-min "$minutes" \
    --dev-min 1000 --ckpt-min 2 --corpus "$corpus/train" --dev-queries "$dev_queries"
done
for loss in ntxent triplet; do
  echo "== $loss"
  /usr/bin/python3 -m models.dev_eval "models/checkpoints/cmp-$loss/last.pt" \
    --dev-queries "$dev_queries" --n-seen 92
done

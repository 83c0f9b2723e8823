#!/bin/sh
# Trains the committed music detector from scratch with a fixed seed and writes
# models/music-detector-v1.npz + .json and the C++ test fixture
# tests/data/music_detector_golden.mdet. A few minutes on one CPU thread after the train set's
# excerpts are decoded; resumable (every stage is cached under models/checkpoints/music-detector/:
# run it again after an interruption).
#
#   models/music-detector-recipe.sh [TRAIN_SET_DIR]
#
# TRAIN_SET_DIR: the train set written by `shared/eval/fetch-corpus --set train` (catalog.tsv,
# noise.tsv); default $EARSHOT_CORPUS/train, else $HOME/.cache/earshot-corpus/train.
# Figures and design: docs/MUSIC_DETECTOR.md.
set -eu
cd "$(dirname "$0")/.."
CORPUS=${1:-${EARSHOT_CORPUS:-$HOME/.cache/earshot-corpus}/train}
/usr/bin/python3 -m models.train_music_detector --corpus "$CORPUS" \
    --out models/music-detector-v1 --fixture tests/data/music_detector_golden.mdet
# Into the shipped model file (the live listen's gate); then recalibrate the listen rule with
# the new gate (models.calibrate_listen, docs/EVALUATION.md "Listens"): the file changes.
/usr/bin/python3 -m models.add_music_detector --model models/earshot-v1.emod \
    --detector models/music-detector-v1

#!/bin/sh
# Trains the shipped earshot model from scratch with a fixed seed: one run of 85 minutes of
# training time on 2 CPU cores, resumable (re-run this script after an interruption: a finished
# run is skipped, an unfinished one resumes from models/checkpoints/earshot-v1/last.pt).
#
#   nohup nice -n 3 models/train-recipe.sh > models/checkpoints/recipe.log 2>&1 &
#
# Then export (hop 0.25 s) and calibrate the no-match thresholds on train-set queries:
#   /usr/bin/python3 -m models.export models/checkpoints/earshot-v1/last.pt models/earshot-v1.emod
#   (then the calibration commands of docs/EVALUATION.md)
#
# Environment: EARSHOT_CORPUS, the fetch-corpus destination (default $HOME/.cache/earshot-corpus;
# the train set is its train/ folder), EARSHOT_DEV_QUERIES, the dev metric's clips
# (default $EARSHOT_CORPUS/q-train-dev), EVAL, the evaluation tools (default ../shared/eval).
# Missing data is made first with the commands below.
#
# Data: the train set of `fetch-corpus --set train --with-midi`, less Planet Blupi's MIDI
# renders (its Ogg tracks are the same tunes) and a seeded quarter of the freedoom and OpenMSX
# MIDI renders (kept unseen: out-of-catalog queries for calibrating the thresholds), and less
# the dev songs the dev clips choose. Half of each batch comes in groups of 8 segments from one
# album (same-game hard negatives). lr 2e-3 cosine over the 85 minutes, synthetic rooms RT60
# 0.2-1.0 s. Half of the degraded views get SpecAugment-style masks of mel bands and frame runs,
# set to the patch mean (--spec-mask; sizes in augment.SPEC_MASK_SHAPE). Network: conv widths
# 24-56-128-224-384, 128-d embeddings (1.31 M parameters, 29.7 MFLOP per embedding).
# models/MODEL_CARD.md describes the model; docs/EXPERIMENTS.md what was tried and not kept.
set -eu
cd "$(dirname "$0")/.."
. models/recipe-common.sh
RUN=earshot-v1
DEV_QUERIES=${EARSHOT_DEV_QUERIES:-$CORPUS/q-train-dev}

if finished "$RUN"; then
    echo "recipe done: $CK/$RUN/last.pt"
    exit 0
fi
if [ ! -f "$CORPUS/train/catalog.tsv" ]; then
    "$EVAL/fetch-corpus" --config "$EVAL/public.conf" --set train --dest "$CORPUS" --with-midi
fi
if [ ! -f "$DEV_QUERIES/truth.tsv" ]; then
    "$EVAL/make-queries" --set-dir "$CORPUS/train" --out "$DEV_QUERIES" \
        --conditions clean,noise10,noise5,noise0 --lengths 1,3,5 --jobs 1
fi
$PY -m models.train --run "$RUN" --corpus "$CORPUS/train" --dev-queries "$DEV_QUERIES" \
    --budget-min 85 --channels 24,56,128,224,384 --spec-mask 0.5 \
    --exclude-albums planetblupi-music-midi --holdout-albums freedoom,openttd-openmsx \
    --holdout-frac 0.25 --album-frac 0.5 --album-group 8
echo "recipe done: $CK/$RUN/last.pt"

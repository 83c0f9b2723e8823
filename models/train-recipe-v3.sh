#!/bin/sh
# Trains earshot model v3 (models/earshot-v3.emod) with a fixed seed: model v2
# (models/earshot-v2.emod, which models/train-recipe-v2.sh reproduces) trained on for 4 800
# steps at lr 3e-4 (about 90 minutes on 2 quiet CPU cores with jemalloc, below), with v2's data,
# holdout and augmentations;
# resumable in pieces (re-run this script after an interruption or a `kill` of the training
# process, which saves before it exits: a finished run is skipped, an unfinished one resumes
# from its last.pt under models/checkpoints/; every piece's steps and minutes are in the log
# and the checkpoint's history).
#
#   nohup nice -n 3 models/train-recipe-v3.sh >> models/checkpoints/recipe-v3.log 2>&1 &
#
# Why: v2's second stage (90 minutes at lr 5e-4 on from the first) still gained on every train
# length (docs/EXPERIMENTS.md), so the 1 s clips, `hall` and `speed2` may gain from a longer run
# within the 8-hour budget (v1 85 minutes, v2 150, this stage 166 minutes of training as it was
# run, its first 1 574 steps with glibc's malloc beside other jobs: 6.7 hours in all).
# The budget is in steps (--budget-steps), not minutes: a time budget gives fewer steps where
# other jobs share the cores, so the same command would make another model. The
# run keeps v2's seeded holdout (the same --holdout-* arguments), so the calibration songs stay
# unseen. A warm start from the model file has no optimizer state: a fresh warm-up and cosine at
# a lower peak than v2's last stage.
#
# Then (models/MODEL_CARD.md, "Training recipe and time"): export, add the music detector,
# calibrate every code (scripts/calibrate-model.sh), and compare with v2 on the same train clips
# before any eval run.
#
# Environment: EARSHOT_CORPUS and EVAL (models/recipe-common.sh, which makes missing data first).
# libjemalloc2 (scripts/install-deps.sh installs it): the recipe preloads it (use_jemalloc in
# models/recipe-common.sh), fewer minutes for the same steps.
set -eu
cd "$(dirname "$0")/.."
. models/recipe-common.sh
RUN=earshot-v3

if finished "$RUN"; then
    echo "recipe done: $CK/$RUN/last.pt"
    exit 0
fi
prepare_v2_data
use_jemalloc
set -f  # the '*' of --holdout-albums is the script's, not the shell's
$PY -m models.train --run "$RUN" $V2_ARGS \
    --init-from-model models/earshot-v2.emod --budget-steps 4800 --lr 3e-4
echo "recipe done: $CK/$RUN/last.pt"

# Shared by the training recipes (models/train-recipe*.sh; sourced, from the repository root):
# the interpreter and checkpoint folder, the corpus and eval tools, whether a run finished, and
# the data and arguments of model v2's training, which later stages keep (the same seeded
# holdout, so the calibration songs stay unseen).
# Environment: EARSHOT_CORPUS, the fetch-corpus destination (default
# $HOME/.cache/earshot-corpus; the train set is its train/ folder), EVAL, the evaluation tools
# (default ../shared/eval).
PY=/usr/bin/python3
CK=models/checkpoints
CORPUS=${EARSHOT_CORPUS:-$HOME/.cache/earshot-corpus}
EVAL=${EVAL:-../shared/eval}
export EVAL
mkdir -p "$CK"

finished() {  # the checkpoint records a finished run
    [ -f "$CK/$1/last.pt" ] && $PY -c "
import sys, torch
sys.exit(0 if torch.load('$CK/$1/last.pt')['state'].get('done') else 1)" 2>/dev/null
}

# Model v2's data, made when missing: the train set with its MIDI renders, its synthetic rooms
# and the dev metric's queries; then V2_ARGS, its training arguments (without the schedule).
prepare_v2_data() {
    DEV_QUERIES=$CORPUS/q-train-dev2
    if [ ! -f "$CORPUS/train/catalog.tsv" ]; then
        "$EVAL/fetch-corpus" --config "$EVAL/public.conf" --set train --dest "$CORPUS" --with-midi
    fi
    if [ ! -f "$CORPUS/train-synthroom/ir.tsv" ]; then
        $PY scripts/make-synthetic-rooms.py --set-dir "$CORPUS/train" --out "$CORPUS/train-synthroom"
    fi
    if [ ! -f "$DEV_QUERIES/truth.tsv" ]; then
        "$EVAL/make-queries" --set-dir "$CORPUS/train-synthroom" --out "$DEV_QUERIES" \
            --conditions clean,noise5,room,hall,speed2 --lengths 1,3,5 --limit-songs 48 \
            --holdout 0.25 --per-cell 2 --seed 21 --jobs 1
    fi
    V2_ARGS="--corpus $CORPUS/train --dev-queries $DEV_QUERIES \
        --channels 24,56,128,224,384 --spec-mask 0.5 \
        --exclude-albums planetblupi-music-midi --holdout-albums * --holdout-frac 0.2 \
        --album-frac 0.5 --album-group 8 \
        --speed-range 0.03 --p-speed 0.5 \
        --rt60-max 3.0 --rt60-log --rir-sec 2.0 --drr-db=-15,10 --p-device 0.5"
}

# jemalloc for a run budgeted in steps (Debian package libjemalloc2), keeping the pages it frees.
# With glibc's malloc a training step hands its large activation buffers back to the kernel
# and faults them in again on the next step: a third of the step's CPU went to page faults
# (65 000 a second). Only memory allocation changes, so a step budget makes the same steps,
# faster; a recipe budgeted in minutes (v1, v2) would make more steps, so those leave it out.
use_jemalloc() {
    local lib
    for lib in /usr/lib/*/libjemalloc.so.2; do
        if [ -f "$lib" ]; then
            export LD_PRELOAD=$lib MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1
            return
        fi
    done
    echo "libjemalloc2 not installed: training with glibc's malloc, slower" \
        "(docs/EXPERIMENTS.md)" >&2
}

#!/bin/bash
# Calibrates a model file in place on train music the model never trained on: the no-match
# threshold tables of every index code it ships (models.calibrate_threshold, --fit $FIT) and
# the live listen's rules (models.calibrate_listen). Nothing from the eval set is used.
#
#   scripts/calibrate-model.sh MODEL [WORK]      (WORK: default out/calibrate; resumable)
#
# MODEL: a model file exported from a checkpoint (models.export), with its music detector
# (models.add_music_detector) and a training record naming the songs kept unseen. Steps:
#  1. a set folder of those songs with synthetic rooms (models.unseen_set), four query sets
#     cut from it (seeds 7, 11, 21, 33; clean, noise10/5/0, room, hall, speed2; 1-10 s; 30 % of
#     the songs out of the index) and two sets of 10 s listens with lead-ins and `nomusic` clips
#     (seeds 11, 12);
#  2. per code, an index per query set, the clips queried with the threshold off (those of
#     SPEED_CODES also with every speed stretch, --speed-search always), the listens traced
#     with the music detector and with the level gate alone (the guard);
#  3. the threshold tables written (the model's current default code as the main table, the
#     others --for-code; each with the speed search's table over it when in SPEED_CODES; check
#     the fit first with --crossval, docs/EXPERIMENTS.md), the listen rules (main rule, then
#     per code), then DEFAULT_CODE made the model's default code (calibrate_threshold
#     --set-default: its tables and rule become the main ones) and the popularity-weighted
#     decision fitted on its results (models.calibrate_popularity): writing changes the file's
#     hash, so every index and trace is made before the first write (a new export has no
#     background weight yet: the traced looks carry their score and background, and
#     calibrate_listen weighs them as the written table does).
# Environment: EARSHOT_CORPUS (fetch-corpus destination, default $HOME/.cache/earshot-corpus),
# EVAL (the evaluation tools, default ../shared/eval), EARSHOT (the CLI, default
# build/index-builder/earshot), JOBS (make-queries workers, default 2), FIT (the threshold
# fit: per-length, smooth or pooled; default per-length); for a quick trial,
# SEEDS (default "7 11 21 33"), LISTEN_SEEDS ("11 12") and CODES_ONLY (code names, default
# all); SPEED_STRETCHES (default 1.02,0.98,1.01,0.99), SPEED_CODES (default 32 16-opq-unit
# 8-opq-unit 32-g5-opq-unit) and DEFAULT_CODE (the code the model ships as its default,
# default 32-g5-opq-unit; it must be in SPEED_CODES).
set -euo pipefail
cd "$(dirname "$0")/.."
M=${1:?usage: scripts/calibrate-model.sh MODEL [WORK]}
W=${2:-out/calibrate}
CORPUS=${EARSHOT_CORPUS:-$HOME/.cache/earshot-corpus}
E=${EVAL:-../shared/eval}
X=${EARSHOT:-build/index-builder/earshot}
JOBS=${JOBS:-2}
PY=/usr/bin/python3
FIT=${FIT:-per-length}
SEEDS=${SEEDS:-7 11 21 33}
LISTEN_SEEDS=${LISTEN_SEEDS:-11 12}
# The clip mode's speed search (core/recognizer.h, SpeedSearchParams): its stretches, and the
# codes that get a table for it (the default code first; others run without the search).
SPEED_STRETCHES=${SPEED_STRETCHES:-1.02,0.98,1.01,0.99}
SPEED_CODES=${SPEED_CODES:-32 16-opq-unit 8-opq-unit 32-g5-opq-unit}
speed_code() { [[ " $SPEED_CODES " == *" $1 "* ]]; }
DEFAULT_CODE=${DEFAULT_CODE:-32-g5-opq-unit}
# name:earshot build options (each names its whole code: the model's default does not leak in).
CODES=("32:--pq-m 32" "16:--pq-m 16" "16-opq-unit:--pq-m 16 --opq 10 --unit-norm"
       "8-opq-unit:--pq-m 8 --opq 10 --unit-norm"
       "32-g4-opq-unit:--pq-m 32 --group 4 --opq 10 --unit-norm"
       "32-g5-opq-unit:--pq-m 32 --group 5 --opq 10 --unit-norm")
model_code() { $X info "$M" | $PY -c "import json, sys; print(json.load(sys.stdin)['index_code'])"; }
default=$(model_code)  # the main tables' code until DEFAULT_CODE takes its place (step 3)
if [ -n "${CODES_ONLY:-}" ]; then
    kept=()
    for code in "${CODES[@]}"; do
        [[ " $CODES_ONLY " == *" ${code%%:*} "* ]] && kept+=("$code")
    done
    CODES=("${kept[@]}")
fi
mkdir -p "$W"

# 1. Data.
if [ ! -f "$CORPUS/train-synthroom/ir.tsv" ]; then
    $PY scripts/make-synthetic-rooms.py --set-dir "$CORPUS/train" --out "$CORPUS/train-synthroom"
fi
$PY -m models.unseen_set --model "$M" --catalog "$CORPUS/train/catalog.tsv" \
    --rooms "$CORPUS/train-synthroom" --out "$W/unseen"
for s in $SEEDS; do
    [ -f "$W/q-cal-$s/truth.tsv" ] || "$E/make-queries" --set-dir "$W/unseen" \
        --out "$W/q-cal-$s" --conditions clean,noise10,noise5,noise0,room,hall,speed2 \
        --lengths 1,2,3,5,10 --holdout 0.3 --seed "$s" --jobs "$JOBS" --force
done
for s in $LISTEN_SEEDS; do
    [ -f "$W/q-listen-$s/truth.tsv" ] || "$E/make-queries" --set-dir "$W/unseen" \
        --out "$W/q-listen-$s" --lengths 10 --holdout 0.3 --seed "$s" --jobs "$JOBS" --force \
        --conditions listen-clean,listen-noise5,listen-room,listen-hall,listen-speed2,nomusic
done

# 2. Indexes, results and traces, per code (a step already done is skipped).
model_hash() { $X info "$M" | $PY -c "import json, sys; print(json.load(sys.stdin)['hash'])"; }
# Each code folder's model-hash lists the hashes of the file it was made for: the export, then
# the file after each write of step 3 (the same network), so a rerun keeps the work done.
remember_hash() {
    local h
    h=$(model_hash)
    for code in "${CODES[@]}"; do echo "$h" >> "$W/${code%%:*}/model-hash"; done
}
hash=$(model_hash)
for code in "${CODES[@]}"; do
    name=${code%%:*}
    read -r -a opts <<< "${code#*:}"
    d=$W/$name
    mkdir -p "$d"
    if ! grep -qxF "$hash" "$d/model-hash" 2>/dev/null; then  # another model: start over
        rm -rf "${d:?}"/*
        echo "$hash" > "$d/model-hash"
    fi
    for s in $SEEDS; do
        [ -f "$d/idx-$s/manifest.json" ] || $X build -q --model "$M" "${opts[@]}" \
            --out "$d/idx-$s" "$W/q-cal-$s/index-catalog.tsv"
    done
    for s in $LISTEN_SEEDS; do
        [ -f "$d/idx-listen-$s/manifest.json" ] || $X build -q --model "$M" "${opts[@]}" \
            --out "$d/idx-listen-$s" "$W/q-listen-$s/index-catalog.tsv"
    done
    speed=()  # the results also carry each clip's best stretch
    speed_code "$name" && speed=(--speed-search always --speed-stretches "$SPEED_STRETCHES")
    for s in $SEEDS; do
        [ -f "$d/$s.jsonl" ] || $X query -q --model "$M" --index "$d/idx-$s" "${speed[@]}" \
            --threshold-base -1 -o "$d/$s.jsonl.tmp" "$W/q-cal-$s/queries"
        [ -f "$d/$s.jsonl" ] || mv "$d/$s.jsonl.tmp" "$d/$s.jsonl"
    done
    for s in $LISTEN_SEEDS; do
        for gate in detector level; do
            flag=()
            [ "$gate" = level ] && flag=(--no-music-detector)
            t=$d/trace-$gate-$s.jsonl
            [ -f "$t" ] || { $X query -q --model "$M" --index "$d/idx-listen-$s" "${flag[@]}" \
                --trace "$t.tmp" -o /dev/null "$W/q-listen-$s/queries" && mv "$t.tmp" "$t"; }
        done
    done
done

# 3. Thresholds, then listen rules.
for code in "${CODES[@]}"; do
    name=${code%%:*}
    args=()
    for s in $SEEDS; do
        args+=(--truth "$W/q-cal-$s/truth.tsv" --details "$W/q-cal-$s/details.tsv"
               --results "$W/$name/$s.jsonl")
    done
    for_code=()
    [ "$name" != "$default" ] && for_code=(--for-code "$name")
    $PY -m models.calibrate_threshold --model "$M" --fit "$FIT" --target-fp 0.001 \
        --shared-audio 0.5 --catalog "$CORPUS/train/catalog.tsv" "${args[@]}" \
        --write "${for_code[@]}" | tee "$W/$name/thresholds.txt"
    remember_hash
    if speed_code "$name"; then  # the speed search's table, over the clip table
        $PY -m models.calibrate_threshold --model "$M" --fit "$FIT" --target-fp 0.0005 \
            --shared-audio 0.5 --catalog "$CORPUS/train/catalog.tsv" "${args[@]}" \
            --speed --stretches "$SPEED_STRETCHES" --write "${for_code[@]}" \
            | tee "$W/$name/speed.txt"
        remember_hash
    fi
done
for code in "${CODES[@]}"; do
    name=${code%%:*}
    for_code=()
    [ "$name" != "$default" ] && for_code=(--for-code "$name")
    args=()
    for s in $LISTEN_SEEDS; do
        args+=(--truth "$W/q-listen-$s/truth.tsv" --trace "$W/$name/trace-detector-$s.jsonl"
               --guard-truth "$W/q-listen-$s/truth.tsv"
               --guard-trace "$W/$name/trace-level-$s.jsonl")
    done
    # Another code without a rule of its own answers listens with the main rule.
    if $PY -m models.calibrate_listen --model "$M" "${args[@]}" --write "${for_code[@]}" \
        > "$W/$name/listen.txt"; then
        cat "$W/$name/listen.txt"
        remember_hash
    elif [ "$name" = "$default" ]; then
        exit 1
    else
        echo "code $name: no listen rule of the family meets the targets; it keeps the main rule"
    fi
done
# DEFAULT_CODE becomes the model's default code (its clip table fitted again from the same
# results, to the same values), then the popularity-weighted decision on its results and table.
if [ "$default" != "$DEFAULT_CODE" ] && [ -f "$W/$DEFAULT_CODE/${SEEDS%% *}.jsonl" ]; then
    args=()
    for s in $SEEDS; do
        args+=(--truth "$W/q-cal-$s/truth.tsv" --details "$W/q-cal-$s/details.tsv"
               --results "$W/$DEFAULT_CODE/$s.jsonl")
    done
    $PY -m models.calibrate_threshold --model "$M" --fit "$FIT" --target-fp 0.001 \
        --shared-audio 0.5 --catalog "$CORPUS/train/catalog.tsv" "${args[@]}" \
        --write --for-code "$DEFAULT_CODE" --set-default | tee "$W/$DEFAULT_CODE/default.txt"
    remember_hash
    default=$DEFAULT_CODE
fi
if [ -f "$W/$default/${SEEDS%% *}.jsonl" ]; then
    args=()
    for s in $SEEDS; do
        args+=(--truth "$W/q-cal-$s/truth.tsv" --results "$W/$default/$s.jsonl")
    done
    $PY -m models.calibrate_popularity --model "$M" "${args[@]}" --write \
        | tee "$W/$default/popularity.txt"
    remember_hash
fi
echo "calibrated: $M"

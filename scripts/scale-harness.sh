#!/usr/bin/env bash
# The scale harness (docs/SCALE.md): real queries against a catalogue grown in code space.
#
#   scripts/scale-harness.sh REAL_INDEX SOURCE_INDEX QUERY_SET [SIZES...]
#   e.g. scripts/scale-harness.sh eval-index train-index q-public 10000 100000
#
# REAL_INDEX: the index of the queried catalogue (scripts/eval-public.sh builds it from
# QUERY_SET/index-catalog.tsv); SOURCE_INDEX: an index of other songs, same model (the train
# set); QUERY_SET: a make-queries folder (queries/, truth.tsv). Writes under $OUT (out/scale):
# the indexes real+363 train songs (codes re-encoded, not relabeled), real+363 synthetic songs
# made from the same codes, and real+N synthetic songs for each size; then prints the
# postings-per-list figures of each (and of the uniform generator at the largest size) and the
# impostor figures of every out-of-catalogue clip and every $IN_EVERY-th in-catalogue clip
# answered against each index. Generator knobs: $SEED (1), $LIST_BLOCK (16), $CODE_BLOCK (16).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { sed -n 2,16p "$0"; exit 2; }
REAL=$1 SOURCE=$2 QSET=$3
shift 3
SIZES=("$@")
BUILD=${BUILD:-build} OUT=${OUT:-out/scale} MODEL=${MODEL:-models/$(<models/SHIPPED)}
SEED=${SEED:-1} LIST_BLOCK=${LIST_BLOCK:-16} CODE_BLOCK=${CODE_BLOCK:-16} IN_EVERY=${IN_EVERY:-1}
GEN=$BUILD/bench/earshot_make_scale_index
EARSHOT=$BUILD/index-builder/earshot
mkdir -p "$OUT"

# The clips: all out-of-catalogue ones, every IN_EVERY-th in-catalogue one (truth.tsv order).
rm -rf "$OUT/queries" && mkdir -p "$OUT/queries"
awk -F'\t' -v every="$IN_EVERY" 'NR > 1 { if ($2 == "-" || (n++ % every) == 0) print $1 }' \
    "$QSET/truth.tsv" | while read -r q; do
    ln -s "$(realpath "$QSET/queries/$q")" "$OUT/queries/$q"
done

n_source=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["songs"])' \
    "$SOURCE/manifest.json")
gen() {  # NAME SONGS LIST_BLOCK CODE_BLOCK
    [ -f "$OUT/$1/manifest.json" ] || "$GEN" --model "$MODEL" --real "$REAL" --source "$SOURCE" \
        --songs "$2" --seed "$SEED" --list-block "$3" --code-block "$4" --out "$OUT/$1"
}
names=(real)
gen "real+train$n_source" "$n_source" 1 1
gen "real+synthetic$n_source" "$n_source" "$LIST_BLOCK" "$CODE_BLOCK"
names+=("real+train$n_source" "real+synthetic$n_source")
for n in "${SIZES[@]}"; do
    gen "real+synthetic$n" "$n" "$LIST_BLOCK" "$CODE_BLOCK"
    names+=("real+synthetic$n")
done
if [ ${#SIZES[@]} -gt 0 ]; then
    n=${SIZES[-1]}
    gen "real+free-permutation$n" "$n" 100000 256  # lists and codes permuted freely
    names+=("real+free-permutation$n")
    per_song=$(( $("$GEN" --model "$MODEL" --list-stats "$SOURCE" | /usr/bin/python3 -c \
        'import json,sys; d=json.load(sys.stdin); print(d["stored"] // d["songs"])') ))
    [ -f "$OUT/uniform$n/manifest.json" ] || $BUILD/bench/earshot_make_synthetic_index "$MODEL" \
        "$n" "$per_song" "$OUT/uniform$n" --quantizer "$REAL/quantizer.eq" >/dev/null
fi

echo "== postings per list"
for d in "$REAL" "$SOURCE" "${names[@]:1}" ${n:+uniform$n}; do
    [ -d "$d" ] || d=$OUT/$d
    "$GEN" --model "$MODEL" --list-stats "$d"
done

echo "== impostors ($(ls "$OUT/queries" | wc -l) clips)"
args=()
for name in "${names[@]}"; do
    index=$OUT/$name
    [ "$name" = real ] && index=$REAL
    [ -f "$OUT/results-$name.jsonl" ] || "$EARSHOT" query -q --model "$MODEL" --index "$index" \
        -o "$OUT/results-$name.jsonl" "$OUT/queries"
    args+=("$name=$OUT/results-$name.jsonl")
done
/usr/bin/python3 scripts/scale_figures.py "$QSET/truth.tsv" "${args[@]}"

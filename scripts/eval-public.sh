#!/usr/bin/env bash
# The public evaluation, end to end, with the ruler in ../shared/eval:
#   fetch-corpus --set eval -> make-queries (defaults) -> earshot build on index-catalog.tsv
#   -> earshot query on every clip -> score.
# Usage: scripts/eval-public.sh [extra `earshot query` options]
# Environment: EARSHOT_MODEL (the shipped model, named in models/SHIPPED),
#   EARSHOT_CORPUS ($HOME/.cache/earshot-corpus), OUT (out/eval-public), BUILD (build),
#   EVAL (../shared/eval), EARSHOT_BUILD_ARGS (index code options, e.g. "--pq-m 32"),
#   CONDITIONS (make-queries --conditions, e.g. clean,noise10,noise5,noise0,room,hall,speed2
#   for the seven-condition run; default: make-queries' defaults).
set -euo pipefail
source "$(dirname "$0")/eval-common.sh"
if [[ ! -f $out/queries/truth.tsv ]]; then
  "$eval_dir/make-queries" --set-dir "$corpus/eval" --out "$out/queries" \
    ${CONDITIONS:+--conditions "$CONDITIONS"}
fi
say "building the index of $(($(wc -l < "$out/queries/index-catalog.tsv") - 1)) songs with $model"
/usr/bin/time -f "build: %e s wall, %U s user, %M KB max RSS" \
  "$earshot" build --model "$model" "${build_args[@]}" --out "$out/index" "$out/queries/index-catalog.tsv"
say "querying $(ls "$out/queries/queries" | wc -l) clips"
/usr/bin/time -f "query: %e s wall, %U s user, %M KB max RSS" \
  "$earshot" query --model "$model" --index "$out/index" --output "$out/results.jsonl" "$@" \
  "$out/queries/queries"
"$eval_dir/score" --truth "$out/queries/truth.tsv" --results "$out/results.jsonl" \
  --plot "$out/hit-rate.png" | tee "$out/score.txt"

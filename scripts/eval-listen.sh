#!/usr/bin/env bash
# The public listen evaluation (docs/EVALUATION.md, "Listens"), with the ruler in ../shared/eval:
#   - the standard listen run: 960 clips (a lead-in, then 10 s of music; or no music at all)
#     answered as the page answers them (`earshot query --live`), scored;
#   - continuous mode on non-music audio: 160 `nomusic` clips of 60 s (silence, room tone,
#     ambience, speech) listened to as the app's continuous mode does (`earshot query
#     --continuous`); every song it reports is a false song: printed per hour of audio.
# Uses the index of scripts/eval-public.sh (built here if missing).
# Usage: scripts/eval-listen.sh
# Environment: EARSHOT_MODEL (the shipped model, named in models/SHIPPED),
#   EARSHOT_CORPUS ($HOME/.cache/earshot-corpus), OUT (out/eval-public), BUILD (build),
#   EVAL (../shared/eval), EARSHOT_BUILD_ARGS (index code options, e.g. "--pq-m 32").
set -euo pipefail
source "$(dirname "$0")/eval-common.sh"
if [[ ! -f $out/listens/truth.tsv ]]; then
  "$eval_dir/make-queries" --set-dir "$corpus/eval" --out "$out/listens" --lengths 10 \
    --conditions listen-clean,listen-noise5,listen-room,listen-hall,listen-speed2,nomusic
fi
if [[ ! -f $out/nomusic60/truth.tsv ]]; then
  "$eval_dir/make-queries" --set-dir "$corpus/eval" --out "$out/nomusic60" --lengths 60 \
    --conditions nomusic
fi
if ! "$earshot" verify "$out/index" --model "$model" >/dev/null 2>&1; then
  say "building the index of $(($(wc -l < "$out/listens/index-catalog.tsv") - 1)) songs with $model"
  "$earshot" build -q --model "$model" "${build_args[@]}" --out "$out/index" \
    "$out/listens/index-catalog.tsv"
fi

say "listens: $(ls "$out/listens/queries" | wc -l) clips, answered live"
"$earshot" query -q --model "$model" --index "$out/index" --live --output "$out/listens.jsonl" \
  "$out/listens/queries"
"$eval_dir/score" --truth "$out/listens/truth.tsv" --results "$out/listens.jsonl"

say "continuous mode: $(ls "$out/nomusic60/queries" | wc -l) clips of non-music audio"
"$earshot" query -q --model "$model" --index "$out/index" --continuous \
  --output "$out/continuous-nomusic.jsonl" "$out/nomusic60/queries"
/usr/bin/python3 - "$out/continuous-nomusic.jsonl" <<'PY'
import json, sys
hours = songs = stops = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    hours += r["audio_s"] / 3600.0
    songs += sum(e["type"] == "match" for e in r["events"])
    stops += sum(e["type"] == "music-stopped" for e in r["events"])
print(f"continuous mode on non-music audio: {songs} false song(s) in {hours:.2f} h "
      f"= {songs / hours:.2f} per hour ({stops} music-stopped events)")
PY

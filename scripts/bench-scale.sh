#!/usr/bin/env bash
# Scale benchmark: what an index of N songs costs to build, store, verify and search in WASM, for
# catalogue sizes no real collection here reaches. Prints figures (a table), asserts nothing.
#
#   scripts/bench-scale.sh [N ...]          # default: 10000 100000
#
# Per N, a synthetic format 2 index (build/bench/earshot_make_synthetic_index: N songs of 720
# windows, 3 minutes at the 0.25 s hop, random codes with the shipped model's code, 64 KB
# blocks; the same IndexBuilder and block-by-block writing as `earshot build`) in $OUT/synth-N:
#   - index bytes, and per minute of audio; the directory's bytes (what a page fetches first);
#   - build time and peak memory (/usr/bin/time);
#   - `earshot verify` time and peak memory, when N <= VERIFY_MAX (it holds the whole index);
#   - in WASM under node (e2e/bench-wasm-index.mjs, 30 s of the first demo song, one run), when
#     the loaded index fits the module's 1 GB heap (N <= WASM_MAX): heap, CPU per second of
#     audio, index load CPU.
# Random songs: no real query matches them; recognition at scale is measured with real codes
# by scripts/scale-harness.sh (docs/SCALE.md). A million songs need about 25 GB of disk.
#
# Environment: BUILD (build), OUT (out/bench-scale), MODEL (the shipped model, named in
# models/SHIPPED), VERIFY_MAX (100000), WASM_MAX (20000), KEEP=1 keeps the indexes.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
OUT=${OUT:-out/bench-scale}
MODEL=${MODEL:-models/$(<models/SHIPPED)}
VERIFY_MAX=${VERIFY_MAX:-100000}
WASM_MAX=${WASM_MAX:-20000}
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(10000 100000)

gen=$BUILD/bench/earshot_make_synthetic_index
cli=$BUILD/index-builder/earshot
for tool in "$gen" "$cli"; do
  [[ -x $tool ]] || { echo "bench-scale: $tool is missing (make native)" >&2; exit 2; }
done
[[ -f out/site/wasm/earshot-core.wasm ]] || echo "bench-scale: no built site (scripts/demo.sh --build-only): WASM figures skipped" >&2
mkdir -p "$OUT"

# "seconds peak_kb" of a command (its output to stderr).
timed() {
  local log
  log=$(mktemp)
  /usr/bin/time -f "%e %M" -o "$log" "$@" >&2
  cat "$log"
  rm -f "$log"
}
mb() { awk -v b="$1" 'BEGIN { if (b < 1e6) printf "%.0f KB", b / 1e3; else printf "%.1f MB", b / 1e6 }'; }

rows=()
for n in "${sizes[@]}"; do
  dir=$OUT/synth-$n
  rm -rf "$dir"
  read -r build_s build_kb < <(timed "$gen" "$MODEL" "$n" 720 "$dir" --format 2)
  bytes=$(du -cb "$dir"/* | tail -1 | cut -f1)
  dir_bytes=$(stat -c %s "$dir/directory.ed")
  minutes=$(node -e "console.log(JSON.parse(require('fs').readFileSync('$dir/manifest.json')).duration_s / 60)")
  per_min=$(awk -v b="$bytes" -v m="$minutes" 'BEGIN { printf "%.2f KB", b / m / 1000 }')
  verify="(not run: N > VERIFY_MAX)"
  if (( n <= VERIFY_MAX )); then
    read -r v_s v_kb < <(timed "$cli" verify "$dir")
    verify="$v_s s, $(mb $((v_kb * 1000)))"
  fi
  wasm="(not run)"
  if (( n <= WASM_MAX )) && [[ -f out/site/wasm/earshot-core.wasm ]]; then
    median=$(node e2e/bench-wasm-index.mjs --index "$dir" --seconds 30 --runs 1 | grep '^median' | sed 's/^median of 1: //')
    wasm=$(node -e "const m = JSON.parse(process.argv[1]); console.log(\`\${m.wasm_heap_mb.toFixed(0)} MB heap, \${m.cpu_ms_per_audio_s.toFixed(2)} ms/s, load \${(m.load_cpu_ms / 1000).toFixed(1)} s\`)" "$median")
  elif (( n > WASM_MAX )); then
    wasm="(not run: the loaded index exceeds the 1 GB heap)"
  fi
  rows+=("| $n | $(mb "$bytes") | $per_min | $(mb "$dir_bytes") | $build_s s, $(mb $((build_kb * 1000))) | $verify | $wasm |")
  [[ ${KEEP:-0} == 1 ]] || rm -rf "$dir"
done

echo
echo "Synthetic format 2 indexes, 720 windows a song, model $(basename "$MODEL"); $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo
echo "| songs | index | per minute of audio | directory | build: time, peak memory | verify: time, peak memory | WASM (node): heap, CPU per s of audio, index load CPU |"
echo "|---:|---:|---:|---:|---|---|---|"
printf '%s\n' "${rows[@]}"

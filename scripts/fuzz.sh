#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, clang with ASan + UBSan) and runs each one until its
# executions, summed over runs, reach RUNS; then prints a table: target, executions (this run
# and in all), seconds, coverage (libFuzzer's "cov": edges reached), corpus size, crashes. Any
# crash, leak or sanitizer report is kept in $OUT/crashes/ and makes the script exit non-zero:
# add it to tests/fuzz/corpus/<target>/ once fixed, so CI replays it for ever
# (docs/ROBUSTNESS.md).
#
#   scripts/fuzz.sh [RUNS] [TARGET...]     RUNS default 10000000; targets default all
#   JOBS       fuzzer processes at once (default: the number of cores); when there are more
#              cores than targets, each target gets JOBS / targets processes that share its
#              corpus (libFuzzer reloads the corpus the others write to)
#   TIME       at most this many seconds per target and run (default: no limit): a campaign
#              runs in pieces that resume; the corpus and the executions so far are kept in
#   OUT        (default build-fuzz/out): corpus/<target>/, <target>.log, <target>.total
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-10000000}
shift || true
TARGETS=("$@")
((${#TARGETS[@]})) || TARGETS=(model quantizer shard manifest directory lazy audio recognizer)
BUILD_FUZZ=${BUILD_FUZZ:-build-fuzz}
OUT=${OUT:-$BUILD_FUZZ/out}
JOBS=${JOBS:-$(nproc)}
PAR=$((JOBS / ${#TARGETS[@]}))
((PAR >= 1)) || PAR=1
FLAGS="-fsanitize=address,undefined,fuzzer-no-link -fno-omit-frame-pointer -fno-sanitize-recover=undefined -g"
FLAGS+=" -fsanitize-coverage-ignorelist=$PWD/tests/fuzz/coverage-ignorelist.txt"

command -v clang++ >/dev/null || { echo "fuzz.sh: needs clang (scripts/install-deps.sh)"; exit 2; }
CC=clang CXX=clang++ cmake -S . -B "$BUILD_FUZZ" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DEARSHOT_FUZZ=ON -DEARSHOT_BUILD_BENCH=OFF \
  "-DCMAKE_C_FLAGS=$FLAGS" "-DCMAKE_CXX_FLAGS=$FLAGS" \
  "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined" >/dev/null
cmake --build "$BUILD_FUZZ" -j"$JOBS" --target "${TARGETS[@]/#/earshot_fuzz_}"

# Most bytes one input may have: room for the seeds, small enough for fast executions.
declare -A MAX_LEN=([model]=32768 [quantizer]=16384 [shard]=4096 [manifest]=4096 [directory]=4096 [lazy]=4096
                    [audio]=32768 [recognizer]=24576)
mkdir -p "$OUT/crashes"
run_one() {
  local t=$1 corpus="$OUT/corpus/$t" log="$OUT/$t.log"
  mkdir -p "$corpus"
  local start=$SECONDS rc=0 done_before left
  done_before=$(awk '{n += $1} END {print n + 0}' "$OUT/$t.total" 2>/dev/null || echo 0)
  left=$((RUNS - done_before))
  if ((left <= 0)); then
    echo "0 0" >"$OUT/$t.status"
    : >"$log"
    return
  fi
  local i pids=()
  # allocator_release_to_os_interval_ms=-1: on a busy machine, ASan returning freed pages to the
  # system (madvise) stalled an input past -timeout twice; the same inputs replay in 0.2 s.
  for ((i = 0; i < PAR; i++)); do
    ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0:allocator_release_to_os_interval_ms=-1 \
    LSAN_OPTIONS=suppressions=$PWD/tests/fuzz/lsan-suppressions.txt \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      "$BUILD_FUZZ/tests/fuzz/earshot_fuzz_$t" -runs="$(((left + PAR - 1) / PAR))" \
      ${TIME:+-max_total_time=$TIME} -max_len="${MAX_LEN[$t]}" \
      -timeout=20 -rss_limit_mb=2560 -malloc_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$OUT/crashes/$t-" "$corpus" "tests/fuzz/corpus/$t" >"$log.$i" 2>&1 &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do wait "${pids[$i]}" || rc=$?; done
  cat "$log".* >"$log" && rm -f "$log".*
  echo "$rc $((SECONDS - start))" >"$OUT/$t.status"
  echo "$(executions "$log") $((SECONDS - start)) $(date -u +%FT%TZ)" >>"$OUT/$t.total"
}
# Executions a log reports, summed over the processes whose output it holds.
executions() {
  grep -o 'stat::number_of_executed_units: *[0-9]*' "$1" | awk '{n += $2} END {print n + 0}'
}
pids=()
for t in "${TARGETS[@]}"; do
  run_one "$t" &
  pids+=($!)
  while (($(jobs -rp | wc -l) * PAR >= JOBS)); do sleep 5; done
done
wait "${pids[@]}"

printf '%-11s %12s %12s %8s %8s %8s %8s\n' target executions in-all seconds cov corpus crashes
fail=0
for t in "${TARGETS[@]}"; do
  read -r rc secs <"$OUT/$t.status"
  execs=$(executions "$OUT/$t.log")
  cov=$(grep -E '^#[0-9]+' "$OUT/$t.log" | grep -o 'cov: [0-9]*' | grep -o '[0-9]*' | sort -n | tail -1 || true)
  corpus=$(find "$OUT/corpus/$t" -type f | wc -l)
  # slow-unit-* files are libFuzzer's notes of inputs that took over 10 s, which a loaded
  # machine can cause; -timeout (20 s) turns a truly hanging input into a timeout-* crash.
  crashes=$(find "$OUT/crashes" -name "$t-*" ! -name "$t-slow-unit-*" -type f | wc -l)
  all=$(awk '{n += $1} END {print n + 0}' "$OUT/$t.total")
  printf '%-11s %12s %12s %8s %8s %8s %8s\n' "$t" "${execs:-0}" "$all" "$secs" "${cov:--}" "$corpus" \
    "$crashes"
  if ((rc != 0 || crashes > 0)); then fail=1; echo "  $t: exit $rc, see $OUT/$t.log"; fi
done
exit $fail

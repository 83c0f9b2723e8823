# Sourced by scripts/eval-public.sh and scripts/eval-listen.sh: the settings both share, the
# native CLI built if missing, and the public eval set fetched (../shared/eval's ruler).
# Environment: EARSHOT_MODEL (the shipped model, named in models/SHIPPED),
#   EARSHOT_CORPUS ($HOME/.cache/earshot-corpus), OUT (out/eval-public), BUILD (build),
#   EVAL (../shared/eval), EARSHOT_BUILD_ARGS (`earshot build` options for the index, e.g.
#   "--pq-m 32" for the 32-byte code; default: the model's default code).
cd "$(dirname "${BASH_SOURCE[0]}")/.."
eval_dir=${EVAL:-../shared/eval}
corpus=${EARSHOT_CORPUS:-$HOME/.cache/earshot-corpus}
out=${OUT:-out/eval-public}
build=${BUILD:-build}
model=${EARSHOT_MODEL:-models/$(<models/SHIPPED)}
earshot=$build/index-builder/earshot
read -r -a build_args <<< "${EARSHOT_BUILD_ARGS:-}"
say() { printf '\033[1meval:\033[0m %s\n' "$*" >&2; }

[[ -x $earshot ]] || make native BUILD="$build"
mkdir -p "$out"
"$eval_dir/fetch-corpus" --config "$eval_dir/public.conf" --set eval --dest "$corpus"

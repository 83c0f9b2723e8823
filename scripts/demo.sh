#!/usr/bin/env bash
# One command for the browser demo: builds the CLI (native) and the WASM core, fetches the
# default Debian soundtrack package, builds its index, assembles the web app in out/site and
# serves it on http://127.0.0.1:$PORT/.
#
#   scripts/demo.sh                 build everything, then serve (Ctrl+C stops)
#   scripts/demo.sh --build-only    build everything, do not serve (CI, e2e tests)
#
# Environment: PORT (8080), BUILD (build), BUILD_WASM (build-wasm), JOBS (nproc),
#   EARSHOT_MODEL (default the shipped model, named in models/SHIPPED; else
#   models/random-init-v0.emod),
#   DEMO_PACKAGE (hex-a-hop-data), EARSHOT_CACHE (out/cache).
# Needs the packages of scripts/install-deps.sh (run it once).
set -euo pipefail
cd "$(dirname "$0")/.."
export NODE_PATH=${NODE_PATH:-/usr/share/nodejs}   # Emscripten's optimizer needs it

serve=1
[[ ${1:-} == --build-only ]] && serve=0
port=${PORT:-8080}
build=${BUILD:-build}
build_wasm=${BUILD_WASM:-build-wasm}
jobs=${JOBS:-$(nproc)}
package=${DEMO_PACKAGE:-hex-a-hop-data}
cache=${EARSHOT_CACHE:-out/cache}
say() { printf '\033[1mdemo:\033[0m %s\n' "$*" >&2; }

for tool in cmake ninja emcmake node apt-get dpkg-deb soxi; do
  command -v "$tool" >/dev/null || { say "missing '$tool': run scripts/install-deps.sh first"; exit 1; }
done
[[ -d node_modules/kissfft-js ]] || npm ci --no-audit --no-fund

model=${EARSHOT_MODEL:-}
if [[ -z $model ]]; then
  shipped=models/$(<models/SHIPPED)
  if [[ -f $shipped ]]; then
    model=$shipped
  else
    model=models/random-init-v0.emod
    printf '\033[1;31m%s\033[0m\n' \
      "WARNING: $shipped (the trained model) is missing; using $model." \
      "WARNING: its weights are random: it recognizes only near-exact copies of indexed audio," \
      "WARNING: not a song played through a speaker. Train/export the model (models/) for a real demo." >&2
  fi
fi
[[ -f $model ]] || { say "model $model not found"; exit 1; }

say "native build ($build): the earshot CLI"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target earshot -j"$jobs"

say "WASM build ($build_wasm)"
emcmake cmake -S . -B "$build_wasm" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -Dnlohmann_json_DIR="$PWD/scripts/cmake/nlohmann-json-wasm" >/dev/null
cmake --build "$build_wasm" --target earshot_wasm -j"$jobs"

say "demo catalog: $package"
catalog=$(scripts/fetch-demo-catalog.sh "$package" "$cache")

index_dir=out/demo-index
build_options=(--block-kb 16)  # format 2, small blocks of a few songs: the page checks each on its own
stamp="$(sha256sum "$model" "$catalog" | sha256sum | cut -c1-16) $(stat -c %Y "$build/index-builder/earshot") ${build_options[*]}"
if [[ ! -f $index_dir/manifest.json || "$(cat "$index_dir.stamp" 2>/dev/null)" != "$stamp" ]]; then
  say "index: earshot build -> $index_dir (format 2, blocks of at most 16 KB: a few songs each)"
  "$build/index-builder/earshot" build --model "$model" --out "$index_dir" "${build_options[@]}" --quiet "$catalog"
  echo "$stamp" >"$index_dir.stamp"
fi

node scripts/build-site.mjs --wasm "$build_wasm/wasm" --model "$model" --index "$index_dir" --out out/site

if ((serve)); then
  say "serving out/site on http://127.0.0.1:$port/"
  exec node scripts/serve.mjs --root out/site --host 127.0.0.1 --port "$port"
fi
say "built out/site; serve it with: node scripts/serve.mjs --root out/site --port $port"

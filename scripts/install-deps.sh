#!/usr/bin/env bash
# Installs everything earshot needs on Debian 12, from Debian packages and the npm registry only.
# Idempotent: packages already installed are not fetched again. Needs root (or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  # build
  build-essential cmake ninja-build pkg-config git
  # core and CLI libraries
  libsndfile1-dev libsoxr-dev libxnnpack-dev nlohmann-json3-dev libcli11-dev
  libpthreadpool-dev libcpuinfo-dev  # XNNPACK's link deps: libxnnpack-dev does not pull them
  libeigen3-dev  # quantizer rotation training (eigen-decomposition, SVD)
  libgtest-dev libbenchmark-dev
  # WebAssembly toolchain and node
  emscripten
  # Python side (model training/export tests, eval toolkit)
  python3-numpy python3-scipy python3-soundfile python3-matplotlib python3-torch
  libjemalloc2  # training recipes budgeted in steps preload it (models/recipe-common.sh)
  # audio tools (eval toolkit, fixtures, demo catalog)
  ffmpeg sox libsox-fmt-all unzip espeak-ng time
  # end-to-end tests
  chromium
  # fuzzing (scripts/fuzz.sh): clang with libFuzzer
  clang
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node and npm: any install will do (e.g. a NodeSource nodejs, which bundles npm and conflicts
# with Debian's npm package); Debian's packages only where the commands are missing.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]})); then
  sudo_cmd=""
  [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
  echo "install-deps: installing ${missing[*]}"
  $sudo_cmd apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# npm: KissFFT sources (kissfft-js) and playwright-core, pinned by package-lock.json.
if [[ ! -d node_modules/kissfft-js ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund
fi
echo "install-deps: ok"

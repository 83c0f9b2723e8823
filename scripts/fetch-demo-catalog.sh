#!/usr/bin/env bash
# Fetches a small Debian soundtrack package and writes a catalog (TSV: id, path, title, album)
# of its music files for `earshot build`. Only Debian's archive is used (apt-get download +
# dpkg-deb -x), into a cache folder; a second run downloads nothing.
#
#   scripts/fetch-demo-catalog.sh [PACKAGE] [CACHE_DIR]
#     PACKAGE    default hex-a-hop-data (3 songs, 9.6 min, 9 MB; not in the evaluation corpus)
#     CACHE_DIR  default out/cache
# Prints the catalog path. Other packages work if their music is Ogg/MP3/WAV/FLAC files of at
# least MIN_SECONDS (default 20) seconds, e.g. powermanga-data (used by the e2e no-match test).
set -euo pipefail
cd "$(dirname "$0")/.."

package=${1:-hex-a-hop-data}
cache=${2:-out/cache}
min_seconds=${MIN_SECONDS:-20}
mkdir -p "$cache/debs"
cache=$(cd "$cache" && pwd)
root="$cache/packages/$package"
catalog="$root/catalog.tsv"

if [[ ! -f "$root/.extracted" ]]; then
  if ! compgen -G "$cache/debs/${package}_*.deb" >/dev/null; then
    echo "fetch-demo-catalog: downloading $package from Debian" >&2
    # apt-get download writes to the current folder; _apt cannot write to /root-owned folders,
    # which only costs a harmless warning.
    (cd "$cache/debs" && apt-get download "$package" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2) || {
      echo "fetch-demo-catalog: could not download $package (run 'apt-get update' first?)" >&2
      exit 1
    }
  fi
  deb=$(ls "$cache/debs/${package}"_*.deb | head -n1)
  rm -rf "$root"
  mkdir -p "$root"
  dpkg-deb -x "$deb" "$root/files"
  dpkg-deb -f "$deb" Version >"$root/version"
  touch "$root/.extracted"
fi

version=$(cat "$root/version")
album="$package $version (Debian)"
tmp="$catalog.tmp"
printf 'id\tpath\ttitle\talbum\n' >"$tmp"
n=0
while IFS= read -r -d '' file; do
  seconds=$(soxi -D "$file" 2>/dev/null || ffprobe -v error -show_entries format=duration -of csv=p=0 "$file")
  awk -v s="$seconds" -v m="$min_seconds" 'BEGIN { exit !(s >= m) }' || continue
  name=$(basename "${file%.*}")
  # "music-game-1" -> "Music Game 1"
  title=$(echo "$name" | sed -E 's/[-_]+/ /g; s/\b(.)/\u\1/g')
  printf '%s\t%s\t%s\t%s\n' "$package/$name" "$file" "$title" "$album" >>"$tmp"
  n=$((n + 1))
done < <(find "$root/files" -type f \( -iname '*.ogg' -o -iname '*.mp3' -o -iname '*.wav' -o -iname '*.flac' -o -iname '*.opus' \) -print0 | sort -z)
if ((n == 0)); then
  echo "fetch-demo-catalog: no music files of >= ${min_seconds} s in $package" >&2
  exit 1
fi
mv "$tmp" "$catalog"
echo "fetch-demo-catalog: $n songs from $package $version" >&2
echo "$catalog"

#!/usr/bin/env bash
# Copies the training part of a preprocessed data set folder (dataset.json + store/) from a shared
# file system to node-local disk, once per node: run it with one task per node before training
# (the launchers do this when IFCN_STAGE_DATA is set). Safe to run again: a destination whose
# dataset.json and store files match the source is kept. The copy appears atomically (a temporary
# folder beside the destination, renamed when complete), so a rank never maps a half-copied store.
#   launch/stage.sh /lustre/project/prep /local/scratch/prep
set -euo pipefail

usage() {
    echo "usage: $0 SOURCE_DATASET_DIR LOCAL_DIR" >&2
    exit 2
}
[[ $# -eq 2 ]] || usage
src="${1%/}"
dst="${2%/}"
[[ -r "$src/dataset.json" ]] || { echo "$0: $src/dataset.json: cannot read the data set manifest" >&2; exit 1; }
if ! grep -q '"storeVersion"' "$src/dataset.json"; then
    echo "$0: $src has no training store: run 'ifcn store build --data $src' once first" >&2
    exit 1
fi

# Up to date already: same manifest and same store file sizes.
if [[ -r "$dst/dataset.json" ]] && cmp -s "$src/dataset.json" "$dst/dataset.json" \
    && diff <(cd "$src/store" && find . -type f -printf '%p %s\n' | sort) \
            <(cd "$dst/store" 2>/dev/null && find . -type f -printf '%p %s\n' | sort) >/dev/null 2>&1; then
    echo "stage: $dst is up to date ($(hostname))" >&2
    exit 0
fi

need=$(du -sb "$src/store" | cut -f1)
mkdir -p "$(dirname "$dst")"
free=$(df -B1 --output=avail "$(dirname "$dst")" | tail -1)
if (( need > free )); then
    echo "$0: $(dirname "$dst"): $need bytes needed, $free free on $(hostname)" >&2
    exit 1
fi
tmp="$dst.staging-$$"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"
start=$(date +%s.%N)
cp -r "$src/store" "$tmp/store"
cp "$src/dataset.json" "$tmp/dataset.json"
rm -rf "$dst"
mv "$tmp" "$dst"
trap - EXIT
echo "stage: $src -> $dst on $(hostname): $need bytes in $(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $start }") s" >&2

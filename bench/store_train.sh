#!/usr/bin/env bash
# Trains 2 ranks on one node from a data set folder and reports what docs/BENCHMARKS.md
# ("Training data at scale") lists: time from launch to the first step, samples/s of the last
# epoch, peak RSS of each rank (/usr/bin/time), and the node's peak memory for the ranks
# (RssAnon + RssFile sampled every 0.2 s from /proc; RssFile is the mapped store, shared through
# the page cache).
#   bench/store_train.sh DATA_DIR RUN_DIR [--cold] [ifcn train arguments...]
# --cold drops the page cache first (needs root: echo 3 > /proc/sys/vm/drop_caches).
# IFCN_BIN picks the binary (default .build/release/ifcn).
set -euo pipefail
[[ $# -ge 2 ]] || { echo "usage: $0 DATA_DIR RUN_DIR [--cold] [train arguments...]" >&2; exit 2; }
data="$1"; run="$2"; shift 2
cold=0
if [[ "${1:-}" == --cold ]]; then cold=1; shift; fi
bin="${IFCN_BIN:-$(cd "$(dirname "$0")/.." && pwd)/.build/release/ifcn}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
rm -rf "$run"; mkdir -p "$run"
if (( cold )); then sync; echo 3 > /proc/sys/vm/drop_caches; fi
log="$run.log"
start=$(date +%s.%N)
cache_before=$(free -b | awk '/^Mem:/ {print $6}')
mpirun --oversubscribe --bind-to none -n 2 sh -c '/usr/bin/time -f "peak RSS %M KB" -o "$0.rss$OMPI_COMM_WORLD_RANK" "$@"' "$run" \
    "$bin" train --data "$data" --output "$run" "$@" > "$log" 2>&1 &
job=$!
peak_anon=0; peak_file=0; first=""
while kill -0 "$job" 2>/dev/null; do
    anon=0; file=0
    for pid in $(pgrep -f -x "$bin train --data $data --output $run.*" || true); do
        a=$(awk '/^RssAnon/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        f=$(awk '/^RssFile/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        anon=$((anon + ${a:-0})); file=$((file > ${f:-0} ? file : ${f:-0}))
    done
    (( anon > peak_anon )) && peak_anon=$anon
    (( file > peak_file )) && peak_file=$file
    if [[ -z "$first" ]] && grep -q "first step starts" "$log"; then first=$(awk "BEGIN { print $(date +%s.%N) - $start }"); fi
    sleep 0.2
done
wait "$job" || { cat "$log"; exit 1; }
grep -E "first step starts|note:|^epoch" "$log" | sed 's/^/  /'
for r in 0 1; do echo "  rank $r $(cat "$run.rss$r")"; done
cache_after=$(free -b | awk '/^Mem:/ {print $6}')
store=0
[[ -d "$data/store" ]] && store=$(du -sb "$data/store" | cut -f1)
echo "  launch to first step (seen from outside, 0.2 s resolution): ${first:-?} s"
echo "  node: page cache grew by $(( (cache_after - cache_before) / 1048576 )) MB during the run"
echo "  node: peak RssAnon of both ranks together $((peak_anon / 1024)) MB; peak RssFile of one rank (mapped store pages) $((peak_file / 1024)) MB; store $((store / 1048576)) MB"

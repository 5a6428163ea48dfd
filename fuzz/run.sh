#!/usr/bin/env bash
# Fuzzes the input readers with libFuzzer (swiftc -sanitize=fuzzer,address): NIfTI, MetaImage, safetensors
# (with checkpoint loading) and the checkpoint-metadata parser, each for a fixed time.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]      default: 60 s, all four targets
#   fuzz/run.sh 60 FuzzNIfTI
#
# The targets (fuzz/Targets) are built in a scratch package ($IFCN_FUZZ_WORK, default /tmp/ifcn-fuzz) next to
# copies of the library sources they need, so the repository's Package.swift stays free of fuzzing. Each
# target starts from the committed seeds (fuzz/corpus/<target>) plus what earlier runs found; crashes are
# written to $IFCN_FUZZ_WORK/crashes, and a summary line per target (executions, coverage, crashes) to
# $IFCN_FUZZ_WORK/summary.txt. IFCN_MEMORY_LIMIT_GB=2 matches libFuzzer's malloc limit, so any allocation
# that the readers' own bounds let through and that libFuzzer reports is a finding.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${IFCN_FUZZ_WORK:-/tmp/ifcn-fuzz}
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(FuzzNIfTI FuzzMetaImage FuzzSafeTensors FuzzCheckpointMetadata)

mkdir -p "$work/Sources" "$work/crashes"
for module in IFCNSupport CNIfTI CCUDA COpenBLAS IFCNCompute IFCNEngine IFCNVolume; do
    rm -rf "$work/Sources/$module" && cp -Rp "$root/Sources/$module" "$work/Sources/$module"
done
for target in "$root"/fuzz/Targets/*/; do
    name=$(basename "$target")
    rm -rf "$work/Sources/$name" && cp -Rp "$target" "$work/Sources/$name"
done
cp "$root/fuzz/Package.swift.in" "$work/Package.swift"
# --sanitize links libFuzzer and ASan; the -X flags instrument every module's code too (SwiftPM alone
# instruments only the link), so coverage covers the readers, not just the harness.
flags=(-c release --sanitize=address --sanitize=fuzzer -Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=fuzzer-no-link,address)
swift build --package-path "$work" "${flags[@]}" 2>&1 | grep -Ev "warning: Cannot export local symbol" | tail -3
bin=$(swift build --package-path "$work" "${flags[@]}" --show-bin-path)

export IFCN_MEMORY_LIMIT_GB=2
: > "$work/summary.txt"
for target in "${targets[@]}"; do
    corpus="$work/corpus/$target"
    mkdir -p "$corpus"
    cp "$root/fuzz/corpus/$target"/* "$corpus/"
    log="$work/$target.log"
    set +e
    "$bin/$target" "$corpus" -max_total_time="$seconds" -rss_limit_mb=3072 -malloc_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 -artifact_prefix="$work/crashes/$target-" > "$log" 2>&1
    status=$?
    set -e
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || echo "cov: ?")
    units=$(ls "$corpus" | wc -l)
    crashes=$(ls "$work/crashes" | grep -c "^$target-" || true)
    echo "$target: exit $status, $runs executions in ${seconds} s, $cov (edges, features), corpus $units files, crash files $crashes" | tee -a "$work/summary.txt"
done

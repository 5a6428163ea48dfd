#!/usr/bin/env bash
# Issue 10's training-curve bar, measured on the CPU: do the GPU's speed settings (tf32 and bf16 convolution math)
# train as float32 does? The device check's protocol (scripts/gpu_check.sh, "training curve"): the demo's
# configuration (VerSe at 4 mm, sub-verse008 validated every epoch, paper variant, C=16, P=32, 2,000 iterations of
# 200 per epoch, learning rate stepped at 1,500), one rank each; fp32 with seeds 1, 2 and 3 (the seed-to-seed noise),
# tf32 and bf16 with seed 1, and bench/compare_curves.py's verdict. Here each reduced math is the CPU's emulation of
# the CUDA backend's (IFCN_EMULATE_GPU_MATH: every convolution's operands rounded as the GPU rounds them, exact
# products, float32 sums; docs/ARCHITECTURE.md), so the curves show what the rounding does to training, not a GPU's
# sum order. With --extra-seed S, tf32 and bf16 also train with seed S and are judged against fp32 with seed S (the
# other fp32 seeds its noise).
#   bench/precision_curves.sh OUT [--iterations N] [--extra-seed S]
# Writes OUT/curves.json (and OUT/curves_seedS.json), OUT/curve_<math>_<seed>/ (each run) and OUT/curves.md.
# IFCN_BIN picks the binary (default .build/release/ifcn), copied into OUT at the first call: every run of OUT trains
# with that copy. Runs as many trainings at once as the machine has cores, one thread each (so the figures do not
# depend on the core count).
set -euo pipefail
cd "$(dirname "$0")/.."
usage() { echo "usage: $0 OUT [--iterations N] [--extra-seed S]" >&2; exit 2; }
[[ $# -ge 1 ]] || usage
out=$1; shift
iterations=2000 extra=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --iterations) [[ $# -ge 2 && $2 =~ ^[0-9]+0$ && $2 -ge 30 ]] || { echo "--iterations: a multiple of 10, at least 30" >&2; exit 2; }
                      iterations=$2; shift 2 ;;
        --extra-seed) [[ $# -ge 2 && $2 =~ ^[0-9]+$ && $2 -ge 4 ]] || { echo "--extra-seed: 4 or more (1 to 3 are taken)" >&2; exit 2; }
                      extra=$2; shift 2 ;;
        *) usage ;;
    esac
done
ifcn="${IFCN_BIN:-.build/release/ifcn}"
[[ -x $ifcn ]] || { echo "$ifcn: not built (swift build -c release)" >&2; exit 2; }
per_epoch=$(( iterations / 10 )) lr_step=$(( iterations * 3 / 4 ))
mkdir -p "$out"
# Every run trains with one copy of the binary, taken now: a rebuild during the half hour changes none of them
# (a later call that finds runs finished keeps its copy).
if [[ ! -x $out/ifcn ]]; then
    cp "$ifcn" "$out/ifcn"
    echo "binary: $ifcn of commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- \
        Sources Package.swift 2>/dev/null || echo ", sources changed since")" > "$out/binary.txt"
fi
ifcn=$out/ifcn
[[ -f $out/data4/dataset.json ]] || "$ifcn" preprocess --input data/verse --output "$out/data4" --spacing 4 \
    --validation sub-verse008 > "$out/preprocess.txt" 2>&1

runs=(fp32:1 fp32:2 fp32:3 tf32:1 bf16:1)
[[ -n $extra ]] && runs+=(fp32:$extra tf32:$extra bf16:$extra)
jobs_at_once=$(nproc)
start=$(date +%s)
for spec in "${runs[@]}"; do
    math=${spec%:*} seed=${spec#*:} run="$out/curve_${spec%:*}_${spec#*:}"
    if [[ -f $run/metrics.jsonl ]] && [[ $(grep -c '"epoch"' "$run/metrics.jsonl") -eq 10 ]]; then continue; fi
    while [[ $(jobs -rp | wc -l) -ge $jobs_at_once ]]; do wait -n; done
    rm -rf "$run"
    echo "$(date +%T) training $math, seed $seed"
    IFCN_EMULATE_GPU_MATH=$math "$ifcn" train --data "$out/data4" --output "$run" --variant paper --channels 16 \
        --patch 32 --iterations "$iterations" --iters-per-epoch "$per_epoch" --lr-steps "$lr_step" --seed "$seed" \
        --backend cpu --threads 1 --progress-seconds 600 > "$run.txt" 2>&1 &
done
wait
echo "$(date +%T) trained ${#runs[@]} runs in $(( $(date +%s) - start )) s"
for spec in "${runs[@]}"; do
    run="$out/curve_${spec%:*}_${spec#*:}"
    [[ $(grep -c '"epoch"' "$run/metrics.jsonl" 2>/dev/null) -eq 10 ]] || { echo "$run did not finish: $run.txt" >&2; exit 1; }
done
status=0
{
    echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); flags: $(grep -m1 -o -w -E 'avx512f|avx2|fma|avx' /proc/cpuinfo | sort -u | xargs)"
    echo "$(cat "$out/binary.txt" 2>/dev/null || echo "binary: unknown"); $iterations iterations"
    echo
    python3 bench/compare_curves.py --reference fp32="$out/curve_fp32_1" --noise fp32-seed2="$out/curve_fp32_2" \
        --noise fp32-seed3="$out/curve_fp32_3" --candidate tf32="$out/curve_tf32_1" --candidate bf16="$out/curve_bf16_1" \
        --json "$out/curves.json" || status=$?
    if [[ -n $extra ]]; then
        echo
        python3 bench/compare_curves.py --reference fp32-seed$extra="$out/curve_fp32_$extra" \
            --noise fp32-seed1="$out/curve_fp32_1" --noise fp32-seed2="$out/curve_fp32_2" --noise fp32-seed3="$out/curve_fp32_3" \
            --candidate tf32-seed$extra="$out/curve_tf32_$extra" --candidate bf16-seed$extra="$out/curve_bf16_$extra" \
            --json "$out/curves_seed$extra.json" || status=$?
    fi
    exit $status
} | tee "$out/curves.md"   # set -e and pipefail: the script exits with compare_curves.py's verdict (1: outside the noise)

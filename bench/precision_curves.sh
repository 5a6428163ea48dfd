#!/usr/bin/env bash
# Issue 10's training-curve bar, measured on the CPU: do the GPU's speed settings (tf32 and bf16 convolution math)
# train as float32 does? The device check's protocol (scripts/gpu_check.sh, "training curve"): the demo's
# configuration (VerSe at 4 mm, sub-verse008 validated every epoch, paper variant, C=16, P=32, 2,000 iterations of
# 200 per epoch, learning rate stepped at 1,500), one rank each; fp32 with seeds 1, 2 and 3 (the seed-to-seed noise),
# tf32 and bf16 with seed 1, and bench/compare_curves.py's verdict. Here each reduced math is the CPU's emulation of
# the CUDA backend's (IFCN_EMULATE_GPU_MATH: every convolution's operands rounded as the GPU rounds them, exact
# products, float32 sums; docs/ARCHITECTURE.md), so the curves show what the rounding does to training, not a GPU's
# sum order. With --extra-seed S (repeatable), fp32, tf32 and bf16 also train with seed S, and tf32 and bf16 are judged
# against fp32 with seed S (the other fp32 seeds its noise); a last table pairs each math with fp32 seed by seed, and
# with three seeds or more a line per math gives the mean paired difference with its 95 % interval, next to fp32's
# seed-to-seed standard deviation (the exit status stays the seed-by-seed verdict).
# With --backend cuda the runs train on the GPU instead, each math as the CUDA backend computes it (--gpu-math, in its
# default layout), all at once (scripts/gpu_check.sh runs it so on a lent GPU). --maths picks the maths compared with
# fp32 (default: tf32 bf16 on the CPU, as session 19 measured; tf32 bf16 bf16act on the GPU), among them "bf16act",
# bf16 math with bfloat16 activations (--gpu-activations bf16; on the CPU IFCN_EMULATE_GPU_ACTIVATIONS=bf16). --channels and --patch change the
# model's size (16 and 32: the demo's; the GPU check's rehearsal on the CUDA emulator takes a toy size).
#   bench/precision_curves.sh OUT [--iterations N] [--extra-seed S]... [--backend cpu|cuda] [--channels C] [--patch P]
# Writes OUT/curves.json (and OUT/curves_seedS.json), OUT/curve_<math>_<seed>/ (each run) and OUT/curves.md.
# IFCN_BIN picks the binary (default .build/release/ifcn), copied into OUT at the first call: every run of OUT trains
# with that copy. Runs as many trainings at once as the machine has cores, one thread each (so the figures do not
# depend on the core count).
set -euo pipefail
cd "$(dirname "$0")/.."
usage() { echo "usage: $0 OUT [--iterations N] [--extra-seed S]... [--backend cpu|cuda] [--channels C] [--patch P] [--maths 'M...']" >&2; exit 2; }
[[ $# -ge 1 ]] || usage
out=$1; shift
iterations=2000 extra=() backend=cpu channels=16 patch=32 maths=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --iterations) [[ $# -ge 2 && $2 =~ ^[0-9]+0$ && $2 -ge 30 ]] \
                          || { echo "--iterations: a multiple of 10, at least 30" >&2; exit 2; }
                      iterations=$2; shift 2 ;;
        --extra-seed) [[ $# -ge 2 && $2 =~ ^[0-9]+$ && $2 -ge 4 ]] \
                          || { echo "--extra-seed: 4 or more (1 to 3 are taken)" >&2; exit 2; }
                      extra+=("$2"); shift 2 ;;
        --backend) [[ $# -ge 2 && ( $2 == cpu || $2 == cuda ) ]] || { echo "--backend: cpu or cuda" >&2; exit 2; }
                   backend=$2; shift 2 ;;
        --channels|--patch) [[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || { echo "$1: a positive number" >&2; exit 2; }
                            if [[ $1 == --channels ]]; then channels=$2; else patch=$2; fi; shift 2 ;;
        --maths) [[ $# -ge 2 ]] || usage
                 read -r -a maths <<< "$2"
                 for m in "${maths[@]}"; do [[ $m == tf32 || $m == bf16 || $m == bf16act ]] \
                     || { echo "--maths: tf32, bf16 or bf16act" >&2; exit 2; }; done
                 shift 2 ;;
        *) usage ;;
    esac
done
ifcn="${IFCN_BIN:-.build/release/ifcn}"
[[ -x $ifcn ]] || { echo "$ifcn: not built (swift build -c release)" >&2; exit 2; }
per_epoch=$(( iterations / 10 )) lr_step=$(( iterations * 3 / 4 ))
mkdir -p "$out"
# Every run trains with one copy of the binary, taken at the first call: a rebuild while they run changes none of
# them, nor does a later call that finishes or adds runs.
if [[ ! -x $out/ifcn ]]; then
    cp "$ifcn" "$out/ifcn"
    echo "binary: $ifcn of commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- \
        Sources Package.swift 2>/dev/null || echo ", sources changed since")" > "$out/binary.txt"
fi
ifcn=$out/ifcn
[[ -f $out/data4/dataset.json ]] || "$ifcn" preprocess --input data/verse --output "$out/data4" --spacing 4 \
    --validation sub-verse008 > "$out/preprocess.txt" 2>&1

if [[ ${#maths[@]} -eq 0 ]]; then maths=(tf32 bf16); [[ $backend == cuda ]] && maths+=(bf16act); fi
runs=(fp32:1 fp32:2 fp32:3)
for m in "${maths[@]}"; do runs+=($m:1); done
for seed in "${extra[@]}"; do runs+=(fp32:$seed); for m in "${maths[@]}"; do runs+=($m:$seed); done; done
jobs_at_once=$(nproc)
[[ $backend == cuda ]] && jobs_at_once=${#runs[@]}   # the GPU runs them side by side
start=$(date +%s) started=0
for spec in "${runs[@]}"; do
    math=${spec%:*} seed=${spec#*:} run="$out/curve_${spec%:*}_${spec#*:}"
    if [[ -f $run/metrics.jsonl ]] && [[ $(grep -c '"epoch"' "$run/metrics.jsonl") -eq 10 ]]; then continue; fi
    while [[ $(jobs -rp | wc -l) -ge $jobs_at_once ]]; do wait -n || true; done  # a failed run is reported below
    rm -rf "$run"
    echo "$(date +%T) training $math, seed $seed"
    started=$((started + 1))
    if [[ $backend == cpu && $math == bf16act ]]; then
        train=(env IFCN_EMULATE_GPU_MATH=bf16 IFCN_EMULATE_GPU_ACTIVATIONS=bf16 "$ifcn" train --backend cpu --threads 1)
    elif [[ $backend == cpu ]]; then train=(env IFCN_EMULATE_GPU_MATH="$math" "$ifcn" train --backend cpu --threads 1)
    elif [[ $math == bf16act ]]; then train=("$ifcn" train --backend cuda --gpu-math bf16 --gpu-activations bf16)
    else train=("$ifcn" train --backend cuda --gpu-math "$math" --gpu-activations fp32); fi
    "${train[@]}" --data "$out/data4" --output "$run" --variant paper --channels "$channels" --patch "$patch" \
        --iterations "$iterations" --iters-per-epoch "$per_epoch" --lr-steps "$lr_step" --seed "$seed" \
        --progress-seconds 600 > "$run.txt" 2>&1 &
done
wait || true
echo "$(date +%T) trained $started runs in $(( $(date +%s) - start )) s ($(( ${#runs[@]} - started )) found finished)"
for spec in "${runs[@]}"; do
    run="$out/curve_${spec%:*}_${spec#*:}"
    [[ $(grep -c '"epoch"' "$run/metrics.jsonl" 2>/dev/null) -eq 10 ]] \
        || { echo "$run did not finish: $run.txt" >&2; exit 1; }
done
status=0
{
    flags=$(grep -m1 -o -w -E 'avx512f|avx2|fma|avx' /proc/cpuinfo | sort -u | xargs)
    echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); flags: $flags"
    for m in fp32 "${maths[@]}"; do [[ $backend == cpu ]] || grep -h -m1 -o "backend cuda.*" "$out/curve_${m}_1.txt"; done
    echo "$(cat "$out/binary.txt" 2>/dev/null || echo "binary: unknown"); $iterations iterations"
    echo
    python3 bench/compare_curves.py --reference fp32="$out/curve_fp32_1" --noise fp32-seed2="$out/curve_fp32_2" \
        --noise fp32-seed3="$out/curve_fp32_3" $(for m in "${maths[@]}"; do echo --candidate $m="$out/curve_${m}_1"; done) \
        --json "$out/curves.json" || status=$?
    for seed in "${extra[@]}"; do
        echo
        noise=()
        for other in 1 2 3 "${extra[@]}"; do
            [[ $other == "$seed" ]] || noise+=(--noise fp32-seed$other="$out/curve_fp32_$other")
        done
        python3 bench/compare_curves.py --reference fp32-seed$seed="$out/curve_fp32_$seed" "${noise[@]}" \
            $(for m in "${maths[@]}"; do echo --candidate $m-seed$seed="$out/curve_${m}_$seed"; done) \
            --json "$out/curves_seed$seed.json" || status=$?
    done
    if [[ ${#extra[@]} -gt 0 ]]; then
        echo
        MATHS="${maths[*]}" python3 - "$out" 1 "${extra[@]}" <<'PY'
import json, os, sys
out, seeds = sys.argv[1], sys.argv[2:]
maths = os.environ["MATHS"].split()
def final(math, seed, key):
    rows = [json.loads(l) for l in open(os.path.join(out, f"curve_{math}_{seed}", "metrics.jsonl")) if '"epoch"' in l]
    return sum(r[key] for r in rows[-3:]) / 3
print("Seed by seed, the last 3 epochs' mean training loss and validation Dice, each math less fp32 with the same seed:")
print()
print("| seed | fp32 loss | fp32 val Dice | " + " | ".join(f"{m} - fp32 loss | {m} - fp32 Dice" for m in maths) + " |")
print("| --- | --- | --- | " + " | ".join("--- | ---" for m in maths) + " |")
diffs = {m: {"loss": [], "dice": []} for m in maths}
for seed in seeds:
    base = {k: final("fp32", seed, key) for k, key in (("loss", "train_loss"), ("dice", "val_dice"))}
    cells = [f"{base['loss']:.1f}", f"{base['dice']:.3f}"]
    for m in maths:
        for k, key, fmt in (("loss", "train_loss", "{:+.1f}"), ("dice", "val_dice", "{:+.3f}")):
            d = final(m, seed, key) - base[k]
            diffs[m][k].append(d)
            cells.append(fmt.format(d))
    print(f"| {seed} | " + " | ".join(cells) + " |")
fp32 = {k: [final("fp32", s, key) for s in seeds] for k, key in (("loss", "train_loss"), ("dice", "val_dice"))}
mean = lambda v: sum(v) / len(v)
print(f"| mean | {mean(fp32['loss']):.1f} | {mean(fp32['dice']):.3f} | "
      + " | ".join(f"{mean(diffs[m]['loss']):+.1f} | {mean(diffs[m]['dice']):+.3f}" for m in maths) + " |")
print()
print(f"fp32 across the {len(seeds)} seeds: loss {min(fp32['loss']):.1f} to {max(fp32['loss']):.1f}, "
      f"val Dice {min(fp32['dice']):.3f} to {max(fp32['dice']):.3f}")
# Pooled over the seeds: each math's mean paired difference with its standard error and 95 % interval (Student's t
# with n - 1 degrees of freedom), against fp32's seed-to-seed standard deviation (all fp32 seeds, 2 and 3 included):
# how far the math moves training on average, next to how far a change of seed moves it.
sd = lambda v: (sum((x - mean(v)) ** 2 for x in v) / (len(v) - 1)) ** 0.5
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]
t975 = lambda df: T975[df - 1] if df <= len(T975) else 1.96
all_fp32 = {k: [final("fp32", s, key) for s in ["1", "2", "3"] + [s for s in seeds if s != "1"]]
            for k, key in (("loss", "train_loss"), ("dice", "val_dice"))}
pooled = {}
if len(seeds) >= 3:
    print()
    for m in maths:
        pooled[m] = {}
        cells = []
        for k, name, fmt in (("loss", "loss", "{:+.1f}"), ("dice", "val Dice", "{:+.3f}")):
            d = diffs[m][k]
            se = sd(d) / len(d) ** 0.5
            half = t975(len(d) - 1) * se
            pooled[m][k] = {"mean": mean(d), "standard_error": se, "interval95": [mean(d) - half, mean(d) + half],
                            "fp32_seed_sd": sd(all_fp32[k])}
            cells.append(f"{name} {fmt.format(mean(d))} (95 % interval {fmt.format(mean(d) - half)} to "
                         f"{fmt.format(mean(d) + half)}; fp32's seeds: standard deviation {sd(all_fp32[k]):.3g})")
        print(f"{m} - fp32, mean over {len(seeds)} seeds: " + "; ".join(cells))
json.dump({"seeds": seeds, "fp32": fp32, "minus_fp32": diffs, "pooled": pooled},
          open(os.path.join(out, "curves_paired.json"), "w"), indent=1)
PY
    fi
    exit $status
} | tee "$out/curves.md"   # set -e and pipefail: the script exits with compare_curves.py's verdict (1: outside the noise)

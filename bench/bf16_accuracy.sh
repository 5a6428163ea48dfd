#!/usr/bin/env bash
# bfloat16 inference's effect on accuracy (issue 15), on a CPU without bf16 instructions: each checkpoint segments
# each shared VerSe scan twice, in float32 and with IFCN_EMULATE_BF16=1 (inference convolutions on bfloat16-rounded
# activations and filters with float32 sums, what AVX512_BF16 / AMX kernels compute; docs/ARCHITECTURE.md), and one
# table row per checkpoint and scan gives both mean Dice, their difference, the vertebrae found, the false positives
# and the voxels whose label differs.
#   bench/bf16_accuracy.sh WORK CHECKPOINT... > table.md
# IFCN_BIN picks the binary (default .build/release/ifcn).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -ge 2 ]] || { echo "usage: $0 WORK CHECKPOINT..." >&2; exit 2; }
work="$1"; shift
ifcn="${IFCN_BIN:-.build/release/ifcn}"
echo "| checkpoint | scan | fp32 mean Dice | bf16 mean Dice | bf16 - fp32 | found (fp32, bf16) | false positives (fp32, bf16) | voxels labelled differently |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
i=0
for checkpoint in "$@"; do
    i=$((i + 1))
    for c in sub-verse005 sub-verse008 sub-verse012; do
        for mode in fp32 bf16; do
            out="$work/$i/$mode"
            mkdir -p "$out"
            IFCN_EMULATE_BF16=$([[ $mode == bf16 ]] && echo 1 || echo 0) "$ifcn" segment --checkpoint "$checkpoint" \
                --input "data/verse/${c}_ct.nii.gz" --output "$out" 2> "$out/$c.log" >/dev/null
            "$ifcn" evaluate --reference "data/verse/${c}_seg-vert_msk.nii.gz" --prediction "$out/$c.nii.gz" \
                --json "$out/$c-evaluation.json" >/dev/null
        done
        python3 - "$checkpoint" "$c" "$work/$i" <<'PY'
import json, os, sys
sys.path.insert(0, "bench")
import nifti_gz
checkpoint, case, work = sys.argv[1:]
e = {m: json.load(open(os.path.join(work, m, f"{case}-evaluation.json"))) for m in ("fp32", "bf16")}
labels = {m: nifti_gz.read(os.path.join(work, m, f"{case}.nii.gz"))[3] for m in ("fp32", "bf16")}
differing = int((labels["fp32"] != labels["bf16"]).sum())
found = {m: e[m]["vertebrae"] - e[m]["missed"] for m in e}
print(f"| {checkpoint} | {case} | {e['fp32']['mean_dice']:.4f} | {e['bf16']['mean_dice']:.4f} | "
      f"{e['bf16']['mean_dice'] - e['fp32']['mean_dice']:+.4f} | {found['fp32']}, {found['bf16']} of {e['fp32']['vertebrae']} | "
      f"{e['fp32']['false_positive_count']}, {e['bf16']['false_positive_count']} | {differing} |")
PY
    done
done

#!/usr/bin/env bash
# Batch-norm statistics at segmentation (docs/ACCURACY.md, "Batch-norm statistics"): every fold of finished
# cross-validation runs (bench/crossval.sh) segments its left-out scan with `segment --scan-statistics W` for each
# weight W, and one table row per run and weight gives the left-out Dice per scan, the mean, and the false positives.
#   bench/scan_statistics.sh "0 0.25 0.5 0.75 1" CROSSVAL_DIR... > table.md
# IFCN_BIN picks the binary (default .build/release/ifcn). Outputs go to CROSSVAL_DIR/scan-statistics/.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -ge 2 ]] || { echo "usage: $0 \"WEIGHTS\" CROSSVAL_DIR..." >&2; exit 2; }
weights="$1"; shift
ifcn="${IFCN_BIN:-.build/release/ifcn}"
echo "| run | w | sub-verse005 | sub-verse008 | sub-verse012 | mean Dice | vertebrae found | false positives |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for run in "$@"; do
    for w in $weights; do
        out="$run/scan-statistics/w$w"
        mkdir -p "$out"
        for fold in "$run"/sub-verse*/; do
            c=$(basename "$fold")
            "$ifcn" segment --checkpoint "$fold/run/checkpoints/latest.safetensors" --input "data/verse/${c}_ct.nii.gz" \
                --output "$out" --scan-statistics "$w" 2> "$out/$c.log" >/dev/null
            "$ifcn" evaluate --reference "data/verse/${c}_seg-vert_msk.nii.gz" --prediction "$out/$c.nii.gz" \
                --json "$out/$c-evaluation.json" >/dev/null
        done
        python3 - "$run" "$w" "$out" <<'PY'
import glob, json, os, sys
run, w, out = sys.argv[1:]
dice, found, total, fp = [], 0, 0, 0
for path in sorted(glob.glob(os.path.join(out, "*-evaluation.json"))):
    c = json.load(open(path))["cases"][0]
    dice.append(c["mean_dice"])
    found += sum(1 for v in c["vertebrae"] if v.get("predicted_label") is not None)
    total += len(c["vertebrae"]); fp += len(c["false_positives"])
cells = " | ".join(f"{d:.3f}" for d in dice)
print(f"| {os.path.basename(os.path.normpath(run))} | {w} | {cells} | {sum(dice) / len(dice):.3f} | {found} of {total} | {fp} |")
PY
    done
done

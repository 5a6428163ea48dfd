#!/usr/bin/env bash
# Dice of one model on sub-verse012 cropped to its vertebrae with a growing margin, up to the whole scan
# (docs/ACCURACY.md, "Field of view"): how a model trained on scans cropped to their labels copes with context.
#   bench/field_of_view.sh CHECKPOINT [WORK_DIR] [MARGINS (voxels, default "0 5 10 20 40")]
set -euo pipefail
cd "$(dirname "$0")/.."
checkpoint="$1"; work="${2:-runs/field_of_view}"; margins="${3:-0 5 10 20 40}"
ifcn="${IFCN_BIN:-.build/release/ifcn}"
case=sub-verse012
rm -rf "$work"; mkdir -p "$work"
printf '| margin (voxels) | image (voxels) | mean Dice | found | false positives |\n| --- | --- | --- | --- | --- |\n' > "$work/table.md"
run() {  # $1: label, $2: folder with the scan and its mask
    "$ifcn" segment --checkpoint "$checkpoint" --input "$2/${case}_ct.nii.gz" --output "$2/segment" 2>/dev/null
    "$ifcn" evaluate --reference "$2/${case}_seg-vert_msk.nii.gz" --prediction "$2/segment/$case.nii.gz" --json "$2/evaluation.json" >/dev/null
    python3 - "$1" "$2" >> "$work/table.md" <<'PY'
import json, sys
sys.path.insert(0, "bench")
from nifti_gz import read
c = json.load(open(sys.argv[2] + "/evaluation.json"))["cases"][0]
dim = read(sys.argv[2] + "/sub-verse012_ct.nii.gz")[1]
found = sum(1 for v in c["vertebrae"] if v.get("predicted_label") is not None)
print(f"| {sys.argv[1]} | {dim[1]}x{dim[2]}x{dim[3]} | {c['mean_dice']:.3f} | {found} of {len(c['vertebrae'])} | {len(c['false_positives'])} |")
PY
}
for m in $margins; do
    bench/crop_to_labels.py "data/verse/${case}_ct.nii.gz" "data/verse/${case}_seg-vert_msk.nii.gz" "$work/margin$m" "$m" > /dev/null
    run "$m" "$work/margin$m"
done
mkdir -p "$work/whole"; cp "data/verse/${case}_ct.nii.gz" "data/verse/${case}_seg-vert_msk.nii.gz" "$work/whole/"
run "whole scan" "$work/whole"
cat "$work/table.md"

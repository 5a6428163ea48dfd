#!/usr/bin/env bash
# Dice on the scans' original grids with the labels brought back by probability (default) and by
# nearest neighbour, for one trained checkpoint and the bundled VerSe scans.
#   bench/label_resampling.sh CHECKPOINT [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
checkpoint="$1"; work="${2:-runs/label_resampling}"
ifcn=.build/release/ifcn
rm -rf "$work"; mkdir -p "$work"
printf '| case | nearest: mean Dice | nearest: ASSD | probability: mean Dice | probability: ASSD |\n| --- | --- | --- | --- | --- |\n' > "$work/table.md"
for ct in data/verse/sub-verse*_ct.nii.gz; do
    c=$(basename "$ct" _ct.nii.gz)
    row="| $c"
    for mode in nearest probability; do
        "$ifcn" segment --checkpoint "$checkpoint" --input "$ct" --output "$work/$mode" --label-resampling "$mode" 2>/dev/null
        "$ifcn" evaluate --reference "data/verse/${c}_seg-vert_msk.nii.gz" --prediction "$work/$mode/$c.nii.gz" \
            --json "$work/$mode/$c-evaluation.json" >/dev/null
        row+=$(python3 -c "import json,sys; c=json.load(open(sys.argv[1]))['cases'][0]; print(' | %.3f | %.2f mm' % (c['mean_dice'], c['mean_assd_mm']), end='')" \
            "$work/$mode/$c-evaluation.json")
    done
    echo "$row |" >> "$work/table.md"
done
cat "$work/table.md"

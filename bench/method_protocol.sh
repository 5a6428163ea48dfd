#!/usr/bin/env bash
# The small-scale protocol of METHOD.md ("What to expect at small scale"): paper variant, C=16,
# P=32 at 4 mm, trained on both bundled VerSe scans with noise augmentation only, then both scans
# segmented (n_min = 1000 mm^3) and evaluated on their original grids.
#   bench/method_protocol.sh [WORK_DIR] [ITERATIONS] [RANKS]
# The PyTorch reference reached mean Dice 0.91-0.95 at 4 mm and about 0.86 on the original grids
# after about 3,100 single-sample iterations (15 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-runs/method}"; iterations="${2:-1550}"; ranks="${3:-2}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ifcn=.build/release/ifcn
rm -rf "$work"; mkdir -p "$work/raw"
cp data/verse/sub-verse00*_ct.nii.gz data/verse/sub-verse00*_seg-vert_msk.nii.gz "$work/raw/"
# --downsampling none: the reference's preprocessing (METHOD.md: linear resampling, no filter), so that the
# figures compare with its numbers.
"$ifcn" preprocess --input "$work/raw" --output "$work/data" --spacing 4 --val-fraction 0 --downsampling none
start=$(date +%s)
launch/local.sh "$ranks" train --data "$work/data" --output "$work/run" --channels 16 --patch 32 \
    --iterations "$iterations" --iters-per-epoch "$iterations" --augment noise --seed 1 --progress-seconds 60
echo "training wall time: $(( $(date +%s) - start )) s for $iterations iterations x $ranks ranks"
mkdir -p "$work/reference"
for c in sub-verse005 sub-verse008; do
    "$ifcn" segment --checkpoint "$work/run/checkpoints/latest.safetensors" --input "data/verse/${c}_ct.nii.gz" --output "$work/segment"
    cp "data/verse/${c}_seg-vert_msk.nii.gz" "$work/reference/"
done
"$ifcn" evaluate --reference "$work/reference" --prediction "$work/segment" --json "$work/evaluation.json"
# the same at the 4 mm grid the model works on (METHOD.md's first figure)
"$ifcn" segment --checkpoint "$work/run/checkpoints/latest.safetensors" --input "$work/data/images" --output "$work/segment4mm"
"$ifcn" evaluate --reference "$work/data/labels" --prediction "$work/segment4mm" --json "$work/evaluation4mm.json"

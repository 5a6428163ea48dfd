#!/usr/bin/env bash
# The main job, end to end on a fresh machine (about 10-15 minutes on 2 cores):
#   set-up, release build, sample data (the bundled VerSe scans), preprocessing at 4 mm,
#   2-rank MPI training with per-epoch validation Dice, then segmentation and evaluation of
#   the held-back scan sub-verse008 on its original grid.
# Environment knobs: IFCN_DEMO_DIR (work folder, default runs/demo), IFCN_DEMO_ITERATIONS,
# IFCN_DEMO_RANKS (default 2), IFCN_DEMO_SYNTH (extra synthetic training cases, default 0).
set -euo pipefail
cd "$(dirname "$0")/.."
work="${IFCN_DEMO_DIR:-runs/demo}"
iterations="${IFCN_DEMO_ITERATIONS:-1600}"
ranks="${IFCN_DEMO_RANKS:-2}"
synth="${IFCN_DEMO_SYNTH:-0}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

step() { printf '\n== %s\n' "$*"; }

step "set-up (Debian packages) and release build"
scripts/setup.sh
swift build -c release --product ifcn
ifcn=.build/release/ifcn

step "sample data: VerSe sub-verse005 for training, sub-verse008 held back"
rm -rf "$work"
mkdir -p "$work/raw"
cp data/verse/sub-verse005_ct.nii.gz data/verse/sub-verse005_seg-vert_msk.nii.gz "$work/raw/"
cp data/verse/sub-verse008_ct.nii.gz data/verse/sub-verse008_seg-vert_msk.nii.gz "$work/raw/"
if [[ "$synth" -gt 0 ]]; then
    "$ifcn" synth --output "$work/raw" --cases "$synth" --seed 1
fi

step "preprocess at 4 mm (a 32-voxel patch spans 128 mm, as the paper's 128 at 1 mm)"
"$ifcn" preprocess --input "$work/raw" --output "$work/data" --spacing 4 --validation sub-verse008

# ifcn's defaults (augmentations, resampling filter): what a user gets without options.
step "train: $ranks MPI ranks, paper variant, C=16, P=32, $iterations iterations"
launch/local.sh "$ranks" train --data "$work/data" --output "$work/run" --channels 16 --patch 32 \
    --iterations "$iterations" --iters-per-epoch 200 --lr-steps "$((iterations * 3 / 4))" --seed 1 --progress-seconds 30

step "segment the held-back scan on its own grid"
"$ifcn" segment --checkpoint "$work/run/checkpoints/best.safetensors" \
    --input data/verse/sub-verse008_ct.nii.gz --output "$work/segment" --preview

step "evaluate against the expert masks"
"$ifcn" evaluate --reference data/verse/sub-verse008_seg-vert_msk.nii.gz \
    --prediction "$work/segment/sub-verse008.nii.gz" --json "$work/evaluation.json" --html "$work/evaluation.html"

step "done"
echo "metrics per epoch: $work/run/metrics.jsonl"
echo "segmentation (open with the CT in 3D Slicer / ITK-SNAP): $work/segment/sub-verse008.nii.gz"
echo "preview (mid-sagittal and mid-coronal slices): $work/segment/sub-verse008.png"
echo "evaluation: $work/evaluation.json, with previews against the expert masks: $work/evaluation.html"
echo "training report (curves, validation previews; open in a browser): $work/run/report.html"

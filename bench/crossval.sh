#!/usr/bin/env bash
# Leave-one-out cross-validation on the bundled VerSe scans (issue 12): for every scan, train on the
# others, segment the left-out scan on its original grid, evaluate; then one table for all folds.
#   bench/crossval.sh WORK_DIR ITERATIONS [RANKS] [-- extra train options, e.g. --augment noise,blur]
# IFCN_BIN picks the binary (default .build/release/ifcn), so a rebuild during a long run does not change it.
# Protocol of docs/ACCURACY.md: paper variant, C=16, P=32 at 4 mm, lr drops tenfold at 3/4 of the run,
# seed 1, no validation split. Writes WORK_DIR/table.md and WORK_DIR/crossval.json.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -ge 2 ]] || { echo "usage: $0 WORK_DIR ITERATIONS [RANKS] [-- train options]" >&2; exit 2; }
work="$1"; iterations="$2"; shift 2
ranks=2
if [[ $# -gt 0 && "$1" != "--" ]]; then ranks="$1"; shift; fi
[[ $# -gt 0 && "$1" == "--" ]] && shift
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ifcn="${IFCN_BIN:-.build/release/ifcn}"
export IFCN_BIN="$ifcn"
scans=(data/verse/sub-verse*_ct.nii.gz)
rm -rf "$work"; mkdir -p "$work"
for ct in "${scans[@]}"; do
    out=$(basename "$ct" _ct.nii.gz)
    fold="$work/$out"
    mkdir -p "$fold/raw"
    for other in "${scans[@]}"; do
        [[ "$other" == "$ct" ]] && continue
        c=$(basename "$other" _ct.nii.gz)
        cp "$other" "data/verse/${c}_seg-vert_msk.nii.gz" "$fold/raw/"
    done
    echo "== fold $out: training on $(ls "$fold/raw" | grep -c _ct) scans"
    "$ifcn" preprocess --input "$fold/raw" --output "$fold/data" --spacing 4 --val-fraction 0 > "$fold/preprocess.log"
    start=$(date +%s)
    launch/local.sh "$ranks" train --data "$fold/data" --output "$fold/run" --channels 16 --patch 32 \
        --iterations "$iterations" --iters-per-epoch "$iterations" --lr-steps "$((iterations * 3 / 4))" --seed 1 \
        --progress-seconds 120 "$@" > "$fold/train.log"
    echo "$(( $(date +%s) - start ))" > "$fold/train_seconds"
    "$ifcn" segment --checkpoint "$fold/run/checkpoints/latest.safetensors" --input "$ct" --output "$fold/segment" 2> "$fold/segment.log"
    "$ifcn" evaluate --reference "data/verse/${out}_seg-vert_msk.nii.gz" --prediction "$fold/segment/$out.nii.gz" \
        --json "$fold/evaluation.json" > /dev/null
done
python3 - "$work" "$iterations" "$ranks" "$*" <<'PY'
import json, os, sys
work, iterations, ranks, options = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rows = []
for fold in sorted(os.listdir(work)):
    path = os.path.join(work, fold, "evaluation.json")
    if not os.path.exists(path):
        continue
    e = json.load(open(path))
    c = e["cases"][0]
    found = sum(1 for v in c["vertebrae"] if v.get("predicted_label") is not None)
    rows.append(dict(case=fold, dice=c["mean_dice"], assd=c["mean_assd_mm"], vertebrae=len(c["vertebrae"]),
                     found=found, missed=len(c["vertebrae"]) - found, false_positives=len(c["false_positives"]),
                     train_seconds=int(open(os.path.join(work, fold, "train_seconds")).read())))
mean = lambda k: sum(r[k] for r in rows) / len(rows)
lines = [f"training: {ranks} ranks x {iterations} iterations per fold; options: {options or '(defaults)'}", "",
         "| left out | mean Dice | mean ASSD | found | missed | false positives | training time |",
         "| --- | --- | --- | --- | --- | --- | --- |"]
for r in rows:
    assd = "-" if r["assd"] is None else f"{r['assd']:.2f} mm"
    lines.append(f"| {r['case']} | {r['dice']:.3f} | {assd} | {r['found']} of {r['vertebrae']} | {r['missed']} | "
                 f"{r['false_positives']} | {r['train_seconds']} s |")
assds = [r["assd"] for r in rows if r["assd"] is not None]
lines.append(f"| mean | {mean('dice'):.3f} | {sum(assds) / max(len(assds), 1):.2f} mm | | {sum(r['missed'] for r in rows)} | "
             f"{mean('false_positives'):.1f} per scan | |")
open(os.path.join(work, "table.md"), "w").write("\n".join(lines) + "\n")
json.dump(dict(iterations=iterations, ranks=ranks, options=options, folds=rows), open(os.path.join(work, "crossval.json"), "w"), indent=1)
print("\n".join(lines))
PY

#!/usr/bin/env bash
# Data-parallel throughput: 1 rank x 1 thread against N ranks x 1 thread on the same data.
#   bench/scaling.sh DATA_DIR [ITERATIONS] [RANKS]      (DATA_DIR: ifcn preprocess output)
# Prints samples/s (validation excluded) and the share of step time in allreduce, from metrics.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
data="$1"; iterations="${2:-400}"; ranks="${3:-2}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
args=(train --data "$data" --channels 16 --patch 32 --iterations "$iterations" --iters-per-epoch "$iterations"
      --threads 1 --seed 1 --progress-seconds 100000)
report() {
    python3 - "$1" "$2" <<'PY'
import json, sys
m = [json.loads(l) for l in open(sys.argv[2])][-1]
print(json.dumps({"ranks": int(sys.argv[1]), "samples_per_second": round(m["samples_per_second"], 3),
                  "allreduce_share": round(m["allreduce_share"], 4), "epoch_seconds": round(m["seconds"], 2)}))
PY
}
.build/release/ifcn "${args[@]}" --output "$out/one" > /dev/null
report 1 "$out/one/metrics.jsonl"
mpirun -np "$ranks" --oversubscribe --bind-to none .build/release/ifcn "${args[@]}" --output "$out/many" > /dev/null
report "$ranks" "$out/many/metrics.jsonl"

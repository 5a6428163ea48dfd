#!/usr/bin/env bash
# Runs ifcn with N MPI ranks on this machine.
#   launch/local.sh 2 train --data prep --output runs/r1 --channels 64 --patch 128
# Threads per rank default to cores / N (override with IFCN_THREADS / OMP_NUM_THREADS);
# extra mpirun arguments can be given in IFCN_MPIRUN_EXTRA; IFCN_BIN picks the binary;
# IFCN_STAGE_DATA=/local/dir trains from a copy of the --data folder's store there (launch/stage.sh).
set -euo pipefail

usage() {
    echo "usage: $0 N [ifcn arguments...]   (N = number of ranks on this machine)" >&2
    exit 2
}
[[ $# -ge 1 ]] || usage
case "$1" in -h|--help) usage ;; esac

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ranks="$1"
shift
require_rank_count "$ranks" || usage
command -v mpirun >/dev/null 2>&1 || { echo "$0: mpirun not found (apt-get install openmpi-bin)" >&2; exit 1; }
binary="$(ifcn_binary)"
set_thread_env "$ranks"
allow_root
read -r -a extra <<< "${IFCN_MPIRUN_EXTRA:-}"
staged_args "$@"
if [[ -n "$stage_source" ]]; then
    "$(dirname "${BASH_SOURCE[0]}")/stage.sh" "$stage_source" "$IFCN_STAGE_DATA"
fi

echo "launch/local: $ranks ranks x $IFCN_THREADS threads: $binary ${ifcn_args[*]}" >&2
exec mpirun -np "$ranks" --oversubscribe --bind-to none \
    -x IFCN_THREADS -x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS \
    "${extra[@]}" "$binary" "${ifcn_args[@]}"

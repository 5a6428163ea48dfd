#!/usr/bin/env bash
# Runs ifcn with N MPI ranks spread over the hosts of a hostfile (passwordless ssh between them,
# ifcn at the same path on every host: set IFCN_BIN to an absolute path on a shared file system).
#   IFCN_IFACE=eth1 launch/mpirun.sh hostfiles/cluster 8 train --data prep --output runs/r1 --channels 64 --patch 128
# Environment:
#   IFCN_IFACE          interface name(s) or CIDR(s) for MPI traffic, e.g. eth1 or 10.0.0.0/16;
#                       becomes --mca btl_tcp_if_include / oob_tcp_if_include
#   IFCN_THREADS        threads per rank (default: cores of this host / largest slots= in the hostfile)
#   IFCN_MPIRUN_EXTRA   extra mpirun arguments, split on whitespace
#   IFCN_STAGE_DATA     node-local folder: the --data folder's store is first copied there on every
#                       host (launch/stage.sh, one task per host) and training reads the copy
# PATH, LD_LIBRARY_PATH, the thread variables and every IFCN_* variable are exported to all ranks.
set -euo pipefail

usage() {
    echo "usage: $0 HOSTFILE N [ifcn arguments...]" >&2
    exit 2
}
[[ $# -ge 2 ]] || usage
case "$1" in -h|--help) usage ;; esac

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
hostfile="$1"
ranks="$2"
shift 2
[[ -r "$hostfile" ]] || { echo "$0: cannot read hostfile '$hostfile'" >&2; exit 1; }
require_rank_count "$ranks" || usage
command -v mpirun >/dev/null 2>&1 || { echo "$0: mpirun not found (apt-get install openmpi-bin)" >&2; exit 1; }
binary="$(ifcn_binary)"

# Ranks per node: the largest slots= value in the hostfile (1 if none is given).
slots="$(grep -oE '^[^#]*slots=[0-9]+' "$hostfile" | sed -E 's/.*slots=//' | sort -n | tail -1 || true)"
set_thread_env "${slots:-1}"
allow_root

args=(--hostfile "$hostfile" -np "$ranks" --bind-to none --map-by slot)
if [[ -n "${IFCN_IFACE:-}" ]]; then
    args+=(--mca btl_tcp_if_include "$IFCN_IFACE" --mca oob_tcp_if_include "$IFCN_IFACE")
fi
args+=(-x PATH)
[[ -n "${LD_LIBRARY_PATH:-}" ]] && args+=(-x LD_LIBRARY_PATH)
for var in $(compgen -e | grep -E '^(IFCN_|OMP_NUM_THREADS$|OPENBLAS_NUM_THREADS$)' || true); do
    args+=(-x "$var")
done
read -r -a extra <<< "${IFCN_MPIRUN_EXTRA:-}"
staged_args "$@"
if [[ -n "$stage_source" ]]; then
    stage="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/stage.sh"
    mpirun --hostfile "$hostfile" --map-by ppr:1:node --bind-to none "${extra[@]}" "$stage" "$stage_source" "$IFCN_STAGE_DATA"
fi

echo "launch/mpirun: $ranks ranks from $hostfile, $IFCN_THREADS threads each: $binary ${ifcn_args[*]}" >&2
exec mpirun "${args[@]}" "${extra[@]}" "$binary" "${ifcn_args[@]}"

# Shared helpers for the launch scripts (sourced, not run).

# Prints the ifcn binary to run: $IFCN_BIN, else .build/release/ifcn, else .build/debug/ifcn in this
# checkout, else `ifcn` on PATH. Multi-host runs need the same path on every node.
ifcn_binary() {
    local root candidate
    if [[ -n "${IFCN_BIN:-}" ]]; then
        [[ -x "$IFCN_BIN" ]] || { echo "IFCN_BIN=$IFCN_BIN is not an executable file" >&2; return 1; }
        echo "$IFCN_BIN"
        return 0
    fi
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    for candidate in "$root/.build/release/ifcn" "$root/.build/debug/ifcn"; do
        if [[ -x "$candidate" ]]; then echo "$candidate"; return 0; fi
    done
    if command -v ifcn >/dev/null 2>&1; then command -v ifcn; return 0; fi
    echo "no ifcn binary found: run 'swift build -c release' or set IFCN_BIN" >&2
    return 1
}

# Exports OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / IFCN_THREADS as max(1, cores / ranks_per_node)
# unless already set, so that ranks x threads does not exceed the cores of a node.
set_thread_env() {
    local ranks_per_node=$1 cores threads
    cores="$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)"
    threads=$(( cores / ranks_per_node ))
    (( threads >= 1 )) || threads=1
    export IFCN_THREADS="${IFCN_THREADS:-$threads}"
    export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$IFCN_THREADS}"
    export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
}

# Open MPI refuses to run as root unless told twice.
allow_root() {
    if [[ "$(id -u)" == 0 ]]; then
        export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    fi
}

# Checks that $1 is a positive integer rank count.
require_rank_count() {
    [[ "$1" =~ ^[1-9][0-9]*$ ]] || { echo "rank count must be a positive integer, got '$1'" >&2; return 1; }
}

# IFCN_STAGE_DATA=/local/dir: the launchers copy the training store of the --data folder to that
# node-local path on every node first (launch/stage.sh) and train from the copy.
# staged_args ARGS...: sets the array `ifcn_args` to ARGS with the --data value replaced by
# $IFCN_STAGE_DATA, and `stage_source` to the original value (unchanged when IFCN_STAGE_DATA is unset).
staged_args() {
    ifcn_args=()
    stage_source=""
    while [[ $# -gt 0 ]]; do
        if [[ -n "${IFCN_STAGE_DATA:-}" && "$1" == --data && $# -ge 2 ]]; then
            stage_source="$2"; ifcn_args+=(--data "$IFCN_STAGE_DATA"); shift 2
        elif [[ -n "${IFCN_STAGE_DATA:-}" && "$1" == --data=* ]]; then
            stage_source="${1#--data=}"; ifcn_args+=("--data=$IFCN_STAGE_DATA"); shift
        else
            ifcn_args+=("$1"); shift
        fi
    done
    if [[ -n "${IFCN_STAGE_DATA:-}" && -z "$stage_source" ]]; then
        echo "IFCN_STAGE_DATA is set but the ifcn arguments have no --data" >&2
        return 1
    fi
}

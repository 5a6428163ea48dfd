#!/usr/bin/env bash
# Runs a 2-rank MPI job across two network namespaces that talk TCP over a veth pair, as if the
# ranks were on two hosts: ifcn-h1-TAG (10.213.0.1/24, runs mpirun and rank 0) and ifcn-h2-TAG
# (10.213.0.2/24, rank 1). mpirun reaches the second "host" through an `ip netns exec` wrapper used
# as plm_rsh_agent instead of ssh. Only addresses inside these namespaces are used; everything is
# removed again on exit. Needs root (or CAP_SYS_ADMIN + CAP_NET_ADMIN) and iproute2.
#
# Example: scripts/netns_two_hosts.sh .build/debug/ifcn mpi-check
set -euo pipefail

usage() {
    cat >&2 <<USAGE
usage: $0 COMMAND [ARGS...]
Runs COMMAND as a 2-rank MPI job whose ranks live in two network namespaces (10.213.0.1, 10.213.0.2).
Environment:
  IFCN_NETNS_TAG      suffix for namespace/interface names (default: this script's PID)
  IFCN_MPIRUN_EXTRA   extra mpirun arguments, split on whitespace (optional)
USAGE
    exit 2
}

[[ $# -ge 1 ]] || usage
case "$1" in -h|--help) usage ;; esac

for tool in ip mpirun; do
    command -v "$tool" >/dev/null 2>&1 || { echo "$0: '$tool' not found (install iproute2 / openmpi-bin)" >&2; exit 1; }
done

tag="${IFCN_NETNS_TAG:-$$}"
ns1="ifcn-h1-$tag"
ns2="ifcn-h2-$tag"
veth1="ifv1-$tag"
veth2="ifv2-$tag"
if (( ${#veth1} > 15 )); then
    echo "$0: IFCN_NETNS_TAG '$tag' is too long (interface names are limited to 15 characters)" >&2
    exit 2
fi
addr1=10.213.0.1
addr2=10.213.0.2
subnet=10.213.0.0/24

workdir="$(mktemp -d "${TMPDIR:-/tmp}/ifcn-netns.XXXXXX")"
cleanup() {
    local status=$?
    ip netns del "$ns1" 2>/dev/null || true
    ip netns del "$ns2" 2>/dev/null || true
    ip link del "$veth1" 2>/dev/null || true
    rm -rf "$workdir"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Two "hosts" joined by a veth pair, loopback up in each.
ip netns add "$ns1"
ip netns add "$ns2"
ip link add "$veth1" type veth peer name "$veth2"
ip link set "$veth1" netns "$ns1"
ip link set "$veth2" netns "$ns2"
ip -n "$ns1" addr add "$addr1/24" dev "$veth1"
ip -n "$ns2" addr add "$addr2/24" dev "$veth2"
for ns in "$ns1" "$ns2"; do ip -n "$ns" link set lo up; done
ip -n "$ns1" link set "$veth1" up
ip -n "$ns2" link set "$veth2" up

hostfile="$workdir/hostfile"
printf '%s slots=1\n%s slots=1\n' "$addr1" "$addr2" > "$hostfile"

# The launch agent: Open MPI calls it like ssh, `agent [options] HOST command...`, and expects the
# command words to be joined and run by a shell on HOST. Here HOST selects a namespace.
agent="$workdir/netns_agent.sh"
cat > "$agent" <<AGENT
#!/bin/sh
set -eu
while [ \$# -gt 0 ]; do
    case "\$1" in
        -*) shift ;;
        *) break ;;
    esac
done
[ \$# -ge 2 ] || { echo "netns_agent: usage: netns_agent HOST COMMAND..." >&2; exit 255; }
host="\$1"
shift
case "\$host" in
    $addr1) ns="$ns1" ;;
    $addr2) ns="$ns2" ;;
    *) echo "netns_agent: unknown host '\$host' (expected $addr1 or $addr2)" >&2; exit 255 ;;
esac
exec ip netns exec "\$ns" sh -c "\$*"
AGENT
chmod +x "$agent"

# Ranks start in mpirun's working directory, but make a relative program path absolute anyway.
program="$1"
shift
if [[ "$program" == */* && -e "$program" ]]; then
    program="$(cd "$(dirname "$program")" && pwd)/$(basename "$program")"
fi

forward=(-x PATH)
[[ -n "${LD_LIBRARY_PATH:-}" ]] && forward+=(-x LD_LIBRARY_PATH)
for var in $(compgen -e | grep -E '^(IFCN_|OMP_NUM_THREADS$|OPENBLAS_NUM_THREADS$)' || true); do
    forward+=(-x "$var")
done
read -r -a extra <<< "${IFCN_MPIRUN_EXTRA:-}"

echo "netns_two_hosts: $ns1=$addr1 (mpirun, rank 0)  $ns2=$addr2 (rank 1)" >&2
set +e
ip netns exec "$ns1" env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    mpirun --hostfile "$hostfile" -np 2 --map-by node --bind-to none \
        --mca plm_rsh_agent "$agent" \
        --mca plm_rsh_no_tree_spawn 1 \
        --mca btl tcp,self \
        --mca btl_tcp_if_include "$subnet" \
        --mca oob_tcp_if_include "$subnet" \
        "${forward[@]}" "${extra[@]}" \
        "$program" "$@"
status=$?
set -e
exit "$status"

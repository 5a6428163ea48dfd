#!/usr/bin/env bash
# Installs the Debian packages ifcn needs to build and run (Open MPI, OpenBLAS, nifticlib, zlib,
# iproute2 for scripts/netns_two_hosts.sh, pkg-config). Idempotent: does nothing when everything is
# already installed. Runs as root directly, otherwise through sudo. Swift itself is not installed here.
set -euo pipefail

usage() {
    echo "usage: $0        (installs missing Debian packages for ifcn; needs root or sudo)" >&2
    exit 2
}
[[ $# -eq 0 ]] || usage

packages=(libopenmpi-dev openmpi-bin libopenblas-dev libnifti2-dev zlib1g-dev iproute2 pkg-config)

command -v dpkg >/dev/null 2>&1 || { echo "$0: dpkg not found: this script supports Debian/Ubuntu only" >&2; exit 1; }

missing=()
for package in "${packages[@]}"; do
    if ! dpkg -s "$package" 2>/dev/null | grep -q '^Status: install ok installed'; then
        missing+=("$package")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "setup: all packages already installed: ${packages[*]}"
    exit 0
fi

if [[ "$(id -u)" == 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "$0: need root or sudo to install: ${missing[*]}" >&2
    exit 1
fi

echo "setup: installing ${missing[*]}"
"${as_root[@]}" apt-get update
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
echo "setup: done"

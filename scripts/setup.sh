#!/usr/bin/env bash
# Installs the Debian packages ifcn needs to build and run (Open MPI, OpenBLAS, nifticlib, zlib, libpng,
# iproute2 for scripts/netns_two_hosts.sh, pkg-config). Idempotent: does nothing when everything is
# already installed. Runs as root directly, otherwise through sudo. Swift itself is not installed here.
# --test adds what only the tests use: chromium, for the headless-browser check of `ifcn report`.
set -euo pipefail

usage() {
    echo "usage: $0 [--test]   (installs missing Debian packages for ifcn; --test: also those the tests need; needs root or sudo)" >&2
    exit 2
}
packages=(libopenmpi-dev openmpi-bin libopenblas-dev libnifti2-dev zlib1g-dev libpng-dev iproute2 pkg-config)
case "${1:-}" in
    "") ;;
    --test) packages+=(chromium) ;;
    *) usage ;;
esac
[[ $# -le 1 ]] || usage

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

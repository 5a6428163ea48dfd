#!/usr/bin/env bash
# Builds what the GPU check needs on a machine with no Swift and no Debian packages (the lent GPU
# machine): a release ifcn with the Swift runtime linked in, the non-system shared libraries it
# needs (OpenBLAS, Open MPI with its plugins and launcher, nifticlib), packed as .gpu/bundle.tar.xz.
# Nothing CUDA is inside: ifcn loads the NVIDIA libraries of the machine at run time.
# Usage: scripts/gpu_bundle.sh            (then scripts/gpu_check.sh on the GPU machine)
set -euo pipefail
cd "$(dirname "$0")/.."
out=.gpu
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
swift build -c release --static-swift-stdlib --product ifcn
mkdir -p "$stage/bin" "$stage/lib" "$stage/openmpi/plugins" "$stage/openmpi/pmix" "$stage/share/openmpi" "$out"
cp .build/release/ifcn "$stage/bin/ifcn"
strip "$stage/bin/ifcn"
mpi=/usr/lib/x86_64-linux-gnu/openmpi
pmix=/usr/lib/x86_64-linux-gnu/pmix2/lib
cp -L "$(readlink -f /usr/bin/orterun)" "$stage/bin/mpirun"
cp -L "$(readlink -f /usr/bin/orted)" "$stage/bin/orted"
cp -L "$mpi"/lib/openmpi3/*.so "$stage/openmpi/plugins/"
cp -L "$pmix"/pmix/*.so "$stage/openmpi/pmix/" 2>/dev/null || true
cp -rL /usr/share/openmpi/. "$stage/share/openmpi/"
# The shared libraries of everything above, except the C/C++ runtime the target machine has.
skip='^(libc|libm|libdl|librt|libpthread|ld-linux-x86-64|libstdc\+\+|libgcc_s|linux-vdso)\.'
for f in "$stage/bin/ifcn" "$stage/bin/mpirun" "$stage/bin/orted" "$stage"/openmpi/plugins/*.so "$stage"/openmpi/pmix/*.so; do
    ldd "$f" 2>/dev/null | awk '/=> \// {print $1, $3}'
done | sort -u | while read -r name path; do
    [[ "$name" =~ $skip ]] && continue
    [[ -e "$stage/lib/$name" ]] || cp -L "$path" "$stage/lib/$name"
done
# Plugins whose own libraries are absent here (InfiniBand, UCX, PSM...) are dropped: Open MPI skips them.
for p in "$stage"/openmpi/plugins/*.so "$stage"/openmpi/pmix/*.so; do
    if LD_LIBRARY_PATH="$stage/lib" ldd "$p" 2>/dev/null | grep -q "not found"; then rm "$p"; fi
done
tar -C "$stage" -cJf "$out/bundle.tar.xz" .
ls -la "$out/bundle.tar.xz"
echo "bundle: $out/bundle.tar.xz ($(du -sh "$stage" | cut -f1) unpacked)"

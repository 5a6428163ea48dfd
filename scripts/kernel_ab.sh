#!/usr/bin/env bash
# Compares ifcn's CUDA kernels at REV (default HEAD) with the working tree's, bit for bit, on the CPU: the kernels that
# need no __syncthreads (ReLU, sigmoid, max pooling, upsampling, the 1x1x1 convolution's forward and data-gradient
# passes) from both sources run on the same inputs (Tests/CUDAEmulator/kernel_ab.cpp). For refactors of those kernels
# that must not change a bit: exit 0 when every output agrees.
#   scripts/kernel_ab.sh [REV] [OUT]    (OUT: build folder, default .build/kernel-ab)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rev=${1:-HEAD}
out=${2:-$root/.build/kernel-ab}
mkdir -p "$out"
cxx=${CXX:-}
if [ -z "$cxx" ]; then
  for c in c++ g++ clang++; do command -v "$c" >/dev/null 2>&1 && { cxx=$c; break; }; done
fi
[ -n "$cxx" ] || { echo "kernel_ab.sh: no C++ compiler (set CXX)" >&2; exit 1; }
source_of() {  # the kernel source in CUDAKernels.swift, as scripts/cuda_emulator.sh takes it, without extern "C"
  awk '/static let text: String = """/ { on = 1; next } on && /^    """/ { exit } on { sub(/^    /, ""); print }' \
    | sed 's/extern "C" //'
}
kernels=Sources/IFCNCompute/CUDA/CUDAKernels.swift
git -C "$root" show "$rev:$kernels" | source_of > "$out/old.cu"
source_of < "$root/$kernels" > "$out/new.cu"
[ -s "$out/old.cu" ] && [ -s "$out/new.cu" ] || { echo "kernel_ab.sh: no kernel source found" >&2; exit 1; }
"$cxx" -std=c++17 -O1 -ffp-contract=off -fno-strict-aliasing -w -I"$root/Tests/CUDAEmulator" -I"$out" \
  -o "$out/kernel_ab" "$root/Tests/CUDAEmulator/kernel_ab.cpp"
echo "kernels of $rev against the working tree:"
"$out/kernel_ab"

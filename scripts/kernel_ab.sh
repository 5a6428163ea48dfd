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
. "$root/scripts/cuda_source.sh"
cxx=$(cuda_source_cxx kernel_ab.sh)
source_of() { cuda_source_kernels | sed 's/extern "C" //'; }  # without extern "C": both sources in one program
kernels=Sources/IFCNCompute/CUDA/CUDAKernels.swift
git -C "$root" show "$rev:$kernels" | source_of > "$out/old.cu"
source_of < "$root/$kernels" > "$out/new.cu"
[ -s "$out/old.cu" ] && [ -s "$out/new.cu" ] || { echo "kernel_ab.sh: no kernel source found" >&2; exit 1; }
"$cxx" -std=c++17 -O1 -ffp-contract=off -fno-strict-aliasing -w -I"$root/Tests/CUDAEmulator" -I"$out" \
  -o "$out/kernel_ab" "$root/Tests/CUDAEmulator/kernel_ab.cpp"
echo "kernels of $rev against the working tree:"
"$out/kernel_ab"

# Sourced by scripts/cuda_emulator.sh and scripts/kernel_ab.sh: what both take from ifcn's CUDA kernel source.

# The C++ compiler: $CXX, else the first of c++, g++, clang++ (a message and exit 1 naming the caller where none).
cuda_source_cxx() {
  local cxx=${CXX:-} c
  if [ -z "$cxx" ]; then
    for c in c++ g++ clang++; do command -v "$c" >/dev/null 2>&1 && { cxx=$c; break; }; done
  fi
  [ -n "$cxx" ] || { echo "$1: no C++ compiler (set CXX)" >&2; exit 1; }
  echo "$cxx"
}

# The kernel source from CUDAKernels.swift on stdin: the Swift string literal CUDAKernelSource.text, its lines less
# the literal's 4-space indentation, without a final newline (it holds no backslash, so no escape changes a character).
cuda_source_kernels() {
  awk '/static let text: String = """/ { on = 1; next } on && /^    """/ { exit } on { sub(/^    /, ""); print }'
}

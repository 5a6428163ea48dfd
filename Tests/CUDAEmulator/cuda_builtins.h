// What NVRTC provides built in to ifcn's kernels, for compiling the very same CUDA C++ source
// (CUDAKernelSource.text) as host C++ inside the CPU emulator of the CUDA driver (cuda_emulator.cpp).
//
// Threads of a block run one at a time on fibers (cuda_emulator.cpp): `__shared__` arrays are
// function-local statics, shared by the block's fibers because one block runs at a time;
// `__syncthreads()` switches to the next fiber. The _rn intrinsics are the plain IEEE operations:
// the emulator is compiled with -ffp-contract=off, so no a * b + c is fused unless the source says fmaf.
#pragma once

#include <math.h>  // expf, fmaf (libstdc++ 12 has no std::expf)

#include <cmath>
#include <cstring>

// NVRTC's built-in 16-byte vector type (the kernels stream rows through it; the emulator is compiled with
// -fno-strict-aliasing, as the kernels read float and bfloat16 rows as its words).
// And its 8-byte one (a run of 4 bfloat16 elements in the pooling kernels). The kernels access them through
// __ldcg and __stcg only, which stop the run on a misaligned address as the GPU would (CUDA_ERROR_MISALIGNED_ADDRESS).
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
struct alignas(8) uint2 {
    unsigned x, y;
};
[[noreturn]] void ifcn_emulator_misaligned(const void *p, unsigned bytes);
template <typename V> inline void ifcn_emulator_check_alignment(const V *p) {
    if (reinterpret_cast<unsigned long long>(p) % sizeof(V) != 0) ifcn_emulator_misaligned(p, sizeof(V));
}
inline uint4 __ldcg(const uint4 *p) { ifcn_emulator_check_alignment(p); return *p; }
inline uint2 __ldcg(const uint2 *p) { ifcn_emulator_check_alignment(p); return *p; }
inline void __stcg(uint4 *p, uint4 v) { ifcn_emulator_check_alignment(p); *p = v; }
inline void __stcg(uint2 *p, uint2 v) { ifcn_emulator_check_alignment(p); *p = v; }

struct ifcn_emulator_dim3 {
    unsigned x, y, z;
};

extern ifcn_emulator_dim3 ifcn_emulator_block_index, ifcn_emulator_thread_index, ifcn_emulator_grid_size,
    ifcn_emulator_block_size;
void ifcn_emulator_syncthreads();

#define blockIdx ifcn_emulator_block_index
#define threadIdx ifcn_emulator_thread_index
#define gridDim ifcn_emulator_grid_size
#define blockDim ifcn_emulator_block_size
#define __syncthreads() ifcn_emulator_syncthreads()
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static

inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline double __dsqrt_rn(double a) { return std::sqrt(a); }

inline float __int_as_float(int i) {
    float f;
    std::memcpy(&f, &i, sizeof f);
    return f;
}
inline float __uint_as_float(unsigned u) {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}
inline unsigned __float_as_uint(float f) {
    unsigned u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}

using std::isnan;
using std::sqrt;

// CUDA's overloads of max and min for the integer and floating types the kernels mix.
inline int max(int a, int b) { return a > b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline float max(float a, float b) { return std::fmax(a, b); }
inline double max(double a, double b) { return std::fmax(a, b); }
inline int min(int a, int b) { return a < b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline float min(float a, float b) { return std::fmin(a, b); }
inline double min(double a, double b) { return std::fmin(a, b); }

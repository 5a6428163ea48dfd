#ifndef IFCN_CONV3_H
#define IFCN_CONV3_H

// Direct 3x3x3 convolutions (stride 1, zero padding 1, batch 1, channel-major float32 volumes)
// with AVX2 + FMA intrinsics, selected at run time: no im2col matrix and no sgemm packing.
//
// Work is done per group: output rows (y0..y1) of one z-plane. The caller gives each thread a
// slab buffer of ifcn_conv3_slab_floats() floats; the group's input neighbourhood (3 planes,
// y1-y0+2 rows, w+2 columns, zero outside the volume) is copied there, 16 input channels at a
// time, and every output channel reads it from cache.

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// 1 when this CPU runs the direct kernels (x86-64 with AVX2 and FMA), else 0.
int ifcn_conv3_direct_supported(void);

/// 1 when the CPU reports AVX-512F (OpenBLAS then has wider sgemm kernels than these).
int ifcn_cpu_has_avx512f(void);

/// 1 when the direct kernels handle this row width (a multiple of 8).
int ifcn_conv3_direct_handles_width(int w);

/// Floats of one thread's slab for groups of at most `group_rows` rows of width `w`.
size_t ifcn_conv3_slab_floats(int w, int group_rows);

/// Repacks weights w[cout][cin][27] into the forward kernels' layout (`cout * cin * 27` floats).
/// With `transpose_flip` the packed filter is that of the backward-data convolution:
/// w'[ci][co][26 - k] = w[co][ci][k] (then cin and cout swap roles for ifcn_conv3_forward_group).
void ifcn_conv3_pack(const float *w, int cin, int cout, int transpose_flip, float *packed);

/// y[co, z, y0..y1-1, :] = beta * y + sum over ci, taps of packed weight x input (+ bias[co]).
/// `packed` from ifcn_conv3_pack; volumes are (d, h, w) per channel.
void ifcn_conv3_forward_group(const float *x, int cin, int d, int h, int w, const float *packed,
                              const float *bias, float *y, int cout, float beta,
                              int z, int y0, int y1, float *slab);

/// tile[co * (cin * 27) + ci * 27 + k] += sum over the group's voxels p of dy[co, p] x[ci, p + tap k].
void ifcn_conv3_weight_grad_group(const float *x, int cin, int d, int h, int w,
                                  const float *dy, int cout, int z, int y0, int y1,
                                  float *slab, float *tile);

#ifdef __cplusplus
}
#endif
#endif

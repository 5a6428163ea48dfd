#ifndef IFCN_WINOGRAD_H
#define IFCN_WINOGRAD_H

// 3x3x3 convolutions (stride 1, zero padding 1, batch 1, channel-major float32) by Winograd
// F(2x2x2, 3x3x3) with AVX2 + FMA: 64 multiplications per 2x2x2 output tile and channel pair
// where the direct convolution does 216. Extents with even depth and height and a width that is a
// multiple of 16 (8 tiles per vector). Run-time selection as for ifcn_conv3.h.
//
// Work is done per group: tile rows ty0..ty1 of one tile plane tz (output planes 2tz, 2tz+1).
// Per group the input tiles of every channel are transformed (V = B^T d B, per axis), the 64
// transformed components are multiplied and summed over the input channels with the transformed
// filter (M = U V), and the output tiles are transformed back (Y = A^T M A) into y.

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Applied to every output after bias and beta: y = y * scale[co] + shift[co], rounded after the
/// multiplication and again after the addition (as eval-mode batch norm applied to the stored output),
/// then max(y, 0) where relu is non-zero. Fuses an inference network's batch norm into the convolution.
typedef struct {
    const float *scale;  // NULL: no affine step
    const float *shift;
    int relu;
} ifcn_conv_epilogue;

/// 1 when the Winograd kernels handle this extent.
int ifcn_winograd_handles(int d, int h, int w);

/// Floats of the transformed filter: 64 * cin * cout.
size_t ifcn_winograd_filter_floats(int cin, int cout);

/// U = G g G^T per axis for weights w[cout][cin][27]; with `transpose_flip` that of the
/// backward-data filter w'[ci][co][26 - k] (then cin and cout swap roles in the forward call).
void ifcn_winograd_pack(const float *w, int cin, int cout, int transpose_flip, float *u);

/// Tile rows per group for this width and channel counts.
int ifcn_winograd_group_rows(int w, int cin, int cout);

/// Floats of one thread's scratch for groups of `group_rows` tile rows.
size_t ifcn_winograd_scratch_floats(int cin, int cout, int w, int group_rows);

/// y[co, output planes 2tz..2tz+1, rows 2ty0..2ty1-1, :] = beta * y + conv (+ bias[co]).
/// `epilogue` NULL: none.
void ifcn_winograd_forward_group(const float *x, int cin, int d, int h, int w, const float *u,
                                 const float *bias, float *y, int cout, float beta,
                                 int tz, int ty0, int ty1, float *scratch, const ifcn_conv_epilogue *epilogue);

// F(4x4x4, 3x3x3): 216 multiplications per 4x4x4 output tile and channel pair where the direct
// convolution does 1728 (F(2,3): 512 per 64 outputs). Depth and height multiples of 4, width a
// multiple of 32 (8 tiles per vector). Its rounding error is larger (about 16x F(2,3)'s for one
// convolution with float32 transforms: docs/BENCHMARKS.md), so ifcn uses it for inference only.
// Groups are tile rows ty0..ty1 of one tile plane tz (output planes 4tz..4tz+3).

/// 1 when the F(4,3) kernels handle this extent.
int ifcn_winograd4_handles(int d, int h, int w);

/// Floats of the F(4,3) transformed filter: 216 * cin * cout.
size_t ifcn_winograd4_filter_floats(int cin, int cout);

/// As ifcn_winograd_pack, for F(4,3).
void ifcn_winograd4_pack(const float *w, int cin, int cout, int transpose_flip, float *u);

/// Tile rows per F(4,3) group for this width and channel counts.
int ifcn_winograd4_group_rows(int w, int cin, int cout);

/// Floats of one thread's F(4,3) scratch for groups of `group_rows` tile rows.
size_t ifcn_winograd4_scratch_floats(int cin, int cout, int w, int group_rows);

/// y[co, output planes 4tz..4tz+3, rows 4ty0..4ty1-1, :] = beta * y + conv (+ bias[co]).
void ifcn_winograd4_forward_group(const float *x, int cin, int d, int h, int w, const float *u,
                                  const float *bias, float *y, int cout, float beta,
                                  int tz, int ty0, int ty1, float *scratch, const ifcn_conv_epilogue *epilogue);

#ifdef __cplusplus
}
#endif
#endif

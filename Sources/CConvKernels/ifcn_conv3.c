// Direct 3x3x3 convolutions with AVX2 + FMA (see include/ifcn_conv3.h).
//
// Forward (and backward data, which is a forward convolution with the transposed, flipped
// filter): a register tile of s <= 3 output channels x nv <= 4 vectors of 8 output voxels,
// 12 accumulators + 3 broadcast weights + 1 input vector = the 16 ymm registers. Per tap it
// loads nv input vectors and s weights for s x nv FMAs.
// Weight gradient: a tile of s <= 4 output channels x the 3 kx taps of one (ci, kz, ky), summed
// over the group's voxels in 8 lanes, then reduced with a horizontal-add tree.
// The functions carry target attributes, so this file builds for baseline x86-64 and the caller
// selects it with ifcn_conv3_direct_supported().

#include "ifcn_conv3.h"
#include "conv_blocks.h"

#include <stdlib.h>
#include <string.h>

int ifcn_conv3_direct_handles_width(int w) { return w >= 8 && w % 8 == 0; }

// Input channels per slab: the slab of a 128-wide group of 2 rows stays near 100 KB (L2). 4, 8, 16 and 32
// could not be told apart on the shared 2-core machine; all channels at once (C=64) was up to 30% slower.
enum { CHANNEL_BLOCK = 16 };

size_t ifcn_conv3_slab_floats(int w, int group_rows) {
    return (size_t)CHANNEL_BLOCK * 3 * (size_t)(group_rows + 2) * (size_t)(w + 2) + 8;
}


void ifcn_conv3_pack(const float *w, int cin, int cout, int transpose_flip, float *packed) {
    // The effective filter f[o][i][k]: o < no output channels, i < ni input channels.
    int no = transpose_flip ? cin : cout, ni = transpose_flip ? cout : cin;
    for (int o0 = 0; o0 < no;) {
        int s = ifcn_output_block_size(o0, no);
        float *block = packed + (size_t)o0 * ni * 27;
        for (int i = 0; i < ni; i++)
            for (int k = 0; k < 27; k++)
                for (int c = 0; c < s; c++) {
                    int o = o0 + c;
                    float v = transpose_flip ? w[((size_t)i * cin + o) * 27 + (26 - k)]
                                             : w[((size_t)o * cin + i) * 27 + k];
                    block[((size_t)i * 27 + k) * s + c] = v;
                }
        o0 += s;
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))
#define ALWAYS_INLINE static inline __attribute__((always_inline))

int ifcn_conv3_direct_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

int ifcn_cpu_has_avx512f(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}

typedef struct {
    const float *data;
    ptrdiff_t channel_stride, plane_stride, row_stride;
} Slab;

// Copies planes z-1..z+1, rows y0-1..y1, columns -1..w of `channels` channels, zero outside the volume.
static Slab build_slab(const float *x, int channels, int d, int h, int w, int z, int y0, int y1, float *slab) {
    ptrdiff_t rs = w + 2, ps = (ptrdiff_t)(y1 - y0 + 2) * rs, cs = 3 * ps;
    size_t voxels = (size_t)d * h * w;
    for (int c = 0; c < channels; c++)
        for (int pz = 0; pz < 3; pz++) {
            int sz = z + pz - 1;
            for (int r = 0; r < y1 - y0 + 2; r++) {
                int sy = y0 + r - 1;
                float *dst = slab + c * cs + pz * ps + r * rs;
                if (sz < 0 || sz >= d || sy < 0 || sy >= h) {
                    memset(dst, 0, (size_t)rs * sizeof(float));
                } else {
                    dst[0] = 0;
                    memcpy(dst + 1, x + c * voxels + ((size_t)sz * h + sy) * w, (size_t)w * sizeof(float));
                    dst[w + 1] = 0;
                }
            }
        }
    return (Slab){slab, cs, ps, rs};
}

// The group's output vectors: slab offset of tap (0, 0, 0) and volume offset of the output.
static int group_vectors(int h, int w, int z, int y0, int y1, ptrdiff_t rs, ptrdiff_t *base, ptrdiff_t *dst) {
    int n = 0;
    for (int r = 0; r < y1 - y0; r++)
        for (int x0 = 0; x0 < w; x0 += 8) {
            base[n] = r * rs + x0;
            dst[n] = ((ptrdiff_t)z * h + y0 + r) * w + x0;
            n++;
        }
    return n;
}

AVX2 ALWAYS_INLINE void forward_tile(Slab sl, int cin, const float *wp, const int s, const int nv,
                                     const ptrdiff_t *base, const ptrdiff_t *dst, float *y, ptrdiff_t voxels,
                                     const float *bias, float beta, int first) {
    __m256 acc[3][4];
    for (int c = 0; c < s; c++)
        for (int v = 0; v < nv; v++) acc[c][v] = _mm256_setzero_ps();
    for (int ci = 0; ci < cin; ci++) {
        const float *xs = sl.data + ci * sl.channel_stride;
        const float *wc = wp + (size_t)ci * 27 * s;
        for (int kz = 0; kz < 3; kz++)
            for (int ky = 0; ky < 3; ky++) {
                const float *row = xs + kz * sl.plane_stride + ky * sl.row_stride;
                for (int kx = 0; kx < 3; kx++) {
                    const float *wk = wc + ((kz * 3 + ky) * 3 + kx) * s;
                    __m256 wv[3];
                    for (int c = 0; c < s; c++) wv[c] = _mm256_broadcast_ss(wk + c);
                    for (int v = 0; v < nv; v++) {
                        __m256 xv = _mm256_loadu_ps(row + base[v] + kx);
                        for (int c = 0; c < s; c++) acc[c][v] = _mm256_fmadd_ps(wv[c], xv, acc[c][v]);
                    }
                }
            }
    }
    // The first channel block adds the bias and beta * y; later ones add into y.
    for (int c = 0; c < s; c++) {
        float *yc = y + c * voxels;
        __m256 b = _mm256_set1_ps(first && bias ? bias[c] : 0.0f);
        __m256 keep = _mm256_set1_ps(first ? beta : 1.0f);
        for (int v = 0; v < nv; v++) {
            __m256 r = _mm256_add_ps(acc[c][v], b);
            if (!first || beta != 0) r = _mm256_fmadd_ps(keep, _mm256_loadu_ps(yc + dst[v]), r);
            _mm256_storeu_ps(yc + dst[v], r);
        }
    }
}

#define FORWARD_CASE(S, NV) \
    case (S) * 8 + (NV): forward_tile(sl, cin, wp, S, NV, base, dst, yb, voxels, bb, beta, first); break;

AVX2 static void forward_block(Slab sl, int cin, const float *wp, int s, int nv, const ptrdiff_t *base,
                               const ptrdiff_t *dst, float *yb, ptrdiff_t voxels, const float *bb, float beta,
                               int first) {
    switch (s * 8 + nv) {
        FORWARD_CASE(1, 1) FORWARD_CASE(1, 2) FORWARD_CASE(1, 3) FORWARD_CASE(1, 4)
        FORWARD_CASE(2, 1) FORWARD_CASE(2, 2) FORWARD_CASE(2, 3) FORWARD_CASE(2, 4)
        FORWARD_CASE(3, 1) FORWARD_CASE(3, 2) FORWARD_CASE(3, 3) FORWARD_CASE(3, 4)
        default: abort();
    }
}

void ifcn_conv3_forward_group(const float *x, int cin, int d, int h, int w, const float *packed,
                              const float *bias, float *y, int cout, float beta,
                              int z, int y0, int y1, float *slab) {
    int max_vectors = (y1 - y0) * (w / 8);
    ptrdiff_t base[max_vectors], dst[max_vectors];
    int nvec = group_vectors(h, w, z, y0, y1, (ptrdiff_t)w + 2, base, dst);
    ptrdiff_t voxels = (ptrdiff_t)d * h * w;
    for (int ci0 = 0; ci0 < cin; ci0 += CHANNEL_BLOCK) {
        int cb = cin - ci0 < CHANNEL_BLOCK ? cin - ci0 : CHANNEL_BLOCK;
        Slab sl = build_slab(x + ci0 * voxels, cb, d, h, w, z, y0, y1, slab);
        for (int co = 0; co < cout;) {
            int s = ifcn_output_block_size(co, cout);
            const float *wp = packed + (size_t)co * cin * 27 + (size_t)ci0 * 27 * s;
            for (int v0 = 0; v0 < nvec; v0 += 4) {
                int nv = nvec - v0 < 4 ? nvec - v0 : 4;
                forward_block(sl, cb, wp, s, nv, base + v0, dst + v0, y + co * voxels, voxels,
                              bias ? bias + co : NULL, beta, ci0 == 0);
            }
            co += s;
        }
    }
}

// [sum a, sum b, sum c, sum d]
AVX2 ALWAYS_INLINE __m128 sum4(__m256 a, __m256 b, __m256 c, __m256 d) {
    __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

AVX2 ALWAYS_INLINE void weight_tile(Slab sl, int cin, const float *dy, ptrdiff_t voxels, const int s, int nvec,
                                    const ptrdiff_t *base, const ptrdiff_t *dst, float *tile, ptrdiff_t k_total) {
    for (int ci = 0; ci < cin; ci++)
        for (int kz = 0; kz < 3; kz++)
            for (int ky = 0; ky < 3; ky++) {
                const float *row = sl.data + ci * sl.channel_stride + kz * sl.plane_stride + ky * sl.row_stride;
                __m256 acc[4][3];
                for (int c = 0; c < s; c++)
                    for (int k = 0; k < 3; k++) acc[c][k] = _mm256_setzero_ps();
                for (int v = 0; v < nvec; v++) {
                    const float *xr = row + base[v];
                    __m256 x0 = _mm256_loadu_ps(xr), x1 = _mm256_loadu_ps(xr + 1), x2 = _mm256_loadu_ps(xr + 2);
                    for (int c = 0; c < s; c++) {
                        __m256 g = _mm256_loadu_ps(dy + c * voxels + dst[v]);
                        acc[c][0] = _mm256_fmadd_ps(g, x0, acc[c][0]);
                        acc[c][1] = _mm256_fmadd_ps(g, x1, acc[c][1]);
                        acc[c][2] = _mm256_fmadd_ps(g, x2, acc[c][2]);
                    }
                }
                for (int c = 0; c < s; c++) {
                    float sums[4];
                    _mm_storeu_ps(sums, sum4(acc[c][0], acc[c][1], acc[c][2], _mm256_setzero_ps()));
                    float *t = tile + c * k_total + ci * 27 + (kz * 3 + ky) * 3;
                    t[0] += sums[0];
                    t[1] += sums[1];
                    t[2] += sums[2];
                }
            }
}

#define WEIGHT_CASE(S) case S: weight_tile(sl, cb, dyb, voxels, S, nvec, base, dst, tb, k_total); break;

AVX2 void ifcn_conv3_weight_grad_group(const float *x, int cin, int d, int h, int w,
                                  const float *dy, int cout, int z, int y0, int y1,
                                  float *slab, float *tile) {
    int max_vectors = (y1 - y0) * (w / 8);
    ptrdiff_t base[max_vectors], dst[max_vectors];
    int nvec = group_vectors(h, w, z, y0, y1, (ptrdiff_t)w + 2, base, dst);
    ptrdiff_t voxels = (ptrdiff_t)d * h * w, k_total = (ptrdiff_t)cin * 27;
    for (int ci0 = 0; ci0 < cin; ci0 += CHANNEL_BLOCK) {
        int cb = cin - ci0 < CHANNEL_BLOCK ? cin - ci0 : CHANNEL_BLOCK;
        Slab sl = build_slab(x + ci0 * voxels, cb, d, h, w, z, y0, y1, slab);
        for (int co = 0; co < cout; co += 4) {
            int s = cout - co < 4 ? cout - co : 4;
            const float *dyb = dy + co * voxels;
            float *tb = tile + co * k_total + ci0 * 27;
            switch (s) {
                WEIGHT_CASE(1) WEIGHT_CASE(2) WEIGHT_CASE(3) WEIGHT_CASE(4)
            }
        }
    }
}

#else  // not x86-64: the caller never selects the direct kernels

int ifcn_conv3_direct_supported(void) { return 0; }
int ifcn_cpu_has_avx512f(void) { return 0; }

void ifcn_conv3_forward_group(const float *x, int cin, int d, int h, int w, const float *packed,
                              const float *bias, float *y, int cout, float beta,
                              int z, int y0, int y1, float *slab) {
    abort();
}

void ifcn_conv3_weight_grad_group(const float *x, int cin, int d, int h, int w,
                                  const float *dy, int cout, int z, int y0, int y1,
                                  float *slab, float *tile) {
    abort();
}

#endif

// Winograd F(4x4x4, 3x3x3) with AVX2 + FMA (see include/ifcn_winograd.h), points 0, +-1, +-2.
//
// 1D matrices:
//   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
//   G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
//   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
// Every vector holds 8 tiles that are neighbours along x (32 outputs). Loaded as four vectors, 32
// consecutive inputs hold one tile's first four inputs in each 128-bit lane; a 4x4 transpose inside the
// lanes turns them into the tiles' k-th inputs, with the tiles in the slot order 0 2 4 6 1 3 5 7. The
// output transform ends with the same transpose, which puts 32 consecutive outputs back in order.
//
// Scratch of one thread, per group of T = rows x w/4 tiles:
//   row   w + 8 floats: one input row with a zero before it and zeros after it
//   t1    6 planes x (4 rows + 2) x w/32 vectors x 6 x 8: rows transformed along x
//   v     216 components x cin x T: the transformed input
//   m     cout x 216 x T: the products summed over the input channels

#include "ifcn_winograd.h"
#include "conv_blocks.h"
#include "winograd_common.h"

#include <stdlib.h>
#include <string.h>

int ifcn_winograd4_handles(int d, int h, int w) {
    return d >= 4 && h >= 4 && d % 4 == 0 && h % 4 == 0 && w >= 32 && w % 32 == 0;
}

size_t ifcn_winograd4_filter_floats(int cin, int cout) { return (size_t)216 * cin * cout; }

void ifcn_winograd4_pack(const float *w, int cin, int cout, int transpose_flip, float *u) {
    static const double G[6 * 3] = {
        1.0 / 4, 0, 0,
        -1.0 / 6, -1.0 / 6, -1.0 / 6,
        -1.0 / 6, 1.0 / 6, -1.0 / 6,
        1.0 / 24, 1.0 / 12, 1.0 / 6,
        1.0 / 24, -1.0 / 12, 1.0 / 6,
        0, 0, 1};
    ifcn_winograd_pack_generic(w, cin, cout, transpose_flip, 6, G, u);
}

int ifcn_winograd4_group_rows(int w, int cin, int cout) {
    (void)cin; (void)cout;
    int rows = 128 / w;  // 32 tiles per group
    return rows < 1 ? 1 : rows;
}

size_t ifcn_winograd4_scratch_floats(int cin, int cout, int w, int group_rows) {
    size_t tiles = (size_t)group_rows * (w / 4);
    return (size_t)(w + 8) + 8 + (size_t)6 * (4 * group_rows + 2) * (w / 32) * 48
        + 216 * (size_t)cin * tiles + (size_t)cout * 216 * tiles + 64;
}

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))
#define ALWAYS_INLINE static inline __attribute__((always_inline))
#include "winograd_avx2.h"

// 4x4 transpose inside each 128-bit lane.
AVX2 ALWAYS_INLINE void transpose_lanes(__m256 *a0, __m256 *a1, __m256 *a2, __m256 *a3) {
    __m256 t0 = _mm256_unpacklo_ps(*a0, *a1), t1 = _mm256_unpackhi_ps(*a0, *a1);
    __m256 t2 = _mm256_unpacklo_ps(*a2, *a3), t3 = _mm256_unpackhi_ps(*a2, *a3);
    *a0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
    *a1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    *a2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
    *a3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
}

// B^T applied to six vectors.
AVX2 ALWAYS_INLINE void input_1d(const __m256 d[6], __m256 o[6]) {
    const __m256 four = _mm256_set1_ps(4), five = _mm256_set1_ps(5), two = _mm256_set1_ps(2);
    __m256 s12 = _mm256_add_ps(d[1], d[2]), s34 = _mm256_add_ps(d[3], d[4]);
    __m256 d12 = _mm256_sub_ps(d[1], d[2]), d43 = _mm256_sub_ps(d[4], d[3]);
    __m256 d42 = _mm256_sub_ps(d[4], d[2]), d31 = _mm256_sub_ps(d[3], d[1]);
    o[0] = _mm256_fnmadd_ps(five, d[2], _mm256_fmadd_ps(four, d[0], d[4]));
    o[1] = _mm256_fnmadd_ps(four, s12, s34);
    o[2] = _mm256_fmadd_ps(four, d12, d43);
    o[3] = _mm256_fmadd_ps(two, d31, d42);
    o[4] = _mm256_fnmadd_ps(two, d31, d42);
    o[5] = _mm256_fnmadd_ps(five, d[3], _mm256_fmadd_ps(four, d[1], d[5]));
}

// A^T applied to six vectors: four outputs.
AVX2 ALWAYS_INLINE void output_1d(const __m256 m[6], __m256 o[4]) {
    const __m256 two = _mm256_set1_ps(2), four = _mm256_set1_ps(4), eight = _mm256_set1_ps(8);
    __m256 s12 = _mm256_add_ps(m[1], m[2]), d12 = _mm256_sub_ps(m[1], m[2]);
    __m256 s34 = _mm256_add_ps(m[3], m[4]), d34 = _mm256_sub_ps(m[3], m[4]);
    o[0] = _mm256_add_ps(_mm256_add_ps(m[0], s12), s34);
    o[1] = _mm256_fmadd_ps(two, d34, d12);
    o[2] = _mm256_fmadd_ps(four, s34, s12);
    o[3] = _mm256_add_ps(_mm256_fmadd_ps(eight, d34, d12), m[5]);
}

// V for every tile of the group and one input channel.
AVX2 static void input_transform(const float *xc, int d, int h, int w, int tz, int ty0, int rows,
                                 float *row, float *t1, float *v, size_t v_stride_e) {
    int nj = w / 32, ry_count = 4 * rows + 2;
    // Along x, per input row (planes 4tz-1..4tz+4, rows 4ty0-1..4ty1).
    for (int pz = 0; pz < 6; pz++) {
        int z = 4 * tz - 1 + pz;
        for (int ry = 0; ry < ry_count; ry++) {
            int y = 4 * ty0 - 1 + ry;
            float *out = t1 + ((size_t)pz * ry_count + ry) * nj * 48;
            if (z < 0 || z >= d || y < 0 || y >= h) {
                memset(out, 0, (size_t)nj * 48 * sizeof(float));
                continue;
            }
            row[0] = 0;
            memcpy(row + 1, xc + ((size_t)z * h + y) * w, (size_t)w * sizeof(float));
            for (int i = w + 1; i < w + 8; i++) row[i] = 0;
            for (int j = 0; j < nj; j++) {
                const float *p = row + 32 * j;
                __m256 k[6], o[6];
                __m256 a0 = _mm256_loadu_ps(p), a1 = _mm256_loadu_ps(p + 8);
                __m256 a2 = _mm256_loadu_ps(p + 16), a3 = _mm256_loadu_ps(p + 24);
                transpose_lanes(&a0, &a1, &a2, &a3);
                __m256 b0 = _mm256_loadu_ps(p + 4), b1 = _mm256_loadu_ps(p + 12);
                __m256 b2 = _mm256_loadu_ps(p + 20), b3 = _mm256_loadu_ps(p + 28);
                transpose_lanes(&b0, &b1, &b2, &b3);
                k[0] = a0; k[1] = a1; k[2] = a2; k[3] = a3; k[4] = b0; k[5] = b1;
                input_1d(k, o);
                for (int c = 0; c < 6; c++) _mm256_storeu_ps(out + j * 48 + c * 8, o[c]);
            }
        }
    }
    // Along y, then z, per tile vector and x component.
    for (int t = 0; t < rows; t++)
        for (int j = 0; j < nj; j++)
            for (int ax = 0; ax < 6; ax++) {
                __m256 s[6][6];  // [pz][ay]
                for (int pz = 0; pz < 6; pz++) {
                    __m256 col[6];
                    for (int b = 0; b < 6; b++)
                        col[b] = _mm256_loadu_ps(t1 + (((size_t)pz * ry_count + 4 * t + b) * nj + j) * 48 + ax * 8);
                    input_1d(col, s[pz]);
                }
                for (int ay = 0; ay < 6; ay++) {
                    __m256 col[6], o[6];
                    for (int pz = 0; pz < 6; pz++) col[pz] = s[pz][ay];
                    input_1d(col, o);
                    for (int az = 0; az < 6; az++) {
                        int e = (az * 6 + ay) * 6 + ax;
                        _mm256_storeu_ps(v + e * v_stride_e + (size_t)(t * nj + j) * 8, o[az]);
                    }
                }
            }
}

// Asks for the input rows of the group in the next channel while this one is transformed: they come from
// memory (a channel of a 128^3 volume is 8 MB), 6 planes apart by a plane each.
AVX2 static void prefetch_rows(const float *xc, int d, int h, int w, int tz, int ty0, int ty1) {
    int ya = 4 * ty0 - 1 < 0 ? 0 : 4 * ty0 - 1, yb = 4 * ty1 + 1 > h ? h : 4 * ty1 + 1;
    for (int pz = 0; pz < 6; pz++) {
        int z = 4 * tz - 1 + pz;
        if (z < 0 || z >= d) continue;
        const char *p = (const char *)(xc + ((size_t)z * h + ya) * w), *end = (const char *)(xc + ((size_t)z * h + yb) * w);
        for (; p < end; p += 64) _mm_prefetch(p, _MM_HINT_T0);
    }
}

// Y = A^T M A for one output channel, written into its four planes with bias, beta and epilogue.
AVX2 static void output_transform(const float *mc, size_t tiles, int h, int w, int tz, int ty0, int rows,
                                  float *yc, const output_finish *f) {
    int nj = w / 32;
    for (int t = 0; t < rows; t++)
        for (int j = 0; j < nj; j++) {
            const float *mt = mc + (size_t)(t * nj + j) * 8;
            __m256 zy[4][6][6];  // after z: [oz][ay][ax]
            for (int ay = 0; ay < 6; ay++)
                for (int ax = 0; ax < 6; ax++) {
                    __m256 m[6], o[4];
                    for (int az = 0; az < 6; az++) m[az] = _mm256_loadu_ps(mt + ((az * 6 + ay) * 6 + ax) * tiles);
                    output_1d(m, o);
                    for (int oz = 0; oz < 4; oz++) zy[oz][ay][ax] = o[oz];
                }
            for (int oz = 0; oz < 4; oz++) {
                __m256 yx[4][6];  // after y: [oy][ax]
                for (int ax = 0; ax < 6; ax++) {
                    __m256 m[6], o[4];
                    for (int ay = 0; ay < 6; ay++) m[ay] = zy[oz][ay][ax];
                    output_1d(m, o);
                    for (int oy = 0; oy < 4; oy++) yx[oy][ax] = o[oy];
                }
                for (int oy = 0; oy < 4; oy++) {
                    __m256 o[4];
                    output_1d(yx[oy], o);
                    transpose_lanes(&o[0], &o[1], &o[2], &o[3]);
                    float *out = yc + ((size_t)(4 * tz + oz) * h + 4 * (ty0 + t) + oy) * w + 32 * j;
                    for (int c = 0; c < 4; c++) store_outputs(out + 8 * c, o[c], f);
                }
            }
        }
}

AVX2 void ifcn_winograd4_forward_group(const float *x, int cin, int d, int h, int w, const float *u,
                                       const float *bias, float *y, int cout, float beta,
                                       int tz, int ty0, int ty1, float *scratch, const ifcn_conv_epilogue *epilogue) {
    int rows = ty1 - ty0, nj = w / 32;
    size_t tiles = (size_t)rows * (w / 4), voxels = (size_t)d * h * w;
    float *row = scratch;
    float *t1 = row + w + 8 + 8;
    float *v = t1 + (size_t)6 * (4 * rows + 2) * nj * 48;
    float *m = v + 216 * (size_t)cin * tiles;
    for (int ci = 0; ci < cin; ci++) {
        if (ci + 1 < cin) prefetch_rows(x + (ci + 1) * voxels, d, h, w, tz, ty0, ty1);
        input_transform(x + ci * voxels, d, h, w, tz, ty0, rows, row, t1, v + ci * tiles, (size_t)cin * tiles);
    }
    winograd_products(u, v, m, 216, cin, cout, tiles);
    for (int co = 0; co < cout; co++) {
        output_finish f = output_finish_for(co, bias, beta, epilogue);
        output_transform(m + (size_t)co * 216 * tiles, tiles, h, w, tz, ty0, rows, y + co * voxels, &f);
    }
}

#else

void ifcn_winograd4_forward_group(const float *x, int cin, int d, int h, int w, const float *u,
                                  const float *bias, float *y, int cout, float beta,
                                  int tz, int ty0, int ty1, float *scratch, const ifcn_conv_epilogue *epilogue) {
    abort();
}

#endif

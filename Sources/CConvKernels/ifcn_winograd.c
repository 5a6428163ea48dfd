// Winograd F(2x2x2, 3x3x3) with AVX2 + FMA (see include/ifcn_winograd.h).
//
// 1D matrices: B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
// A^T = [1 1 1 0; 0 1 -1 -1]. Every vector holds 8 tiles that are neighbours along x, so the input
// transform reads each row of 16 inputs as its even and odd elements, and the output transform
// interleaves the even and odd outputs back.
//
// Scratch of one thread, per group of T = rows x w/2 tiles:
//   row   w + 2 floats: one input row with a zero on each side
//   t1    4 planes x (2 rows + 2) x w/16 vectors x 4: rows transformed along x
//   v     64 components x cin x T: the transformed input
//   m     cout x 64 x T: the products summed over the input channels

#include "ifcn_winograd.h"
#include "conv_blocks.h"
#include "winograd_common.h"

#include <stdlib.h>
#include <string.h>

int ifcn_winograd_handles(int d, int h, int w) {
    return d >= 2 && h >= 2 && d % 2 == 0 && h % 2 == 0 && w >= 16 && w % 16 == 0;
}

size_t ifcn_winograd_filter_floats(int cin, int cout) { return (size_t)64 * cin * cout; }

// U = G g G^T along each axis for a tiles of a^3 transformed components (a = 4 for F(2,3), 6 for F(4,3)),
// in double; layout [e][output block][ci][s], blocks of ifcn_output_block_size.
void ifcn_winograd_pack_generic(const float *w, int cin, int cout, int transpose_flip, int a, const double *G, float *u) {
    int no = transpose_flip ? cin : cout, ni = transpose_flip ? cout : cin;
    for (int o0 = 0; o0 < no;) {
        int s = ifcn_output_block_size(o0, no);
        for (int c = 0; c < s; c++)
            for (int i = 0; i < ni; i++) {
                int o = o0 + c;
                double g[27], t1[6][3][3], t2[6][6][3];
                for (int k = 0; k < 27; k++)
                    g[k] = transpose_flip ? w[((size_t)i * cin + o) * 27 + (26 - k)] : w[((size_t)o * cin + i) * 27 + k];
                for (int p = 0; p < a; p++)
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++) {
                            double sum = 0;
                            for (int kz = 0; kz < 3; kz++) sum += G[p * 3 + kz] * g[kz * 9 + ky * 3 + kx];
                            t1[p][ky][kx] = sum;
                        }
                for (int p = 0; p < a; p++)
                    for (int q = 0; q < a; q++)
                        for (int kx = 0; kx < 3; kx++) {
                            double sum = 0;
                            for (int ky = 0; ky < 3; ky++) sum += G[q * 3 + ky] * t1[p][ky][kx];
                            t2[p][q][kx] = sum;
                        }
                for (int p = 0; p < a; p++)
                    for (int q = 0; q < a; q++)
                        for (int r = 0; r < a; r++) {
                            double sum = 0;
                            for (int kx = 0; kx < 3; kx++) sum += G[r * 3 + kx] * t2[p][q][kx];
                            int e = (p * a + q) * a + r;
                            u[(size_t)e * ni * no + (size_t)o0 * ni + (size_t)i * s + c] = (float)sum;
                        }
            }
        o0 += s;
    }
}

void ifcn_winograd_pack(const float *w, int cin, int cout, int transpose_flip, float *u) {
    static const double G[4 * 3] = {1, 0, 0, 0.5, 0.5, 0.5, 0.5, -0.5, 0.5, 0, 0, 1};
    ifcn_winograd_pack_generic(w, cin, cout, transpose_flip, 4, G, u);
}

int ifcn_winograd_group_rows(int w, int cin, int cout) {
    (void)cin; (void)cout;
    int rows = 128 / w;  // 64 tiles per group
    return rows < 1 ? 1 : rows;
}

size_t ifcn_winograd_scratch_floats(int cin, int cout, int w, int group_rows) {
    size_t tiles = (size_t)group_rows * (w / 2);
    return (size_t)(w + 2) + 8 + (size_t)4 * (2 * group_rows + 2) * (w / 16) * 32
        + 64 * (size_t)cin * tiles + (size_t)cout * 64 * tiles + 64;
}

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))
#define ALWAYS_INLINE static inline __attribute__((always_inline))
#include "winograd_avx2.h"

// Even and odd elements of the 16 floats at p.
AVX2 ALWAYS_INLINE void deinterleave(const float *p, __m256 *even, __m256 *odd) {
    __m256 lo = _mm256_loadu_ps(p), hi = _mm256_loadu_ps(p + 8);
    __m256 e = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
    __m256 o = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
    *even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
    *odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), _MM_SHUFFLE(3, 1, 2, 0)));
}

// B^T applied to four vectors, in place.
AVX2 ALWAYS_INLINE void input_1d(__m256 *d0, __m256 *d1, __m256 *d2, __m256 *d3) {
    __m256 a = _mm256_sub_ps(*d0, *d2), b = _mm256_add_ps(*d1, *d2);
    __m256 c = _mm256_sub_ps(*d2, *d1), e = _mm256_sub_ps(*d1, *d3);
    *d0 = a; *d1 = b; *d2 = c; *d3 = e;
}

// V for every tile of the group and one input channel.
AVX2 static void input_transform(const float *xc, int d, int h, int w, int tz, int ty0, int rows,
                                 float *row, float *t1, float *v, size_t v_stride_e, int tiles) {
    int nj = w / 16, ry_count = 2 * rows + 2;
    // Along x, per input row (planes 2tz-1..2tz+2, rows 2ty0-1..2ty1).
    for (int pz = 0; pz < 4; pz++) {
        int z = 2 * tz - 1 + pz;
        for (int ry = 0; ry < ry_count; ry++) {
            int y = 2 * ty0 - 1 + ry;
            float *out = t1 + ((size_t)pz * ry_count + ry) * nj * 32;
            if (z < 0 || z >= d || y < 0 || y >= h) {
                memset(out, 0, (size_t)nj * 32 * sizeof(float));
                continue;
            }
            row[0] = 0;
            memcpy(row + 1, xc + ((size_t)z * h + y) * w, (size_t)w * sizeof(float));
            row[w + 1] = 0;
            for (int j = 0; j < nj; j++) {
                __m256 d0, d1, d2, d3;
                deinterleave(row + 16 * j, &d0, &d1);
                deinterleave(row + 16 * j + 2, &d2, &d3);
                input_1d(&d0, &d1, &d2, &d3);
                _mm256_storeu_ps(out + j * 32, d0);
                _mm256_storeu_ps(out + j * 32 + 8, d1);
                _mm256_storeu_ps(out + j * 32 + 16, d2);
                _mm256_storeu_ps(out + j * 32 + 24, d3);
            }
        }
    }
    // Along y and z, per tile vector and x component.
    for (int t = 0; t < rows; t++)
        for (int j = 0; j < nj; j++)
            for (int ax = 0; ax < 4; ax++) {
                __m256 s[4][4];  // [pz][ay]
                for (int pz = 0; pz < 4; pz++) {
                    for (int b = 0; b < 4; b++)
                        s[pz][b] = _mm256_loadu_ps(t1 + (((size_t)pz * ry_count + 2 * t + b) * nj + j) * 32 + ax * 8);
                    input_1d(&s[pz][0], &s[pz][1], &s[pz][2], &s[pz][3]);
                }
                for (int ay = 0; ay < 4; ay++) {
                    input_1d(&s[0][ay], &s[1][ay], &s[2][ay], &s[3][ay]);
                    for (int az = 0; az < 4; az++) {
                        int e = (az * 4 + ay) * 4 + ax;
                        _mm256_storeu_ps(v + e * v_stride_e + (size_t)(t * nj + j) * 8, s[az][ay]);
                    }
                }
            }
    (void)tiles;
}

// A^T applied to four vectors: two outputs.
AVX2 ALWAYS_INLINE void output_1d(__m256 m0, __m256 m1, __m256 m2, __m256 m3, __m256 *o0, __m256 *o1) {
    *o0 = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
    *o1 = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
}

// Y = A^T M A for one output channel, written into its plane pair with bias, beta and epilogue.
AVX2 static void output_transform(const float *mc, size_t tiles, int h, int w, int tz, int ty0, int rows,
                                  float *yc, const output_finish *f) {
    int nj = w / 16;
    for (int t = 0; t < rows; t++)
        for (int j = 0; j < nj; j++) {
            const float *mt = mc + (size_t)(t * nj + j) * 8;
            __m256 zy[2][4][4];  // after z: [oz][ay][ax]
            for (int ay = 0; ay < 4; ay++)
                for (int ax = 0; ax < 4; ax++) {
                    __m256 m[4];
                    for (int az = 0; az < 4; az++) m[az] = _mm256_loadu_ps(mt + ((az * 4 + ay) * 4 + ax) * tiles);
                    output_1d(m[0], m[1], m[2], m[3], &zy[0][ay][ax], &zy[1][ay][ax]);
                }
            for (int oz = 0; oz < 2; oz++) {
                __m256 yx[2][4];  // after y: [oy][ax]
                for (int ax = 0; ax < 4; ax++)
                    output_1d(zy[oz][0][ax], zy[oz][1][ax], zy[oz][2][ax], zy[oz][3][ax], &yx[0][ax], &yx[1][ax]);
                for (int oy = 0; oy < 2; oy++) {
                    __m256 even, odd;
                    output_1d(yx[oy][0], yx[oy][1], yx[oy][2], yx[oy][3], &even, &odd);
                    __m256 lo = _mm256_unpacklo_ps(even, odd), hi = _mm256_unpackhi_ps(even, odd);
                    __m256 first = _mm256_permute2f128_ps(lo, hi, 0x20), second = _mm256_permute2f128_ps(lo, hi, 0x31);
                    float *out = yc + ((size_t)(2 * tz + oz) * h + 2 * (ty0 + t) + oy) * w + 16 * j;
                    store_outputs(out, first, f);
                    store_outputs(out + 8, second, f);
                }
            }
        }
}

AVX2 void ifcn_winograd_forward_group(const float *x, int cin, int d, int h, int w, const float *u,
                                      const float *bias, float *y, int cout, float beta,
                                      int tz, int ty0, int ty1, float *scratch, const ifcn_conv_epilogue *epilogue) {
    int rows = ty1 - ty0, nj = w / 16;
    size_t tiles = (size_t)rows * (w / 2), voxels = (size_t)d * h * w;
    float *row = scratch;
    float *t1 = row + w + 2 + 6;
    float *v = t1 + (size_t)4 * (2 * rows + 2) * nj * 32;
    float *m = v + 64 * (size_t)cin * tiles;
    for (int ci = 0; ci < cin; ci++)
        input_transform(x + ci * voxels, d, h, w, tz, ty0, rows, row, t1, v + ci * tiles, (size_t)cin * tiles, (int)tiles);
    winograd_products(u, v, m, 64, cin, cout, tiles);
    for (int co = 0; co < cout; co++) {
        output_finish f = output_finish_for(co, bias, beta, epilogue);
        output_transform(m + (size_t)co * 64 * tiles, tiles, h, w, tz, ty0, rows, y + co * voxels, &f);
    }
}

#else

void ifcn_winograd_forward_group(const float *x, int cin, int d, int h, int w, const float *u,
                                 const float *bias, float *y, int cout, float beta,
                                 int tz, int ty0, int ty1, float *scratch, const ifcn_conv_epilogue *epilogue) {
    abort();
}

#endif

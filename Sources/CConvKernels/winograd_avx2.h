#ifndef IFCN_WINOGRAD_AVX2_H
#define IFCN_WINOGRAD_AVX2_H

// What the F(2,3) and F(4,3) AVX2 kernels share: the channel sums and the outputs' last steps. Included
// inside their x86-64 sections, after AVX2 and ALWAYS_INLINE are defined.

// m[c][e][tiles of v] = sum over ci of u[e][block][ci][c] * v[e][ci][tiles], for s channels x nv vectors.
AVX2 ALWAYS_INLINE void product_tile(const float *ue, const float *ve, int cin, size_t tiles, const int s, const int nv,
                                     float *me, size_t m_stride_c) {
    __m256 acc[3][4];
    for (int c = 0; c < s; c++)
        for (int k = 0; k < nv; k++) acc[c][k] = _mm256_setzero_ps();
    for (int ci = 0; ci < cin; ci++) {
        const float *vr = ve + ci * tiles;
        __m256 wv[3];
        for (int c = 0; c < s; c++) wv[c] = _mm256_broadcast_ss(ue + ci * s + c);
        for (int k = 0; k < nv; k++) {
            __m256 xv = _mm256_loadu_ps(vr + 8 * k);
            for (int c = 0; c < s; c++) acc[c][k] = _mm256_fmadd_ps(wv[c], xv, acc[c][k]);
        }
    }
    for (int c = 0; c < s; c++)
        for (int k = 0; k < nv; k++) _mm256_storeu_ps(me + c * m_stride_c + 8 * k, acc[c][k]);
}

#define PRODUCT_CASE(S, NV) case (S) * 8 + (NV): product_tile(ue, ve, cin, tiles, S, NV, me, m_stride_c); break;

AVX2 static void product_block(const float *ue, const float *ve, int cin, size_t tiles, int s, int nv,
                               float *me, size_t m_stride_c) {
    switch (s * 8 + nv) {
        PRODUCT_CASE(1, 1) PRODUCT_CASE(1, 2) PRODUCT_CASE(1, 3) PRODUCT_CASE(1, 4)
        PRODUCT_CASE(2, 1) PRODUCT_CASE(2, 2) PRODUCT_CASE(2, 3) PRODUCT_CASE(2, 4)
        PRODUCT_CASE(3, 1) PRODUCT_CASE(3, 2) PRODUCT_CASE(3, 3) PRODUCT_CASE(3, 4)
        default: abort();
    }
}

// m[co][e][tiles] = sum over ci of u[e][co][ci] v[e][ci][tiles] for the ncomp components of one group.
AVX2 static void winograd_products(const float *u, const float *v, float *m, int ncomp, int cin, int cout, size_t tiles) {
    int nvec = (int)(tiles / 8);
    for (int e = 0; e < ncomp; e++) {
        const float *ve = v + (size_t)e * cin * tiles;
        for (int co = 0; co < cout;) {
            int s = ifcn_output_block_size(co, cout);
            const float *ue = u + (size_t)e * cin * cout + (size_t)co * cin;
            for (int k0 = 0; k0 < nvec; k0 += 4) {
                int nv = nvec - k0 < 4 ? nvec - k0 : 4;
                product_block(ue, ve + 8 * k0, cin, tiles, s, nv, m + ((size_t)co * ncomp + e) * tiles + 8 * k0,
                              ncomp * tiles);
            }
            co += s;
        }
    }
}

// One output channel's bias, beta and epilogue (ifcn_conv_epilogue), as values.
typedef struct {
    __m256 bias, beta, scale, shift;
    int accumulate, affine, relu;
} output_finish;

AVX2 static inline output_finish output_finish_for(int co, const float *bias, float beta, const ifcn_conv_epilogue *ep) {
    output_finish f;
    f.bias = _mm256_set1_ps(bias ? bias[co] : 0.0f);
    f.beta = _mm256_set1_ps(beta);
    f.accumulate = beta != 0;
    f.affine = ep != NULL && ep->scale != NULL;
    f.scale = _mm256_set1_ps(f.affine ? ep->scale[co] : 1.0f);
    f.shift = _mm256_set1_ps(f.affine ? ep->shift[co] : 0.0f);
    f.relu = ep != NULL && ep->relu;
    return f;
}

// Stores 8 outputs r at out: + bias, + beta * out, then the epilogue (multiply and add rounded separately).
AVX2 ALWAYS_INLINE void store_outputs(float *out, __m256 r, const output_finish *f) {
    r = _mm256_add_ps(r, f->bias);
    if (f->accumulate) r = _mm256_fmadd_ps(f->beta, _mm256_loadu_ps(out), r);
    if (f->affine) r = _mm256_add_ps(_mm256_mul_ps(r, f->scale), f->shift);
    if (f->relu) r = _mm256_max_ps(r, _mm256_setzero_ps());
    _mm256_storeu_ps(out, r);
}

#endif

// oneDNN versus ifcn's im2col + OpenBLAS path for the 3x3x3 convolutions of the paper network
// (tools/ifcn_reference.py, build("paper", C, P)): stride 1, padding 1, batch 1, float32, no bias.
//
// Per distinct conv shape (cin, cout, extent) and round it times:
//   blk   oneDNN with format_tag::any (the blocked layout oneDNN picks), primitive execution only:
//         fwd_train, fwd_inf, fwd_inf_relu (inference conv + bias + eltwise ReLU post-op, i.e. conv with
//         batch norm folded in, then ReLU), bwd_data, bwd_weights, and bwd_weights_ro (the same with
//         the reorders of src and diff_dst that a network keeping the forward's layouts pays when the
//         backward-weights implementation wants other layouts)
//   plain oneDNN with ncdhw / oidhw memory descriptors (whatever implementation accepts them)
//   ro    the blocked primitive fed from and back to plain ncdhw buffers: reorders inside the timing
//   ifcn  a C copy of Sources/IFCNCompute/CPU/CPUConvolution.swift (chunked im2col + cblas_sgemm,
//         rows split statically over the threads, OpenBLAS single-threaded inside each): fwd, bwd_data,
//         bwd_weights, and bwd_weights_ro (src and diff_dst first reordered from oneDNN's blocked layouts)
// Primitives and buffers are created per shape and round outside the timing. Output lines:
//   I <shape> <method> <op> impl=<impl> src=<fmt> wei=<fmt> dst=<fmt>
//   L <round> loadavg <contents of /proc/loadavg at the start of the round>
//   C <shape> <method> <op> maxrel=<max|diff| / max|ifcn|>
//   R <round> <shape> <cin> <cout> <extent> <mult> <method> <op> <mean ms> <fastest ms> <executions>
// (the fastest execution is the figure least disturbed by other processes on a shared machine)
// Usage: dnnl_conv_bench -C 16 -P 32 [-r rounds] [-f (forward only)] [-m blk,plain,ro,ifcn] [-t threads]
//        [-s min seconds per measurement] [-o only this shape index] [-k (skip the correctness checks)]
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

extern void openblas_set_num_threads(int);

#define CK(x)                                                                                          \
    do {                                                                                               \
        dnnl_status_t s_ = (x);                                                                        \
        if (s_ != dnnl_success) {                                                                      \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #x, dnnl_status2str(s_));    \
            exit(1);                                                                                   \
        }                                                                                              \
    } while (0)

static dnnl_engine_t eng;
static dnnl_stream_t strm;
static int nthreads = 2;
static int skip_checks = 0;  // -k: no correctness checks (a run that repeats a checked configuration)
static double min_seconds = 0.3;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void *xmalloc(size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) { fprintf(stderr, "out of memory (%zu bytes)\n", bytes); exit(1); }
    return p;
}

static void fill(float *p, size_t n, float scale, unsigned long long seed) {
    unsigned long long s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = scale * ((float)((s >> 40) & 0xFFFFFF) / 8388608.0f - 1.0f);
    }
}

// ---------------------------------------------------------------------------------------------------
// ifcn's path (CPUConvolution.swift), faithfully: same chunking, same thread split, same sgemm calls.

static int rows_per_chunk(int E, int cin) {
    int target = cin >= 64 ? 256 : 128;
    int r = target / E;
    if (r < 1) r = 1;
    if (r > E * E) r = E * E;
    return r;
}

static void im2col(const float *src, int cin, int E, int r0, int r1, float *col) {
    const int W = E, H = E, D = E;
    const size_t V = (size_t)E * E * E, n = (size_t)(r1 - r0) * W;
    for (int ci = 0; ci < cin; ci++) {
        const float *sc = src + ci * V;
        for (int kz = 0; kz < 3; kz++)
            for (int ky = 0; ky < 3; ky++) {
                float *base = col + (size_t)(ci * 27 + kz * 9 + ky * 3) * n;
                for (int r = r0; r < r1; r++) {
                    int z = r / H, y = r % H, sz = z + kz - 1, sy = y + ky - 1;
                    float *d0 = base + (size_t)(r - r0) * W, *d1 = d0 + n, *d2 = d1 + n;
                    if (sz < 0 || sz >= D || sy < 0 || sy >= H) {
                        memset(d0, 0, W * 4); memset(d1, 0, W * 4); memset(d2, 0, W * 4);
                        continue;
                    }
                    const float *s = sc + ((size_t)sz * H + sy) * W;
                    d0[0] = 0;
                    if (W > 1) memcpy(d0 + 1, s, (W - 1) * 4);
                    memcpy(d1, s, W * 4);
                    if (W > 1) memcpy(d2, s + 1, (W - 1) * 4);
                    d2[W - 1] = 0;
                }
            }
    }
}

typedef struct {
    int cin, cout, E;
    const float *x, *w, *dy;
    float *y, *dx, *dw, *flipped, *cols[8], *partials[8];
} ifcn_t;

static void ifcn_conv3(const float *in, int cin, int E, const float *w, float *out, int cout, float beta,
                       float **cols) {
    const int K = cin * 27, W = E, rows = E * E, rpc = rows_per_chunk(E, cin);
    const int V = E * E * E;
    const int parts = nthreads < rows ? nthreads : rows;
#pragma omp parallel for num_threads(parts) schedule(static, 1)
    for (int t = 0; t < parts; t++) {
        int lo = (int)((long)rows * t / parts), hi = (int)((long)rows * (t + 1) / parts);
        for (int r0 = lo; r0 < hi;) {
            int r1 = r0 + rpc < hi ? r0 + rpc : hi, n = (r1 - r0) * W;
            im2col(in, cin, E, r0, r1, cols[t]);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cout, n, K, 1, w, K, cols[t], n, beta,
                        out + (size_t)r0 * W, V);
            r0 = r1;
        }
    }
}

static void ifcn_fwd(void *p) {
    ifcn_t *c = p;
    ifcn_conv3(c->x, c->cin, c->E, c->w, c->y, c->cout, 0, c->cols);
}

static void ifcn_bwd_data(void *p) {
    ifcn_t *c = p;
    for (int co = 0; co < c->cout; co++)
        for (int ci = 0; ci < c->cin; ci++) {
            const float *src = c->w + ((size_t)co * c->cin + ci) * 27;
            float *dst = c->flipped + ((size_t)ci * c->cout + co) * 27;
            for (int k = 0; k < 27; k++) dst[26 - k] = src[k];
        }
    ifcn_conv3(c->dy, c->cout, c->E, c->flipped, c->dx, c->cin, 0, c->cols);
}

// dW += dY x im2col(X)^T, per-thread partial sums added in thread order (ifcn accumulates into dW).
static void ifcn_bwd_weights(void *p) {
    ifcn_t *c = p;
    const int cin = c->cin, cout = c->cout, E = c->E, K = cin * 27, W = E, rows = E * E;
    const int rpc = rows_per_chunk(E, cin), V = E * E * E;
    const int parts = nthreads < rows ? nthreads : rows;
#pragma omp parallel for num_threads(parts) schedule(static, 1)
    for (int t = 0; t < parts; t++) {
        float *acc = c->partials[t];
        memset(acc, 0, (size_t)cout * K * 4);
        int lo = (int)((long)rows * t / parts), hi = (int)((long)rows * (t + 1) / parts);
        for (int r0 = lo; r0 < hi;) {
            int r1 = r0 + rpc < hi ? r0 + rpc : hi, n = (r1 - r0) * W;
            im2col(c->x, cin, E, r0, r1, c->cols[t]);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, cout, K, n, 1, c->dy + (size_t)r0 * W, V,
                        c->cols[t], n, 1, acc, K);
            r0 = r1;
        }
    }
    for (int t = 0; t < parts; t++) cblas_saxpy(cout * K, 1, c->partials[t], 1, c->dw, 1);
}

// ---------------------------------------------------------------------------------------------------
// oneDNN helpers

static dnnl_memory_desc_t act_md(int c, int E, dnnl_format_tag_t tag) {
    dnnl_memory_desc_t md;
    dnnl_dims_t d = {1, c, E, E, E};
    CK(dnnl_memory_desc_init_by_tag(&md, 5, d, dnnl_f32, tag));
    return md;
}

static dnnl_memory_desc_t wei_md(int cout, int cin, dnnl_format_tag_t tag) {
    dnnl_memory_desc_t md;
    dnnl_dims_t d = {cout, cin, 3, 3, 3};
    CK(dnnl_memory_desc_init_by_tag(&md, 5, d, dnnl_f32, tag));
    return md;
}

// A blocked layout in oneDNN's tag notation (outer dims by decreasing stride, blocked dims in capitals,
// then the inner blocks), e.g. nCdhw8c or OIdhw8i8o.
static void fmt_str(const dnnl_memory_desc_t *md, int weights, char *out, size_t len) {
    if (md->format_kind != dnnl_blocked) { snprintf(out, len, "%s", dnnl_fmt_kind2str(md->format_kind)); return; }
    const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
    const char *names = weights ? "oidhw" : "ncdhw";
    int order[DNNL_MAX_NDIMS], blocked[DNNL_MAX_NDIMS] = {0};
    for (int i = 0; i < md->ndims; i++) order[i] = i;
    for (int i = 0; i < b->inner_nblks; i++) blocked[b->inner_idxs[i]] = 1;
    for (int i = 0; i < md->ndims; i++)  // stable sort by decreasing outer stride
        for (int j = i + 1; j < md->ndims; j++)
            if (b->strides[order[j]] > b->strides[order[i]]) { int t = order[i]; order[i] = order[j]; order[j] = t; }
    size_t k = 0;
    for (int i = 0; i < md->ndims && k + 1 < len; i++) {
        char ch = names[order[i]];
        out[k++] = blocked[order[i]] ? (char)(ch - 32) : ch;
    }
    out[k] = 0;
    for (int i = 0; i < b->inner_nblks; i++) {
        size_t l = strlen(out);
        snprintf(out + l, len - l, "%lld%c", (long long)b->inner_blks[i], names[b->inner_idxs[i]]);
    }
}

static const char *impl_of(const_dnnl_primitive_desc_t pd) {
    const char *s = NULL;
    CK(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &s));
    return s;
}

static const dnnl_memory_desc_t *pd_md(const_dnnl_primitive_desc_t pd, dnnl_query_t q) {
    return dnnl_primitive_desc_query_md(pd, q, 0);
}

static dnnl_memory_t mem_new(const dnnl_memory_desc_t *md, void *handle) {
    dnnl_memory_t m;
    CK(dnnl_memory_create(&m, md, eng, handle ? handle : DNNL_MEMORY_ALLOCATE));
    return m;
}

static float *mem_ptr(dnnl_memory_t m) {
    void *p;
    CK(dnnl_memory_get_data_handle(m, &p));
    return p;
}

static const dnnl_memory_desc_t *mem_md(dnnl_memory_t m) {
    const dnnl_memory_desc_t *md;
    CK(dnnl_memory_get_memory_desc(m, &md));
    return md;
}

typedef struct { dnnl_primitive_t p; dnnl_memory_t from, to; } reorder_t;

static reorder_t reorder_new(dnnl_memory_t from, dnnl_memory_t to) {
    reorder_t r = {NULL, from, to};
    dnnl_primitive_desc_t pd;
    CK(dnnl_reorder_primitive_desc_create(&pd, mem_md(from), eng, mem_md(to), eng, NULL));
    CK(dnnl_primitive_create(&r.p, pd));
    CK(dnnl_primitive_desc_destroy(pd));
    return r;
}

static void reorder_run(reorder_t r) {
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, r.from}, {DNNL_ARG_TO, r.to}};
    CK(dnnl_primitive_execute(r.p, strm, 2, a));
}

// One oneDNN operation: reorders in, the primitive, reorders out.
typedef struct {
    dnnl_primitive_t prim;
    int nargs, npre, npost;
    dnnl_exec_arg_t args[6];
    reorder_t pre[3], post[1];
} dop_t;

static void dop_run(void *p) {
    dop_t *o = p;
    for (int i = 0; i < o->npre; i++) reorder_run(o->pre[i]);
    CK(dnnl_primitive_execute(o->prim, strm, o->nargs, o->args));
    for (int i = 0; i < o->npost; i++) reorder_run(o->post[i]);
    CK(dnnl_stream_wait(strm));
}

// ifcn's backward weights fed from the blocked layouts of a oneDNN network: reorder src and diff_dst to
// ncdhw first (a hybrid of oneDNN forward / backward data and ifcn backward weights).
typedef struct {
    int npre;
    reorder_t pre[2];
    ifcn_t *ic;
} hybrid_t;

static void hybrid_run(void *p) {
    hybrid_t *h = p;
    for (int i = 0; i < h->npre; i++) reorder_run(h->pre[i]);
    CK(dnnl_stream_wait(strm));
    ifcn_bwd_weights(h->ic);
}

static void dop_free(dop_t *o) {
    if (!o->prim) return;
    dnnl_primitive_destroy(o->prim);
    for (int i = 0; i < o->npre; i++) dnnl_primitive_destroy(o->pre[i].p);
    for (int i = 0; i < o->npost; i++) dnnl_primitive_destroy(o->post[i].p);
    memset(o, 0, sizeof *o);
}

static void arg(dop_t *o, int a, dnnl_memory_t m) { o->args[o->nargs++] = (dnnl_exec_arg_t){a, m}; }

// Returns memory with descriptor md: `have` itself when its descriptor is equal, else a new buffer
// filled from `have` by a reorder run once here (outside any timing).
static dnnl_memory_t as_md(dnnl_memory_t have, const dnnl_memory_desc_t *md, dnnl_memory_t *owned) {
    if (dnnl_memory_desc_equal(mem_md(have), md)) return have;
    *owned = mem_new(md, NULL);
    reorder_t r = reorder_new(have, *owned);
    reorder_run(r);
    CK(dnnl_stream_wait(strm));
    dnnl_primitive_destroy(r.p);
    return *owned;
}

// ---------------------------------------------------------------------------------------------------

typedef struct { int cin, cout, E, mult, bwd_data; const char *name; } shape_t;

static int paper_shapes(int C, int P, shape_t *s) {
    int n = 0;
    s[n++] = (shape_t){2, C, P, 1, 0, "down0.conv1"};
    s[n++] = (shape_t){C, C, P, 2, 1, "down0.conv2,up0.conv2"};
    s[n++] = (shape_t){2 * C, C, P, 1, 1, "up0.conv1"};
    s[n++] = (shape_t){C, C, P / 2, 3, 1, "down1.conv1-2,up1.conv2"};
    s[n++] = (shape_t){2 * C, C, P / 2, 1, 1, "up1.conv1"};
    s[n++] = (shape_t){C, C, P / 4, 3, 1, "down2.conv1-2,up2.conv2"};
    s[n++] = (shape_t){2 * C, C, P / 4, 1, 1, "up2.conv1"};
    s[n++] = (shape_t){C, C, P / 8, 2, 1, "down3.conv1-2"};
    for (int e = P / 16; e >= 2; e /= 2) s[n++] = (shape_t){C, C, e, 2, 1, "cls.conv1-2"};
    return n;
}

static void time_op(int round, int si, const shape_t *s, const char *method, const char *op,
                    void (*fn)(void *), void *ctx, double flops) {
    if (flops < 5e10) fn(ctx);  // warm-up, skipped for the largest shapes (one execution takes seconds)
    int reps = 0;
    double t0 = now(), t, best = 1e30;
    do {
        double a = now();
        fn(ctx);
        double b = now();
        if (b - a < best) best = b - a;
        reps++;
        t = b - t0;
    } while (t < min_seconds && reps < 500);
    printf("R %d %d %d %d %d %d %s %s %.3f %.3f %d\n", round, si, s->cin, s->cout, s->E, s->mult, method, op,
           1e3 * t / reps, 1e3 * best, reps);
    fflush(stdout);
}

static void info(int si, const char *method, const char *op, const_dnnl_primitive_desc_t pd,
                 dnnl_query_t src_q, dnnl_query_t wei_q, dnnl_query_t dst_q) {
    char a[64], b[64], c[64];
    fmt_str(pd_md(pd, src_q), 0, a, sizeof a);
    fmt_str(pd_md(pd, wei_q), 1, b, sizeof b);
    fmt_str(pd_md(pd, dst_q), 0, c, sizeof c);
    printf("I %d %s %s impl=%s src=%s wei=%s dst=%s\n", si, method, op, impl_of(pd), a, b, c);
}

static double maxrel(const float *a, const float *ref, size_t n) {
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - ref[i]);
        if (e > d) d = e;
        if (fabs(ref[i]) > m) m = fabs(ref[i]);
    }
    return m > 0 ? d / m : d;
}

static void check(int si, const char *method, const char *op, dnnl_memory_t m, const float *ref, size_t n) {
    // m may be blocked: bring it to plain first.
    const dnnl_memory_desc_t *md = mem_md(m);
    dnnl_memory_desc_t plain;
    int weights = md->dims[2] == 3 && md->dims[0] != 1;
    if (weights) plain = wei_md((int)md->dims[0], (int)md->dims[1], dnnl_oidhw);
    else plain = act_md((int)md->dims[1], (int)md->dims[2], dnnl_ncdhw);
    dnnl_memory_t p = mem_new(&plain, NULL);
    reorder_t r = reorder_new(m, p);
    reorder_run(r);
    CK(dnnl_stream_wait(strm));
    printf("C %d %s %s maxrel=%.2e\n", si, method, op, maxrel(mem_ptr(p), ref, n));
    dnnl_primitive_destroy(r.p);
    dnnl_memory_destroy(p);
}

static int has(const char *list, const char *m) {
    size_t l = strlen(m);
    for (const char *p = list; (p = strstr(p, m)) != NULL; p += l)
        if ((p == list || p[-1] == ',') && (p[l] == 0 || p[l] == ',')) return 1;
    return 0;
}

typedef struct {
    dnnl_primitive_desc_t pd;
    dop_t op;
} conv_t;

static dnnl_primitive_desc_t pd_fwd(dnnl_prop_kind_t prop, const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *w,
                                    const dnnl_memory_desc_t *bias, const dnnl_memory_desc_t *dst, int relu) {
    dnnl_convolution_desc_t cd;
    dnnl_dims_t st = {1, 1, 1}, pad = {1, 1, 1};
    CK(dnnl_convolution_forward_desc_init(&cd, prop, dnnl_convolution_direct, src, w, bias, dst, st, pad, pad));
    dnnl_primitive_attr_t attr = NULL;
    if (relu) {
        dnnl_post_ops_t po;
        CK(dnnl_post_ops_create(&po));
        CK(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f));
        CK(dnnl_primitive_attr_create(&attr));
        CK(dnnl_primitive_attr_set_post_ops(attr, po));
        dnnl_post_ops_destroy(po);
    }
    dnnl_primitive_desc_t pd;
    CK(dnnl_primitive_desc_create(&pd, &cd, attr, eng, NULL));
    if (attr) dnnl_primitive_attr_destroy(attr);
    return pd;
}

static dnnl_primitive_desc_t pd_bwd_data(const dnnl_memory_desc_t *dsrc, const dnnl_memory_desc_t *w,
                                         const dnnl_memory_desc_t *ddst, const_dnnl_primitive_desc_t hint) {
    dnnl_convolution_desc_t cd;
    dnnl_dims_t st = {1, 1, 1}, pad = {1, 1, 1};
    CK(dnnl_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct, dsrc, w, ddst, st, pad, pad));
    dnnl_primitive_desc_t pd;
    CK(dnnl_primitive_desc_create(&pd, &cd, NULL, eng, hint));
    return pd;
}

static dnnl_primitive_desc_t pd_bwd_weights(const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *dw,
                                            const dnnl_memory_desc_t *ddst, const_dnnl_primitive_desc_t hint) {
    dnnl_convolution_desc_t cd;
    dnnl_dims_t st = {1, 1, 1}, pad = {1, 1, 1};
    CK(dnnl_convolution_backward_weights_desc_init(&cd, dnnl_convolution_direct, src, dw, NULL, ddst, st, pad, pad));
    dnnl_primitive_desc_t pd;
    CK(dnnl_primitive_desc_create(&pd, &cd, NULL, eng, hint));
    return pd;
}

static void prim_of(dop_t *o, const_dnnl_primitive_desc_t pd) { CK(dnnl_primitive_create(&o->prim, pd)); }

typedef enum { PASS_FWD, PASS_BWD_DATA, PASS_BWD_WEIGHTS } pass_t;

// The primitive of pd on its three tensors: forward (src, weights, dst), backward data (diff_dst, weights,
// diff_src) or backward weights (src, diff_dst, diff_weights); the last one is what it writes.
static dop_t dop_new(const_dnnl_primitive_desc_t pd, pass_t pass, dnnl_memory_t a, dnnl_memory_t b, dnnl_memory_t out) {
    static const int args[3][3] = {{DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST},
                                   {DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC},
                                   {DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS}};
    dop_t o = {0};
    prim_of(&o, pd);
    arg(&o, args[pass][0], a); arg(&o, args[pass][1], b); arg(&o, args[pass][2], out);
    return o;
}

typedef struct { int round, si, first; const shape_t *s; double flops; } run_t;

// Times o and frees it. On the first round, before that, logs pd's implementation and layouts (when pd is
// given) and runs o once to compare its output `out` with `ref` (n values, when ref is given).
static void measure(const run_t *r, const char *method, const char *op, dop_t *o, const_dnnl_primitive_desc_t pd,
                    pass_t pass, dnnl_memory_t out, const float *ref, size_t n) {
    static const dnnl_query_t q[3][3] = {
        {dnnl_query_src_md, dnnl_query_weights_md, dnnl_query_dst_md},
        {dnnl_query_diff_src_md, dnnl_query_weights_md, dnnl_query_diff_dst_md},
        {dnnl_query_src_md, dnnl_query_diff_weights_md, dnnl_query_diff_dst_md}};
    if (r->first && pd) info(r->si, method, op, pd, q[pass][0], q[pass][1], q[pass][2]);
    if (r->first && ref) { dop_run(o); check(r->si, method, op, out, ref, n); }
    time_op(r->round, r->si, r->s, method, op, dop_run, o, r->flops);
    dop_free(o);
}

// Whether pd takes src and weights in the layouts of the memories x and w.
static int same_layouts(const_dnnl_primitive_desc_t pd, dnnl_memory_t x, dnnl_memory_t w) {
    return dnnl_memory_desc_equal(pd_md(pd, dnnl_query_src_md), mem_md(x)) &&
           dnnl_memory_desc_equal(pd_md(pd, dnnl_query_weights_md), mem_md(w));
}

static void run_shape(int round, int si, const shape_t *s, const char *methods, int fwd_only) {
    const int cin = s->cin, cout = s->cout, E = s->E;
    const size_t V = (size_t)E * E * E, nx = cin * V, ny = cout * V, nw = (size_t)cout * cin * 27;
    const int do_bwd = !fwd_only, do_bd = do_bwd && s->bwd_data, first = round == 0 && !skip_checks;
    const double flops = 2.0 * cout * cin * 27 * V;
    const dnnl_prop_kind_t fprop = fwd_only ? dnnl_forward_inference : dnnl_forward_training;
    const char *fname = fwd_only ? "fwd_inf" : "fwd_train";

    // Plain buffers shared by every method; ifcn writes its own outputs (the reference of the checks).
    float *x = xmalloc(nx * 4), *w = xmalloc(nw * 4), *bias = xmalloc(cout * 4), *y = xmalloc(ny * 4);
    float *yi = xmalloc(ny * 4), *dy = NULL, *dx = NULL, *dxi = NULL, *dw = NULL, *dwi = NULL;
    fill(x, nx, 1.0f, 1 + si);
    fill(w, nw, 1.0f / sqrtf(cin * 27.0f), 2 + si);
    fill(bias, cout, 0.1f, 3 + si);
    memset(y, 0, ny * 4); memset(yi, 0, ny * 4);
    if (do_bwd) {
        dy = xmalloc(ny * 4); dx = xmalloc(nx * 4); dxi = xmalloc(nx * 4); dw = xmalloc(nw * 4); dwi = xmalloc(nw * 4);
        fill(dy, ny, 1.0f, 4 + si);
        memset(dx, 0, nx * 4); memset(dxi, 0, nx * 4); memset(dw, 0, nw * 4); memset(dwi, 0, nw * 4);
    }

    // ifcn
    ifcn_t ic = {cin, cout, E, x, w, dy, yi, dxi, dwi, NULL, {0}, {0}};
    int kmax = (cin > cout ? cin : cout) * 27;
    for (int t = 0; t < nthreads; t++) {
        int r = rows_per_chunk(E, cin) > rows_per_chunk(E, cout) ? rows_per_chunk(E, cin) : rows_per_chunk(E, cout);
        ic.cols[t] = xmalloc((size_t)kmax * r * E * 4);
        ic.partials[t] = do_bwd ? xmalloc(nw * 4) : NULL;
    }
    ic.flipped = xmalloc(nw * 4);
    if (first) {  // the ifcn outputs are the reference of the checks
        ifcn_fwd(&ic);
        if (do_bd) ifcn_bwd_data(&ic);
        if (do_bwd) { memset(dwi, 0, nw * 4); ifcn_bwd_weights(&ic); }
    }

    // oneDNN memories on the plain buffers
    dnnl_memory_desc_t xm = act_md(cin, E, dnnl_ncdhw), ym = act_md(cout, E, dnnl_ncdhw);
    dnnl_memory_desc_t wm = wei_md(cout, cin, dnnl_oidhw), anyx = act_md(cin, E, dnnl_format_tag_any);
    dnnl_memory_desc_t anyy = act_md(cout, E, dnnl_format_tag_any), anyw = wei_md(cout, cin, dnnl_format_tag_any);
    dnnl_memory_desc_t bm;
    dnnl_dims_t bd = {cout};
    CK(dnnl_memory_desc_init_by_tag(&bm, 1, bd, dnnl_f32, dnnl_a));
    dnnl_memory_t X = mem_new(&xm, x), W = mem_new(&wm, w), B = mem_new(&bm, bias), Y = mem_new(&ym, y);
    dnnl_memory_t DY = NULL, DX = NULL, DW = NULL;
    if (do_bwd) { DY = mem_new(&ym, dy); DX = mem_new(&xm, dx); DW = mem_new(&wm, dw); }

    // Blocked primitives (format any) and their memories, filled once from the plain buffers.
    dnnl_primitive_desc_t fpd = pd_fwd(fprop, &anyx, &anyw, NULL, &anyy, 0);
    dnnl_primitive_desc_t bdpd = NULL, bwpd = NULL;
    dnnl_memory_t Xb = mem_new(pd_md(fpd, dnnl_query_src_md), NULL), Wb = mem_new(pd_md(fpd, dnnl_query_weights_md), NULL);
    dnnl_memory_t Yb = mem_new(pd_md(fpd, dnnl_query_dst_md), NULL);
    dnnl_memory_t own[8] = {0};
    reorder_t r1 = reorder_new(X, Xb), r2 = reorder_new(W, Wb);
    reorder_run(r1); reorder_run(r2);
    CK(dnnl_stream_wait(strm));
    dnnl_primitive_destroy(r1.p); dnnl_primitive_destroy(r2.p);
    dnnl_memory_t DYb = NULL, DXb = NULL, Wbd = NULL, DWb = NULL, DYbw = NULL, Xbw = NULL;
    if (do_bd) {
        bdpd = pd_bwd_data(&anyx, &anyw, &anyy, fpd);
        DXb = mem_new(pd_md(bdpd, dnnl_query_diff_src_md), NULL);
        Wbd = as_md(Wb, pd_md(bdpd, dnnl_query_weights_md), &own[0]);
        DYb = mem_new(pd_md(bdpd, dnnl_query_diff_dst_md), NULL);
    }
    if (do_bwd) {
        bwpd = pd_bwd_weights(&anyx, &anyw, &anyy, fpd);
        if (!DYb) DYb = mem_new(pd_md(bwpd, dnnl_query_diff_dst_md), NULL);
        reorder_t r3 = reorder_new(DY, DYb);
        reorder_run(r3);
        CK(dnnl_stream_wait(strm));
        dnnl_primitive_destroy(r3.p);
        DYbw = as_md(DYb, pd_md(bwpd, dnnl_query_diff_dst_md), &own[1]);
        Xbw = as_md(Xb, pd_md(bwpd, dnnl_query_src_md), &own[2]);
        DWb = mem_new(pd_md(bwpd, dnnl_query_diff_weights_md), NULL);
    }

    const run_t rr = {round, si, first, s, flops};
    if (has(methods, "blk")) {
        dop_t o = dop_new(fpd, PASS_FWD, Xb, Wb, Yb);
        measure(&rr, "blk", fname, &o, fpd, PASS_FWD, Yb, yi, ny);
        if (!fwd_only) {  // inference prop kind too (training reuses fpd above)
            dnnl_primitive_desc_t ipd = pd_fwd(dnnl_forward_inference, &anyx, &anyw, NULL, &anyy, 0);
            if (same_layouts(ipd, Xb, Wb)) {
                o = dop_new(ipd, PASS_FWD, Xb, Wb, Yb);
                measure(&rr, "blk", "fwd_inf", &o, ipd, PASS_FWD, Yb, NULL, 0);
            } else printf("I %d blk fwd_inf layout differs from fwd_train\n", si);
            dnnl_primitive_desc_destroy(ipd);
        }
        // conv + bias + ReLU post-op (inference: batch norm folded into weights and bias)
        dnnl_primitive_desc_t rpd = pd_fwd(dnnl_forward_inference, &anyx, &anyw, &bm, &anyy, 1);
        if (same_layouts(rpd, Xb, Wb)) {
            o = dop_new(rpd, PASS_FWD, Xb, Wb, Yb);
            arg(&o, DNNL_ARG_BIAS, B);
            float *ref = NULL;
            if (first) {  // relu(ifcn conv + bias)
                ref = xmalloc(ny * 4);
                for (int co = 0; co < cout; co++)
                    for (size_t i = 0; i < V; i++) { float v = yi[co * V + i] + bias[co]; ref[co * V + i] = v > 0 ? v : 0; }
            }
            measure(&rr, "blk", "fwd_inf_relu", &o, rpd, PASS_FWD, Yb, ref, ny);
            free(ref);
        } else printf("I %d blk fwd_inf_relu layout differs from fwd\n", si);
        dnnl_primitive_desc_destroy(rpd);
        if (do_bd) {
            o = dop_new(bdpd, PASS_BWD_DATA, DYb, Wbd, DXb);
            measure(&rr, "blk", "bwd_data", &o, bdpd, PASS_BWD_DATA, DXb, dxi, nx);
        }
        if (do_bwd) {
            o = dop_new(bwpd, PASS_BWD_WEIGHTS, Xbw, DYbw, DWb);
            measure(&rr, "blk", "bwd_weights", &o, bwpd, PASS_BWD_WEIGHTS, DWb, dwi, nw);
            // The same inside a network that keeps the forward's layouts: when the backward-weights
            // primitive wants other layouts than the forward's src and the backward-data's diff_dst,
            // reorder those two per call.
            if (Xbw != Xb || DYbw != DYb) {
                o = dop_new(bwpd, PASS_BWD_WEIGHTS, Xbw, DYbw, DWb);
                if (Xbw != Xb) o.pre[o.npre++] = reorder_new(Xb, Xbw);
                if (DYbw != DYb) o.pre[o.npre++] = reorder_new(DYb, DYbw);
                measure(&rr, "blk", "bwd_weights_ro", &o, NULL, PASS_BWD_WEIGHTS, DWb, NULL, 0);
            }
        }
    }

    if (has(methods, "plain")) {  // oneDNN on ncdhw / oidhw descriptors
        dnnl_primitive_desc_t pd = pd_fwd(fprop, &xm, &wm, NULL, &ym, 0);
        dop_t o = dop_new(pd, PASS_FWD, X, W, Y);
        measure(&rr, "plain", fname, &o, pd, PASS_FWD, Y, yi, ny);
        if (do_bd) {
            dnnl_primitive_desc_t p2 = pd_bwd_data(&xm, &wm, &ym, pd);
            o = dop_new(p2, PASS_BWD_DATA, DY, W, DX);
            measure(&rr, "plain", "bwd_data", &o, p2, PASS_BWD_DATA, DX, dxi, nx);
            dnnl_primitive_desc_destroy(p2);
        }
        if (do_bwd) {
            dnnl_primitive_desc_t p3 = pd_bwd_weights(&xm, &wm, &ym, pd);
            o = dop_new(p3, PASS_BWD_WEIGHTS, X, DY, DW);
            measure(&rr, "plain", "bwd_weights", &o, p3, PASS_BWD_WEIGHTS, DW, dwi, nw);
            dnnl_primitive_desc_destroy(p3);
        }
        dnnl_primitive_desc_destroy(pd);
    }

    if (has(methods, "ro")) {  // blocked primitive behind reorders from / to the plain buffers
        dop_t o = dop_new(fpd, PASS_FWD, Xb, Wb, Yb);
        o.pre[o.npre++] = reorder_new(X, Xb); o.pre[o.npre++] = reorder_new(W, Wb); o.post[o.npost++] = reorder_new(Yb, Y);
        measure(&rr, "ro", fname, &o, NULL, PASS_FWD, Y, yi, ny);
        if (do_bd) {
            o = dop_new(bdpd, PASS_BWD_DATA, DYb, Wbd, DXb);
            o.pre[o.npre++] = reorder_new(DY, DYb); o.pre[o.npre++] = reorder_new(W, Wbd); o.post[o.npost++] = reorder_new(DXb, DX);
            measure(&rr, "ro", "bwd_data", &o, NULL, PASS_BWD_DATA, DX, dxi, nx);
        }
        if (do_bwd) {
            o = dop_new(bwpd, PASS_BWD_WEIGHTS, Xbw, DYbw, DWb);
            o.pre[o.npre++] = reorder_new(X, Xbw); o.pre[o.npre++] = reorder_new(DY, DYbw); o.post[o.npost++] = reorder_new(DWb, DW);
            measure(&rr, "ro", "bwd_weights", &o, NULL, PASS_BWD_WEIGHTS, DW, dwi, nw);
        }
    }

    if (has(methods, "ifcn")) {
        time_op(round, si, s, "ifcn", "fwd", ifcn_fwd, &ic, flops);
        if (do_bd) time_op(round, si, s, "ifcn", "bwd_data", ifcn_bwd_data, &ic, flops);
        if (do_bwd) time_op(round, si, s, "ifcn", "bwd_weights", ifcn_bwd_weights, &ic, flops);
        if (do_bwd && (!dnnl_memory_desc_equal(mem_md(Xb), &xm) || !dnnl_memory_desc_equal(mem_md(DYb), &ym))) {
            hybrid_t h = {0, {{0}}, &ic};
            if (!dnnl_memory_desc_equal(mem_md(Xb), &xm)) h.pre[h.npre++] = reorder_new(Xb, X);
            if (!dnnl_memory_desc_equal(mem_md(DYb), &ym)) h.pre[h.npre++] = reorder_new(DYb, DY);
            time_op(round, si, s, "ifcn", "bwd_weights_ro", hybrid_run, &h, flops);
            for (int i = 0; i < h.npre; i++) dnnl_primitive_destroy(h.pre[i].p);
        }
    }

    dnnl_primitive_desc_destroy(fpd);
    if (bdpd) dnnl_primitive_desc_destroy(bdpd);
    if (bwpd) dnnl_primitive_desc_destroy(bwpd);
    dnnl_memory_t ms[] = {X, W, B, Y, DY, DX, DW, Xb, Wb, Yb, DYb, DXb, DWb};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) if (ms[i]) dnnl_memory_destroy(ms[i]);
    for (int i = 0; i < 8; i++) if (own[i]) dnnl_memory_destroy(own[i]);
    for (int t = 0; t < nthreads; t++) { free(ic.cols[t]); free(ic.partials[t]); }
    free(ic.flipped);
    free(x); free(w); free(bias); free(y); free(yi); free(dy); free(dx); free(dxi); free(dw); free(dwi);
}

int main(int argc, char **argv) {
    int C = 16, P = 32, rounds = 3, fwd_only = 0, only = -1;
    const char *methods = "blk,plain,ro,ifcn";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-C") && i + 1 < argc) C = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-P") && i + 1 < argc) P = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-m") && i + 1 < argc) methods = argv[++i];
        else if (!strcmp(argv[i], "-t") && i + 1 < argc) nthreads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-s") && i + 1 < argc) min_seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "-o") && i + 1 < argc) only = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-f")) fwd_only = 1;
        else if (!strcmp(argv[i], "-k")) skip_checks = 1;
        else { fprintf(stderr, "usage: %s -C channels -P patch [-r rounds] [-f] [-m blk,plain,ro,ifcn] [-t threads] [-s seconds] [-o shape] [-k]\n", argv[0]); return 2; }
    }
    if (C < 1 || P < 16 || (P & (P - 1)) || rounds < 1 || nthreads < 1 || nthreads > 8) {
        fprintf(stderr, "bad arguments: C >= 1, P a power of two >= 16, rounds >= 1, 1 <= threads <= 8\n");
        return 2;
    }
    openblas_set_num_threads(1);
    const dnnl_version_t *v = dnnl_version();
    printf("# oneDNN %d.%d.%d (%s) cpu_runtime=%s omp_max_threads=%d ifcn_threads=%d C=%d P=%d %s methods=%s\n",
           v->major, v->minor, v->patch, v->hash,
           v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : v->cpu_runtime == DNNL_RUNTIME_TBB ? "TBB" : "other",
           omp_get_max_threads(), nthreads, C, P, fwd_only ? "forward-only" : "forward+backward", methods);
    CK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    CK(dnnl_stream_create(&strm, eng, dnnl_stream_default_flags));
    shape_t shapes[32];
    int n = paper_shapes(C, P, shapes);
    for (int i = 0; i < n; i++)
        printf("S %d cin=%d cout=%d extent=%d mult=%d bwd_data=%d %s\n", i, shapes[i].cin, shapes[i].cout, shapes[i].E,
               shapes[i].mult, shapes[i].bwd_data, shapes[i].name);
    for (int r = 0; r < rounds; r++) {
        FILE *f = fopen("/proc/loadavg", "r");
        char load[128] = "?";
        if (f) { if (!fgets(load, sizeof load, f)) strcpy(load, "?\n"); fclose(f); }
        printf("L %d loadavg %s", r, load);
        for (int i = 0; i < n; i++)
            if (only < 0 || only == i) run_shape(r, i, &shapes[i], methods, fwd_only);
    }
    dnnl_stream_destroy(strm);
    dnnl_engine_destroy(eng);
    return 0;
}

// Which oneDNN implementation serves a 3x3x3 backward-weights convolution (16 -> 16 channels at 16^3,
// stride 1, padding 1, f32) for each combination of src / diff_dst layout and diff_weights layout,
// with and without a bias gradient. Shows that Debian's oneDNN 2.6 has no JIT backward-weights kernel for
// 3-D f32 on an AVX2 machine: only x64:gemm:jit (plain layouts) or ref:any.
// Build and run: cc -O2 bwd_weights_impls.c -o /tmp/bwd_weights_impls -ldnnl && /tmp/bwd_weights_impls
#include <stdio.h>
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

int main(void) {
    dnnl_engine_t eng;
    if (dnnl_engine_create(&eng, dnnl_cpu, 0) != dnnl_success) { fprintf(stderr, "no oneDNN CPU engine\n"); return 1; }
    const int E = 16, C = 16;
    dnnl_format_tag_t act[] = {dnnl_nCdhw8c, dnnl_ncdhw, dnnl_ndhwc};
    dnnl_format_tag_t wei[] = {dnnl_OIdhw8i8o, dnnl_OIdhw8o8i, dnnl_Odhwi8o, dnnl_oidhw, dnnl_dhwio, dnnl_format_tag_any};
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 6; b++)
            for (int bias = 0; bias < 2; bias++) {
                dnnl_memory_desc_t x, w, y, bm;
                dnnl_dims_t dx = {1, C, E, E, E}, dw = {C, C, 3, 3, 3}, db = {C}, st = {1, 1, 1}, pad = {1, 1, 1};
                dnnl_memory_desc_init_by_tag(&x, 5, dx, dnnl_f32, act[a]);
                dnnl_memory_desc_init_by_tag(&y, 5, dx, dnnl_f32, act[a]);
                dnnl_memory_desc_init_by_tag(&w, 5, dw, dnnl_f32, wei[b]);
                dnnl_memory_desc_init_by_tag(&bm, 1, db, dnnl_f32, dnnl_a);
                dnnl_convolution_desc_t cd;
                dnnl_convolution_backward_weights_desc_init(&cd, dnnl_convolution_direct, &x, &w, bias ? &bm : NULL, &y,
                                                            st, pad, pad);
                dnnl_primitive_desc_t pd;
                dnnl_status_t r = dnnl_primitive_desc_create(&pd, &cd, NULL, eng, NULL);
                const char *impl = "-";
                if (r == dnnl_success) dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
                printf("src/diff_dst %-8s diff_weights %-10s %s -> %s %s\n", dnnl_fmt_tag2str(act[a]),
                       dnnl_fmt_tag2str(wei[b]), bias ? "+bias" : "     ", dnnl_status2str(r), impl);
                if (r == dnnl_success) dnnl_primitive_desc_destroy(pd);
            }
    dnnl_engine_destroy(eng);
    return 0;
}

// The element-wise, pooling, upsampling and 1x1x1 kernels of two versions of ifcn's kernel source, compiled as host
// C++ with the emulator's built-ins and run on the same random inputs (NaNs, ties, negative values), in float32 and
// bfloat16, at extents that take their vector and element-by-element paths, each with the launch grid its backend
// gives it: every output must agree bit for bit. Built and run by scripts/kernel_ab.sh (old.cu: a commit's source,
// new.cu: the working tree's; their `extern "C"` removed so both fit in one program).
#include "cuda_builtins.h"
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <cstdint>
#include <functional>
ifcn_emulator_dim3 ifcn_emulator_block_index, ifcn_emulator_thread_index, ifcn_emulator_grid_size, ifcn_emulator_block_size;
void ifcn_emulator_syncthreads() { std::abort(); }
void ifcn_emulator_misaligned(const void *p, unsigned b) { std::fprintf(stderr, "misaligned %p %u\n", p, b); std::abort(); }
namespace oldk {
#include "old.cu"
}
namespace newk {
#include "new.cu"
}
static void run(unsigned gx, unsigned gy, const std::function<void()> &k) {
    ifcn_emulator_grid_size = {gx, gy, 1};
    ifcn_emulator_block_size = {256, 1, 1};
    for (unsigned y = 0; y < gy; y++)
        for (unsigned x = 0; x < gx; x++)
            for (unsigned t = 0; t < 256; t++) {
                ifcn_emulator_block_index = {x, y, 0};
                ifcn_emulator_thread_index = {t, 0, 0};
                k();
            }
}
static unsigned long long rs = 88172645463325252ull;
static unsigned rnd() { rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17; return (unsigned)rs; }
static float rval() {
    unsigned r = rnd() % 1000;
    if (r == 0) return NAN;
    if (r < 300) return (float)((int)(rnd() % 5) - 2);  // ties
    return ((int)(rnd() % 200000) - 100000) / 37000.0f;
}
static unsigned short bf(float v) { unsigned b; memcpy(&b, &v, 4); if ((b & 0x7fffffffu) > 0x7f800000u) return (b >> 16) | 0x40u; return (unsigned short)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16); }
template <typename A> struct Buf {
    std::vector<unsigned char> raw; A *p; size_t n;
    Buf(size_t n_) : raw(n_ * sizeof(A) + 64), n(n_) { p = (A *)(((uintptr_t)raw.data() + 63) & ~(uintptr_t)63); }
    void fill() { for (size_t i = 0; i < n; i++) { float v = rval(); if constexpr (sizeof(A) == 2) p[i] = bf(v); else p[i] = v; } }
    void copy(const Buf &o) { memcpy(p, o.p, n * sizeof(A)); }
    bool same(const Buf &o) const { return memcmp(p, o.p, n * sizeof(A)) == 0; }
};
static unsigned blocks(long long n) { long long b = (n + 255) / 256; return (unsigned)(b < 1 ? 1 : (b > 65535 ? 65535 : b)); }
static int failures = 0, checks = 0;
static void expect(bool ok, const char *what, int d, int h, int w, int c, int acc) {
    checks++;
    if (!ok) { failures++; std::printf("DIFF %s d%d h%d w%d c%d acc%d\n", what, d, h, w, c, acc); }
}
template <typename A, int BF>
void test_shape(int c, int d, int h, int w) {
    const int width = 16 / sizeof(A);
    long long V = (long long)d * h * w, N = c * V;
    long long outputs = c * (long long)(d / 2) * (h / 2) * (w / 2);
    Buf<A> x(N), yo(outputs), yn(outputs), g(outputs), dxo(N), dxn(N), big_o(8 * N), big_n(8 * N), gbig(8 * N);
    x.fill(); g.fill(); gbig.fill();
    #define K(name) (BF ? #name "_bf16" : #name)
    // max pool forward
    if (d % 2 == 0 && h % 2 == 0 && w % 2 == 0) {
        run(blocks(outputs), 1, [&] { if constexpr (BF) oldk::ifcn_maxpool2_forward_bf16(x.p, yo.p, outputs, d, h, w); else oldk::ifcn_maxpool2_forward(x.p, yo.p, outputs, d, h, w); });
        unsigned nb = blocks(w % 8 == 0 ? (outputs + 3) / 4 : outputs);
        run(nb, 1, [&] { if constexpr (BF) newk::ifcn_maxpool2_forward_bf16(x.p, yn.p, outputs, d, h, w); else newk::ifcn_maxpool2_forward(x.p, yn.p, outputs, d, h, w); });
        expect(yo.same(yn), K(maxpool_fwd), d, h, w, c, 0);
        for (int acc = 0; acc < 2; acc++) {
            dxo.fill(); dxn.copy(dxo);
            run(blocks(outputs), 1, [&] { if constexpr (BF) oldk::ifcn_maxpool2_backward_bf16(x.p, g.p, dxo.p, outputs, d, h, w, acc); else oldk::ifcn_maxpool2_backward(x.p, g.p, dxo.p, outputs, d, h, w, acc); });
            run(nb, 1, [&] { if constexpr (BF) newk::ifcn_maxpool2_backward_bf16(x.p, g.p, dxn.p, outputs, d, h, w, acc); else newk::ifcn_maxpool2_backward(x.p, g.p, dxn.p, outputs, d, h, w, acc); });
            expect(dxo.same(dxn), K(maxpool_bwd), d, h, w, c, acc);
        }
    }
    // upsample: input x [c][d][h][w] -> [c][2d][2h][2w]
    {
        run(blocks(N), 1, [&] { if constexpr (BF) oldk::ifcn_upsample2_forward_bf16(x.p, big_o.p, N, d, h, w); else oldk::ifcn_upsample2_forward(x.p, big_o.p, N, d, h, w); });
        unsigned nb = blocks(w % 4 == 0 ? (N + 3) / 4 : N);
        run(nb, 1, [&] { if constexpr (BF) newk::ifcn_upsample2_forward_bf16(x.p, big_n.p, N, d, h, w); else newk::ifcn_upsample2_forward(x.p, big_n.p, N, d, h, w); });
        expect(big_o.same(big_n), K(upsample_fwd), d, h, w, c, 0);
        for (int acc = 0; acc < 2; acc++) {
            dxo.fill(); dxn.copy(dxo);
            run(blocks(N), 1, [&] { if constexpr (BF) oldk::ifcn_upsample2_backward_bf16(gbig.p, dxo.p, N, d, h, w, acc); else oldk::ifcn_upsample2_backward(gbig.p, dxo.p, N, d, h, w, acc); });
            run(nb, 1, [&] { if constexpr (BF) newk::ifcn_upsample2_backward_bf16(gbig.p, dxn.p, N, d, h, w, acc); else newk::ifcn_upsample2_backward(gbig.p, dxn.p, N, d, h, w, acc); });
            expect(dxo.same(dxn), K(upsample_bwd), d, h, w, c, acc);
        }
    }
    // element-wise over N
    unsigned vb = blocks((N + width - 1) / width);
    {
        dxo.copy(x); dxn.copy(x);
        run(blocks(N), 1, [&] { if constexpr (BF) oldk::ifcn_relu_forward_bf16(dxo.p, N); else oldk::ifcn_relu_forward(dxo.p, N); });
        run(vb, 1, [&] { if constexpr (BF) newk::ifcn_relu_forward_bf16(dxn.p, N); else newk::ifcn_relu_forward(dxn.p, N); });
        expect(dxo.same(dxn), K(relu_fwd), d, h, w, c, 0);
        Buf<A> go(N), gn(N); go.fill(); gn.copy(go);
        run(blocks(N), 1, [&] { if constexpr (BF) oldk::ifcn_relu_backward_bf16(x.p, go.p, N); else oldk::ifcn_relu_backward(x.p, go.p, N); });
        run(vb, 1, [&] { if constexpr (BF) newk::ifcn_relu_backward_bf16(x.p, gn.p, N); else newk::ifcn_relu_backward(x.p, gn.p, N); });
        expect(go.same(gn), K(relu_bwd), d, h, w, c, 0);
        run(blocks(N), 1, [&] { if constexpr (BF) oldk::ifcn_sigmoid_forward_bf16(x.p, go.p, N); else oldk::ifcn_sigmoid_forward(x.p, go.p, N); });
        run(vb, 1, [&] { if constexpr (BF) newk::ifcn_sigmoid_forward_bf16(x.p, gn.p, N); else newk::ifcn_sigmoid_forward(x.p, gn.p, N); });
        expect(go.same(gn), K(sigmoid), d, h, w, c, 0);
    }
    // conv1: x [c][V] -> y [co][V]; backward data dy [co][V] -> dx [c][V]
    for (int co : {1, 3}) {
        std::vector<float> wt(co * c), bias(co);
        for (auto &v : wt) v = ((int)(rnd() % 2000) - 1000) / 1300.0f;
        for (auto &v : bias) v = ((int)(rnd() % 2000) - 1000) / 900.0f;
        Buf<A> yo2(co * V), yn2(co * V), dy(co * V);
        dy.fill();
        unsigned rb = blocks((V + width - 1) / width);
        for (int hb = 0; hb < 2; hb++) {
            run(blocks(V), co, [&] { if constexpr (BF) oldk::ifcn_conv1_forward_bf16(x.p, wt.data(), bias.data(), yo2.p, c, V, hb); else oldk::ifcn_conv1_forward(x.p, wt.data(), bias.data(), yo2.p, c, V, hb); });
            run(rb, co, [&] { if constexpr (BF) newk::ifcn_conv1_forward_bf16(x.p, wt.data(), bias.data(), yn2.p, c, V, hb); else newk::ifcn_conv1_forward(x.p, wt.data(), bias.data(), yn2.p, c, V, hb); });
            expect(yo2.same(yn2), K(conv1_fwd), d, h, w, c, hb);
        }
        for (int acc = 0; acc < 2; acc++) {
            dxo.fill(); dxn.copy(dxo);
            run(blocks(V), c, [&] { if constexpr (BF) oldk::ifcn_conv1_backward_data_bf16(dy.p, wt.data(), dxo.p, c, co, V, acc); else oldk::ifcn_conv1_backward_data(dy.p, wt.data(), dxo.p, c, co, V, acc); });
            run(rb, c, [&] { if constexpr (BF) newk::ifcn_conv1_backward_data_bf16(dy.p, wt.data(), dxn.p, c, co, V, acc); else newk::ifcn_conv1_backward_data(dy.p, wt.data(), dxn.p, c, co, V, acc); });
            expect(dxo.same(dxn), K(conv1_bwd_data), d, h, w, c, acc);
        }
    }
}
int main() {
    int shapes[][4] = {{3, 2, 4, 6}, {2, 4, 4, 8}, {3, 6, 2, 16}, {2, 8, 10, 12}, {1, 4, 6, 4}, {4, 16, 16, 16}, {2, 2, 2, 2}, {1, 1, 1, 1}, {5, 2, 6, 24}, {2, 32, 8, 32}};
    for (auto &s : shapes) { test_shape<float, 0>(s[0], s[1], s[2], s[3]); test_shape<unsigned short, 1>(s[0], s[1], s[2], s[3]); }
    std::printf("%d checks, %d differ\n", checks, failures);
    return failures != 0;
}

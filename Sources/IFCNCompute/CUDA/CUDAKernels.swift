// The CUDA kernels of the CUDA backend (everything but the 3x3x3 convolutions, which cuDNN runs).
//
// One CUDA C++ translation unit, compiled at run time by NVRTC with
// `--gpu-architecture=sm_XX --std=c++17 -default-device` (no headers: builtins only).
//
// Rules the kernels follow, so that they reproduce CPUBackend:
// - Every reduction over voxels is accumulated in double, deterministically: a partial kernel on a
//   2-D grid (x: a fixed number of blocks per row, each reducing a fixed contiguous range with a
//   fixed 256-thread tree; y: the row, e.g. the channel) writes one partial per block, and a
//   finalize kernel (one 256-thread block per row) sums the partials with a fixed tree. The grid
//   depends only on the tensor sizes, so the same inputs give bit-identical results on every run.
// - Float formulas that the CPU writes as a * b + c use the _rn intrinsics, which NVRTC never
//   contracts into an FMA (the default -fmad=true would otherwise change the rounding).
// - Every kernel assumes blockDim.x == 256 (IFCN_BLOCK).
// (No backslash may appear in the source below: it sits in a plain Swift string literal.)

/// Kernel names: the raw value is the `extern "C" __global__` function in `CUDAKernelSource.text`.
enum CUDAKernel: String, CaseIterable {
    // Element-wise (1-D grid-stride).
    case reluForward = "ifcn_relu_forward"
    case reluBackward = "ifcn_relu_backward"
    case sigmoidForward = "ifcn_sigmoid_forward"
    case scale = "ifcn_scale"
    case fillBFloat16 = "ifcn_fill_bf16"
    // Staged convolution operands: bf16 copies (--gpu-math bf16) and channels-last copies (--gpu-layout ndhwc),
    // results copied back.
    case toBFloat16 = "ifcn_to_bf16"
    case fromBFloat16 = "ifcn_from_bf16"
    case toChannelsLast = "ifcn_to_channels_last"
    case toChannelsLastBFloat16 = "ifcn_to_channels_last_bf16"
    case fromChannelsLast = "ifcn_from_channels_last"
    case fromChannelsLastBFloat16 = "ifcn_from_channels_last_bf16"
    case adamStep = "ifcn_adam_step"
    // Segmentation loss.
    case segLossPartial = "ifcn_seg_loss_partial"
    case segLossFinalize = "ifcn_seg_loss_finalize"
    case completenessLoss = "ifcn_completeness_loss"
    // Overlap counts (training Dice).
    case overlapPartial = "ifcn_overlap_partial"
    case overlapFinalize = "ifcn_overlap_finalize"
    // Generic per-row sums.
    case channelSumPartial = "ifcn_channel_sum_partial"
    case addPartialSums = "ifcn_add_partial_sums"
    case sumSquaresPartial = "ifcn_sum_squares_partial"
    case extractPatch = "ifcn_extract_patch"
    case extractMaskPatch = "ifcn_extract_mask_patch"
    case maskHashPartial = "ifcn_mask_hash_partial"
    case maskHashFinalize = "ifcn_mask_hash_finalize"
    case fragmentSumsPartial = "ifcn_fragment_sums_partial"
    case fragmentSumsFinalize = "ifcn_fragment_sums_finalize"
    case acceptFragment = "ifcn_accept_fragment"
    case sumFinalize = "ifcn_sum_finalize"
    // Batch norm.
    case batchNormStatsPartial = "ifcn_bn_stats_partial"
    case batchNormTrainFinalize = "ifcn_bn_train_finalize"
    case batchNormEvalPrepare = "ifcn_bn_eval_prepare"
    case batchNormApply = "ifcn_bn_apply"
    case batchNormBackwardPartial = "ifcn_bn_backward_partial"
    case batchNormBackwardFinalize = "ifcn_bn_backward_finalize"
    case batchNormBackwardApply = "ifcn_bn_backward_apply"
    // Pooling and upsampling.
    case maxPool2Forward = "ifcn_maxpool2_forward"
    case maxPool2Backward = "ifcn_maxpool2_backward"
    case upsample2Forward = "ifcn_upsample2_forward"
    case upsample2Backward = "ifcn_upsample2_backward"
    // Global max pooling.
    case globalMaxPartial = "ifcn_global_max_partial"
    case globalMaxFinalize = "ifcn_global_max_finalize"
    case globalMaxCountPartial = "ifcn_global_max_count_partial"
    case globalMaxShare = "ifcn_global_max_share"
    case globalMaxBackwardApply = "ifcn_global_max_backward_apply"
    // 1x1x1 convolution and biases.
    case addBias = "ifcn_add_bias"
    case conv1Forward = "ifcn_conv1_forward"
    case conv1BackwardData = "ifcn_conv1_backward_data"
    case conv1WeightPartial = "ifcn_conv1_weight_partial"
}

extension CUDAKernel {
    /// The name of the kernel's instance over bfloat16 activations (`--gpu-activations bf16`), which takes the same
    /// parameters; nil for kernels that touch no activations (parameters, statistics, the scan's volumes) or take
    /// them in one format only.
    var bfloat16Instance: String? {
        switch self {
        case .reluForward, .reluBackward, .sigmoidForward, .fromBFloat16, .toChannelsLastBFloat16, .fromChannelsLastBFloat16,
             .segLossPartial, .completenessLoss, .overlapPartial, .channelSumPartial,
             .batchNormStatsPartial, .batchNormTrainFinalize, .batchNormApply, .batchNormBackwardPartial, .batchNormBackwardApply,
             .maxPool2Forward, .maxPool2Backward, .upsample2Forward, .upsample2Backward,
             .globalMaxPartial, .globalMaxFinalize, .globalMaxCountPartial, .globalMaxShare, .globalMaxBackwardApply,
             .addBias, .conv1Forward, .conv1BackwardData, .conv1WeightPartial,
             .extractPatch, .extractMaskPatch, .fragmentSumsPartial, .acceptFragment:
            return rawValue + "_bf16"
        default:
            return nil
        }
    }

    /// The kinds of the kernel's C parameters, from its definition in `CUDAKernelSource.text`: what a launch passes.
    var parameters: [KernelArg.Kind] {
        guard let kinds = CUDAKernelSource.parameters[self] else {
            fatalError("\(rawValue): no parsable definition in CUDAKernelSource.text")
        }
        return kinds
    }
}

enum CUDAKernelSource {
    /// Threads per block every kernel assumes.
    static let blockSize = 256

    /// Each kernel's parameter kinds, parsed once from `text`.
    static let parameters: [CUDAKernel: [KernelArg.Kind]] = {
        var out: [CUDAKernel: [KernelArg.Kind]] = [:]
        for kernel in CUDAKernel.allCases { out[kernel] = parameterKinds(of: kernel.rawValue) }
        return out
    }()

    /// The parameter kinds of the `extern "C" __global__` function `name` in `text` (nil: none, or a type ifcn does
    /// not pass).
    static func parameterKinds(of name: String) -> [KernelArg.Kind]? {
        guard let start = text.range(of: "extern \"C\" __global__ void \(name)("),
              let end = text[start.upperBound...].firstIndex(of: ")") else { return nil }
        let kinds = text[start.upperBound..<end].split(separator: ",").map { parameterKind(String($0)) }
        return kinds.allSatisfy { $0 != nil } ? kinds.compactMap { $0 } : nil
    }

    /// The kind of one C parameter declaration such as `const float* x` or `long long n` (nil: a type ifcn does not pass).
    static func parameterKind(_ declaration: String) -> KernelArg.Kind? {
        if declaration.contains("*") { return .pointer }
        var words = declaration.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
        words.removeAll { $0 == "const" }
        guard words.count >= 2 else { return nil }
        switch words.dropLast().joined(separator: " ") {
        case "int", "unsigned", "unsigned int": return .int32
        case "long long", "unsigned long long": return .int64
        case "float": return .float
        case "double": return .double
        default: return nil
        }
    }

    static let text: String = """
    // ifcn CUDA kernels (compiled by NVRTC; no includes).
    #define IFCN_BLOCK 256

    // ---------------------------------------------------------------- helpers

    __device__ __forceinline__ float ifcn_neg_inf() { return __int_as_float((int)0xff800000u); }

    // Swift's max(v, 0): `0 >= v ? 0 : v` (NaN stays NaN, -0 becomes +0).
    __device__ __forceinline__ float ifcn_relu(float v) { return 0.0f >= v ? 0.0f : v; }

    __device__ __forceinline__ long long ifcn_global_index() {
        return (long long)blockIdx.x * IFCN_BLOCK + threadIdx.x;
    }

    __device__ __forceinline__ long long ifcn_global_stride() {
        return (long long)gridDim.x * IFCN_BLOCK;
    }

    // Fixed-order tree sum over the block's 256 threads (double, or wrapping unsigned long long); every thread
    // gets the result.
    template <typename T>
    __device__ T ifcn_block_sum(T v, T* sh) {
        const int t = threadIdx.x;
        sh[t] = v;
        __syncthreads();
        for (int s = IFCN_BLOCK / 2; s > 0; s >>= 1) {
            if (t < s) sh[t] = sh[t] + sh[t + s];
            __syncthreads();
        }
        const T r = sh[0];
        __syncthreads();
        return r;
    }

    // Sum of p[i * stride] for i in 0..<parts: each thread a fixed strided subset in order,
    // then the fixed tree.
    __device__ double ifcn_sum_partials(const double* p, int parts, int stride, double* sh) {
        double s = 0.0;
        for (int i = threadIdx.x; i < parts; i += IFCN_BLOCK) s += p[(long long)i * stride];
        return ifcn_block_sum(s, sh);
    }

    // The contiguous range [lo, hi) of `total` items that block `part` of `parts` reduces.
    __device__ __forceinline__ void ifcn_part_range(long long total, int part, int parts,
                                                    long long* lo, long long* hi) {
        *lo = total * part / parts;
        *hi = total * (part + 1) / parts;
    }

    // ---------------------------------------------------------------- element types

    // float32 -> bfloat16 bits, round to nearest, ties to even (BFloat16.round on the CPU); a NaN stays a (quiet) NaN.
    __device__ __forceinline__ unsigned short ifcn_bf16_bits(float v) {
        const unsigned int b = __float_as_uint(v);
        if ((b & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((b >> 16) | 0x40u);
        return (unsigned short)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
    }

    // bfloat16 -> float32 (exact).
    __device__ __forceinline__ float ifcn_bf16_value(unsigned short b) { return __uint_as_float(((unsigned int)b) << 16); }

    // An element of a tensor held in float32 or in bfloat16 (a staged convolution operand; with --gpu-activations
    // bf16 a training network's activations and their gradients): read as float, written rounded to nearest even.
    __device__ __forceinline__ void ifcn_put(float* p, float v) { *p = v; }
    __device__ __forceinline__ void ifcn_put(unsigned short* p, float v) { *p = ifcn_bf16_bits(v); }
    __device__ __forceinline__ float ifcn_get(const float* p) { return *p; }
    __device__ __forceinline__ float ifcn_get(const unsigned short* p) { return ifcn_bf16_value(*p); }

    // Kernels over activations come in two instances: `ifcn_name` on float32 tensors and `ifcn_name_bf16` on
    // bfloat16 ones (--gpu-activations bf16), every activation pointer of the one type, parameters and statistics
    // float32 in both. Each computes in float what the float32 instance computes and rounds what it writes once.

    // 16 bytes of a row per load and store: 4 float32 or 8 bfloat16 elements. Kernels that stream whole
    // activation rows (batch norm, the per-channel sums, the 1x1x1 weight gradient) take them so; one element per
    // thread and load keeps too few bytes in flight for the memory's bandwidth, and half as many with 2-byte
    // elements. A call qualifies when each of its rows is a multiple of the width and every tensor it streams is
    // 16-byte aligned (the arenas align blocks to 64 bytes, and a concatenation's halves lie whole rows apart);
    // otherwise the kernel reads element by element, computing the same values.
    // (uint4: NVRTC's built-in 16-byte vector type. Loads and stores go through __ldcg and __stcg, which NVRTC
    // always emits as one 16-byte access (a plain assignment of the uint4 was split into four 4-byte stores in
    // ifcn_bn_apply_bf16), caching in L2 only, as rows streamed once gain nothing from L1; the CPU emulator checks
    // each one's alignment, as the GPU would fault on a misaligned one.)
    // The 16- or 8-byte access itself, as 4-byte words.
    template <int Bytes> struct ifcn_access;
    template <> struct ifcn_access<16> {
        static __device__ __forceinline__ void load(const void* p, unsigned int* w) {
            const uint4 a = __ldcg((const uint4*)p);
            w[0] = a.x; w[1] = a.y; w[2] = a.z; w[3] = a.w;
        }
        static __device__ __forceinline__ void store(void* p, const unsigned int* w) {
            uint4 a;
            a.x = w[0]; a.y = w[1]; a.z = w[2]; a.w = w[3];
            __stcg((uint4*)p, a);
        }
    };
    template <> struct ifcn_access<8> {
        static __device__ __forceinline__ void load(const void* p, unsigned int* w) {
            const uint2 a = __ldcg((const uint2*)p);
            w[0] = a.x; w[1] = a.y;
        }
        static __device__ __forceinline__ void store(void* p, const unsigned int* w) {
            uint2 a;
            a.x = w[0]; a.y = w[1];
            __stcg((uint2*)p, a);
        }
    };

    // `width` consecutive elements of type A in one access of Bytes bytes: a float32 element per word, or two
    // bfloat16 ones (the first in the low half).
    template <typename A, int Bytes> struct ifcn_chunk {
        static constexpr int width = Bytes / (int)sizeof(A);
        static __device__ __forceinline__ void load(const A* p, float* v) {
            unsigned int w[Bytes / 4];
            ifcn_access<Bytes>::load(p, w);
            for (int k = 0; k < Bytes / 4; k++) {
                if constexpr (sizeof(A) == 4) {
                    v[k] = __uint_as_float(w[k]);
                } else {
                    v[2 * k] = __uint_as_float(w[k] << 16);
                    v[2 * k + 1] = __uint_as_float(w[k] & 0xffff0000u);
                }
            }
        }
        static __device__ __forceinline__ void store(A* p, const float* v) {
            unsigned int w[Bytes / 4];
            for (int k = 0; k < Bytes / 4; k++) {
                if constexpr (sizeof(A) == 4) {
                    w[k] = __float_as_uint(v[k]);
                } else {
                    w[k] = (unsigned int)ifcn_bf16_bits(v[2 * k]) | ((unsigned int)ifcn_bf16_bits(v[2 * k + 1]) << 16);
                }
            }
            ifcn_access<Bytes>::store(p, w);
        }
    };
    // 16 bytes: the rows' vectors. (8 bytes: the end of a run, below.)
    template <typename A> using ifcn_vec = ifcn_chunk<A, 16>;

    template <typename A>
    __device__ __forceinline__ bool ifcn_aligned16(const A* p) { return ((unsigned long long)p & 15ull) == 0; }

    // Whether rows of `voxels` elements starting at p (and at each further row) can be streamed 16 bytes at a time.
    template <typename A>
    __device__ __forceinline__ bool ifcn_rows_vectorised(const A* p, long long voxels) {
        return voxels % ifcn_vec<A>::width == 0 && ifcn_aligned16(p);
    }

    // A group of N consecutive elements of a row: N = 1 (element by element) or the vector width (16 bytes).
    template <int N> struct ifcn_group { static constexpr int n = N; };

    template <int N, typename A>
    __device__ __forceinline__ void ifcn_load_group(const A* p, float* v) {
        if constexpr (N == 1) v[0] = ifcn_get(p); else ifcn_vec<A>::load(p, v);
    }
    template <int N, typename A>
    __device__ __forceinline__ void ifcn_store_group(A* p, const float* v) {
        if constexpr (N == 1) ifcn_put(p, v[0]); else ifcn_vec<A>::store(p, v);
    }

    // The two ways a kernel walks a row of `voxels` elements of type A, in groups of the vector width where
    // `vectorised`, else of one element; body(ifcn_group<N>(), i) gets each group's first element i.
    // ifcn_row_part: block blockIdx.x's contiguous part (of `parts`), each thread's groups in order (reductions).
    // Two groups per iteration while both are in the part, in the same order as one at a time (the sums stay the
    // same): the second group's loads can then be in flight with the first's, as one load per thread at a time
    // left a reduction short of the memory's bandwidth.
    template <int N, typename F>
    __device__ __forceinline__ void ifcn_row_part_in(long long voxels, int parts, F body) {
        long long lo, hi;
        ifcn_part_range(voxels / N, blockIdx.x, parts, &lo, &hi);
        long long i = lo + threadIdx.x;
        for (; i + IFCN_BLOCK < hi; i += 2 * IFCN_BLOCK) {
            body(ifcn_group<N>(), i * N);
            body(ifcn_group<N>(), (i + IFCN_BLOCK) * N);
        }
        if (i < hi) body(ifcn_group<N>(), i * N);
    }
    template <typename A, typename F>
    __device__ __forceinline__ void ifcn_row_part(bool vectorised, long long voxels, int parts, F body) {
        if (vectorised) ifcn_row_part_in<ifcn_vec<A>::width>(voxels, parts, body);
        else ifcn_row_part_in<1>(voxels, parts, body);
    }
    // ifcn_row_strided: the whole row over the grid's x blocks (element-wise kernels).
    template <int N, typename F>
    __device__ __forceinline__ void ifcn_row_strided_in(long long voxels, F body) {
        for (long long i = ifcn_global_index(); i < voxels / N; i += ifcn_global_stride()) body(ifcn_group<N>(), i * N);
    }
    template <typename A, typename F>
    __device__ __forceinline__ void ifcn_row_strided(bool vectorised, long long voxels, F body) {
        if (vectorised) ifcn_row_strided_in<ifcn_vec<A>::width>(voxels, body);
        else ifcn_row_strided_in<1>(voxels, body);
    }

    // A run of N consecutive elements (N a multiple of 8 bytes' worth), loaded and stored 16 bytes at a time and an
    // 8-byte access for a remaining half (4 bfloat16 elements: a pooled row of four): the pooling and upsampling
    // kernels move several outputs per thread so. p: aligned to the run's first 16 or 8 bytes.
    template <typename A> using ifcn_half_vec = ifcn_chunk<A, 8>;

    template <int N, typename A>
    __device__ __forceinline__ void ifcn_load_run(const A* p, float* v) {
        constexpr int W = ifcn_vec<A>::width, H = ifcn_half_vec<A>::width;
        static_assert(N % H == 0, "a run is a whole number of 8-byte words");
        for (int k = 0; k + W <= N; k += W) ifcn_vec<A>::load(p + k, v + k);
        if constexpr (N % W != 0) ifcn_half_vec<A>::load(p + N / W * W, v + N / W * W);
    }
    template <int N, typename A>
    __device__ __forceinline__ void ifcn_store_run(A* p, const float* v) {
        constexpr int W = ifcn_vec<A>::width, H = ifcn_half_vec<A>::width;
        static_assert(N % H == 0, "a run is a whole number of 8-byte words");
        for (int k = 0; k + W <= N; k += W) ifcn_vec<A>::store(p + k, v + k);
        if constexpr (N % W != 0) ifcn_half_vec<A>::store(p + N / W * W, v + N / W * W);
    }

    // ---------------------------------------------------------------- element-wise

    // The element-wise kernels take the tensor as one row, 16 bytes at a time where it is aligned and a whole
    // number of vectors long.
    template <typename A>
    __device__ void ifcn_relu_forward_t(A* x, long long n) {
        ifcn_row_strided<A>(ifcn_rows_vectorised(x, n), n, [&](auto g, long long i) {
            constexpr int N = decltype(g)::n;
            float v[N];
            ifcn_load_group<N>(x + i, v);
            for (int e = 0; e < N; e++) v[e] = ifcn_relu(v[e]);
            ifcn_store_group<N>(x + i, v);
        });
    }
    extern "C" __global__ void ifcn_relu_forward(float* x, long long n) { ifcn_relu_forward_t(x, n); }
    extern "C" __global__ void ifcn_relu_forward_bf16(unsigned short* x, long long n) { ifcn_relu_forward_t(x, n); }

    template <typename A>
    __device__ void ifcn_relu_backward_t(const A* y, A* g, long long n) {
        ifcn_row_strided<A>(ifcn_rows_vectorised(y, n) && ifcn_aligned16(g), n, [&](auto group, long long i) {
            constexpr int N = decltype(group)::n;
            float yv[N], gv[N];
            ifcn_load_group<N>(y + i, yv);
            ifcn_load_group<N>(g + i, gv);
            for (int e = 0; e < N; e++) {
                if (!(yv[e] > 0.0f)) gv[e] = 0.0f;
            }
            ifcn_store_group<N>(g + i, gv);
        });
    }
    extern "C" __global__ void ifcn_relu_backward(const float* y, float* g, long long n) { ifcn_relu_backward_t(y, g, n); }
    extern "C" __global__ void ifcn_relu_backward_bf16(const unsigned short* y, unsigned short* g, long long n) {
        ifcn_relu_backward_t(y, g, n);
    }

    template <typename A>
    __device__ void ifcn_sigmoid_forward_t(const A* x, A* y, long long n) {
        ifcn_row_strided<A>(ifcn_rows_vectorised(x, n) && ifcn_aligned16(y), n, [&](auto g, long long i) {
            constexpr int N = decltype(g)::n;
            float v[N];
            ifcn_load_group<N>(x + i, v);
            for (int e = 0; e < N; e++) v[e] = __fdiv_rn(1.0f, __fadd_rn(1.0f, expf(-v[e])));
            ifcn_store_group<N>(y + i, v);
        });
    }
    extern "C" __global__ void ifcn_sigmoid_forward(const float* x, float* y, long long n) { ifcn_sigmoid_forward_t(x, y, n); }
    extern "C" __global__ void ifcn_sigmoid_forward_bf16(const unsigned short* x, unsigned short* y, long long n) {
        ifcn_sigmoid_forward_t(x, y, n);
    }

    // x = value, a bfloat16 activation tensor (a float32 one is filled by cuMemsetD32).
    extern "C" __global__ void ifcn_fill_bf16(unsigned short* x, float value, long long n) {
        const unsigned short b = ifcn_bf16_bits(value);
        for (long long i = ifcn_global_index(); i < n; i += ifcn_global_stride()) x[i] = b;
    }

    extern "C" __global__ void ifcn_scale(float* x, float factor, long long n) {
        for (long long i = ifcn_global_index(); i < n; i += ifcn_global_stride()) x[i] = __fmul_rn(x[i], factor);
    }

    extern "C" __global__ void ifcn_to_bf16(const float* x, unsigned short* y, long long n) {
        for (long long i = ifcn_global_index(); i < n; i += ifcn_global_stride()) y[i] = ifcn_bf16_bits(x[i]);
    }

    // accumulate != 0 adds to y (a bfloat16 y holds the sum rounded, as PyTorch adds two bfloat16 gradients).
    template <typename D>
    __device__ void ifcn_from_bf16_t(const unsigned short* x, D* y, int accumulate, long long n) {
        for (long long i = ifcn_global_index(); i < n; i += ifcn_global_stride()) {
            const float v = ifcn_bf16_value(x[i]);
            ifcn_put(y + i, accumulate ? __fadd_rn(ifcn_get(y + i), v) : v);
        }
    }
    extern "C" __global__ void ifcn_from_bf16(const unsigned short* x, float* y, int accumulate, long long n) {
        ifcn_from_bf16_t(x, y, accumulate, n);
    }
    extern "C" __global__ void ifcn_from_bf16_bf16(const unsigned short* x, unsigned short* y, int accumulate, long long n) {
        ifcn_from_bf16_t(x, y, accumulate, n);
    }

    // Channels-last staging of a convolution operand: [batches][channels][voxels] (ifcn's layout) to
    // [batches][voxels][stride] (cuDNN's NDHWC; a filter [cout][cin][27] is batches = cout, voxels = 27), with
    // channels channels..stride-1 zero (where stride > channels: an input padded to more channels; the backend stages
    // unpadded, stride = channels, since the H200 ran the 2-channel input faster so). Two 32x32 tiles, side by side
    // along the voxels, go through shared memory so that reads and writes are both coalesced; each thread has all 8 of
    // its reads in flight before it writes (4 left 2-byte bfloat16 reads too few bytes in flight to cover the memory's
    // latency). Grid: x = tiles of 64 voxels times batches, y = tiles of 32 channels of `stride`; 256 threads as 8
    // rows of 32.
    struct ifcn_tile {
        long long b, v0;  // batch, first voxel
        int c0, tx, ty;   // first channel; the thread's column and first row
    };

    __device__ __forceinline__ ifcn_tile ifcn_tile_of_block(long long voxels) {
        const long long voxelTiles = (voxels + 63) >> 6;
        ifcn_tile t;
        t.b = blockIdx.x / voxelTiles;
        t.v0 = (blockIdx.x % voxelTiles) * 64;
        t.c0 = blockIdx.y * 32;
        t.tx = threadIdx.x & 31;
        t.ty = threadIdx.x >> 5;
        return t;
    }

    template <typename S, typename T>
    __device__ void ifcn_to_channels_last_tile(const S* x, T* y, int channels, int stride, long long voxels) {
        __shared__ float tile[2][32][33];
        const ifcn_tile t = ifcn_tile_of_block(voxels);
        for (int k = 0; k < 2; k++) {
            for (int r = t.ty; r < 32; r += 8) {
                const int c = t.c0 + r;
                const long long v = t.v0 + 32 * k + t.tx;
                tile[k][r][t.tx] = c < channels && v < voxels ? ifcn_get(x + (t.b * channels + c) * voxels + v) : 0.0f;
            }
        }
        __syncthreads();
        for (int k = 0; k < 2; k++) {
            for (int r = t.ty; r < 32; r += 8) {
                const long long v = t.v0 + 32 * k + r;
                const int c = t.c0 + t.tx;
                if (v < voxels && c < stride) ifcn_put(y + (t.b * voxels + v) * stride + c, tile[k][t.tx][r]);
            }
        }
    }

    // The way back: [batches][voxels][stride] to [batches][channels][voxels] (channels..stride-1 dropped),
    // added to y when accumulate != 0. Grid: x = tiles of 64 voxels times batches, y = tiles of 32 channels.
    template <typename T, typename D>
    __device__ void ifcn_from_channels_last_tile(const T* x, D* y, int channels, int stride, long long voxels,
                                                 int accumulate) {
        __shared__ float tile[2][32][33];
        const ifcn_tile t = ifcn_tile_of_block(voxels);
        for (int k = 0; k < 2; k++) {
            for (int r = t.ty; r < 32; r += 8) {
                const long long v = t.v0 + 32 * k + r;
                const int c = t.c0 + t.tx;
                tile[k][r][t.tx] = v < voxels && c < channels ? ifcn_get(x + (t.b * voxels + v) * stride + c) : 0.0f;
            }
        }
        __syncthreads();
        for (int k = 0; k < 2; k++) {
            for (int r = t.ty; r < 32; r += 8) {
                const int c = t.c0 + r;
                const long long v = t.v0 + 32 * k + t.tx;
                if (c < channels && v < voxels) {
                    D* p = y + (t.b * channels + c) * voxels + v;
                    ifcn_put(p, accumulate ? __fadd_rn(ifcn_get(p), tile[k][t.tx][r]) : tile[k][t.tx][r]);
                }
            }
        }
    }

    extern "C" __global__ void ifcn_to_channels_last(const float* x, float* y, int channels, int stride, long long voxels) {
        ifcn_to_channels_last_tile(x, y, channels, stride, voxels);
    }

    extern "C" __global__ void ifcn_to_channels_last_bf16(const float* x, unsigned short* y, int channels, int stride,
                                                          long long voxels) {
        ifcn_to_channels_last_tile(x, y, channels, stride, voxels);
    }

    // Their instances for bfloat16 activations: bfloat16 on both sides.
    extern "C" __global__ void ifcn_to_channels_last_bf16_bf16(const unsigned short* x, unsigned short* y, int channels,
                                                               int stride, long long voxels) {
        ifcn_to_channels_last_tile(x, y, channels, stride, voxels);
    }

    extern "C" __global__ void ifcn_from_channels_last(const float* x, float* y, int channels, int stride, long long voxels,
                                                       int accumulate) {
        ifcn_from_channels_last_tile(x, y, channels, stride, voxels, accumulate);
    }

    extern "C" __global__ void ifcn_from_channels_last_bf16(const unsigned short* x, float* y, int channels, int stride,
                                                            long long voxels, int accumulate) {
        ifcn_from_channels_last_tile(x, y, channels, stride, voxels, accumulate);
    }

    extern "C" __global__ void ifcn_from_channels_last_bf16_bf16(const unsigned short* x, unsigned short* y, int channels,
                                                                 int stride, long long voxels, int accumulate) {
        ifcn_from_channels_last_tile(x, y, channels, stride, voxels, accumulate);
    }

    // PyTorch Adam (no weight decay) exactly as CPUBackend.adamStep; stepSize = lr / bc1 and
    // bc2Sqrt = sqrt(bc2) are computed on the host in double and rounded to float.
    extern "C" __global__ void ifcn_adam_step(float* p, const float* g, float* m, float* v,
                                              float stepSize, float beta1, float beta2, float bc2Sqrt,
                                              float epsilon, long long n) {
        const float oneMinusBeta1 = __fsub_rn(1.0f, beta1);
        const float oneMinusBeta2 = __fsub_rn(1.0f, beta2);
        for (long long i = ifcn_global_index(); i < n; i += ifcn_global_stride()) {
            const float gi = g[i];
            const float mi = __fadd_rn(m[i], __fmul_rn(__fsub_rn(gi, m[i]), oneMinusBeta1));
            const float vi = __fadd_rn(__fmul_rn(v[i], beta2), __fmul_rn(__fmul_rn(oneMinusBeta2, gi), gi));
            m[i] = mi;
            v[i] = vi;
            const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bc2Sqrt), epsilon);
            p[i] = __fsub_rn(p[i], __fmul_rn(stepSize, __fdiv_rn(mi, denom)));
        }
    }

    // ---------------------------------------------------------------- segmentation loss

    // Grid: parts blocks. Writes the gradient of the logits and, per block, the partial sums
    // fp = sum w (1-t) s and fn = sum w t (1-s) (each term rounded to float as on the CPU, summed
    // in double) to partial[2 b], partial[2 b + 1].
    template <typename A>
    __device__ void ifcn_seg_loss_partial_t(const A* prob, const float* target, const float* weight, float lambda,
                                            A* gradLogit, double* partial, long long n, int parts) {
        __shared__ double sh[IFCN_BLOCK];
        long long lo, hi;
        ifcn_part_range(n, blockIdx.x, parts, &lo, &hi);
        double a = 0.0, b = 0.0;
        for (long long i = lo + threadIdx.x; i < hi; i += IFCN_BLOCK) {
            const float si = ifcn_get(prob + i), ti = target[i], wi = weight[i];
            const float oneMinusT = __fsub_rn(1.0f, ti), oneMinusS = __fsub_rn(1.0f, si);
            a += (double)__fmul_rn(__fmul_rn(wi, oneMinusT), si);
            b += (double)__fmul_rn(__fmul_rn(wi, ti), oneMinusS);
            const float coefficient = __fsub_rn(__fmul_rn(lambda, oneMinusT), ti);
            ifcn_put(gradLogit + i, __fmul_rn(__fmul_rn(__fmul_rn(wi, coefficient), si), oneMinusS));
        }
        a = ifcn_block_sum(a, sh);
        b = ifcn_block_sum(b, sh);
        if (threadIdx.x == 0) {
            partial[2 * (long long)blockIdx.x] = a;
            partial[2 * (long long)blockIdx.x + 1] = b;
        }
    }
    extern "C" __global__ void ifcn_seg_loss_partial(const float* prob, const float* target, const float* weight,
                                                     float lambda, float* gradLogit, double* partial,
                                                     long long n, int parts) {
        ifcn_seg_loss_partial_t(prob, target, weight, lambda, gradLogit, partial, n, parts);
    }
    extern "C" __global__ void ifcn_seg_loss_partial_bf16(const unsigned short* prob, const float* target,
                                                          const float* weight, float lambda, unsigned short* gradLogit,
                                                          double* partial, long long n, int parts) {
        ifcn_seg_loss_partial_t(prob, target, weight, lambda, gradLogit, partial, n, parts);
    }

    // Grid: 1 block. out[0] = lambda * fp, out[1] = fn.
    extern "C" __global__ void ifcn_seg_loss_finalize(const double* partial, double* out, float lambda, int parts) {
        __shared__ double sh[IFCN_BLOCK];
        const double fp = ifcn_sum_partials(partial, parts, 2, sh);
        const double fn = ifcn_sum_partials(partial + 1, parts, 2, sh);
        if (threadIdx.x == 0) {
            out[0] = (double)lambda * fp;
            out[1] = fn;
        }
    }

    // Grid: 1 block (thread 0 works). The completeness head, as TrainingScalars.completenessTerms computes it on
    // the host: out[0] = c = sigmoid(logit) in double, out[1] = its binary cross-entropy against label (each log
    // clamped at -100 the way Swift's max(x, -100) does, so a NaN stays NaN), gradLogit[0] = float(c - label).
    template <typename A>
    __device__ void ifcn_completeness_loss_t(const A* logit, float label, A* gradLogit, double* out) {
        if (threadIdx.x != 0) return;
        const double c = 1.0 / (1.0 + exp(-(double)ifcn_get(logit)));
        const double y = (double)label;
        double logC = log(c), logNotC = log(1.0 - c);
        logC = (-100.0 >= logC) ? -100.0 : logC;
        logNotC = (-100.0 >= logNotC) ? -100.0 : logNotC;
        out[0] = c;
        out[1] = -(y * logC + (1.0 - y) * logNotC);
        ifcn_put(gradLogit, (float)(c - y));
    }
    extern "C" __global__ void ifcn_completeness_loss(const float* logit, float label, float* gradLogit, double* out) {
        ifcn_completeness_loss_t(logit, label, gradLogit, out);
    }
    extern "C" __global__ void ifcn_completeness_loss_bf16(const unsigned short* logit, float label,
                                                           unsigned short* gradLogit, double* out) {
        ifcn_completeness_loss_t(logit, label, gradLogit, out);
    }

    // ---------------------------------------------------------------- overlap counts

    // Fixed tree sums of three counters over the block's 256 threads; sh holds 3 * IFCN_BLOCK.
    // Every thread gets the totals in v[0..<3].
    __device__ void ifcn_block_count3(unsigned long long* v, unsigned long long* sh) {
        const int t = threadIdx.x;
        for (int k = 0; k < 3; k++) sh[k * IFCN_BLOCK + t] = v[k];
        __syncthreads();
        for (int s = IFCN_BLOCK / 2; s > 0; s >>= 1) {
            if (t < s) {
                for (int k = 0; k < 3; k++) sh[k * IFCN_BLOCK + t] += sh[k * IFCN_BLOCK + t + s];
            }
            __syncthreads();
        }
        for (int k = 0; k < 3; k++) v[k] = sh[k * IFCN_BLOCK];
        __syncthreads();
    }

    // Grid: parts blocks. partial[3 * b + k] for block b's range: k = 0 counts prob > 0.5 (NaN does
    // not count), k = 1 target > 0.5, k = 2 both.
    template <typename A>
    __device__ void ifcn_overlap_partial_t(const A* prob, const float* target, unsigned long long* partial,
                                           long long n, int parts) {
        __shared__ unsigned long long sh[3 * IFCN_BLOCK];
        long long lo, hi;
        ifcn_part_range(n, blockIdx.x, parts, &lo, &hi);
        unsigned long long v[3] = {0ull, 0ull, 0ull};
        for (long long i = lo + threadIdx.x; i < hi; i += IFCN_BLOCK) {
            const bool s = ifcn_get(prob + i) > 0.5f, t = target[i] > 0.5f;
            v[0] += s ? 1ull : 0ull;
            v[1] += t ? 1ull : 0ull;
            v[2] += (s && t) ? 1ull : 0ull;
        }
        ifcn_block_count3(v, sh);
        if (threadIdx.x == 0) {
            for (int k = 0; k < 3; k++) partial[3 * (long long)blockIdx.x + k] = v[k];
        }
    }
    extern "C" __global__ void ifcn_overlap_partial(const float* prob, const float* target,
                                                    unsigned long long* partial, long long n, int parts) {
        ifcn_overlap_partial_t(prob, target, partial, n, parts);
    }
    extern "C" __global__ void ifcn_overlap_partial_bf16(const unsigned short* prob, const float* target,
                                                         unsigned long long* partial, long long n, int parts) {
        ifcn_overlap_partial_t(prob, target, partial, n, parts);
    }

    // Grid: 1 block. out[k] = sum over blocks of partial[3 * b + k], as double (exact below 2^53).
    extern "C" __global__ void ifcn_overlap_finalize(const unsigned long long* partial, double* out, int parts) {
        __shared__ unsigned long long sh[3 * IFCN_BLOCK];
        unsigned long long v[3] = {0ull, 0ull, 0ull};
        for (int i = threadIdx.x; i < parts; i += IFCN_BLOCK) {
            for (int k = 0; k < 3; k++) v[k] += partial[3 * (long long)i + k];
        }
        ifcn_block_count3(v, sh);
        if (threadIdx.x == 0) {
            for (int k = 0; k < 3; k++) out[k] = (double)v[k];
        }
    }

    // ---------------------------------------------------------------- per-row sums

    // Grid: (parts, rows). partial[row * parts + b] = sum of x[row, lo..<hi] in double (lo, hi: multiples of the
    // vector width where the row is streamed 16 bytes at a time).
    template <typename A>
    __device__ void ifcn_channel_sum_partial_t(const A* x, double* partial, long long voxels, int parts) {
        __shared__ double sh[IFCN_BLOCK];
        const A* xc = x + (long long)blockIdx.y * voxels;
        double s = 0.0;
        ifcn_row_part<A>(ifcn_rows_vectorised(x, voxels), voxels, parts, [&](auto g, long long i) {
            constexpr int N = decltype(g)::n;
            float v[N];
            ifcn_load_group<N>(xc + i, v);
            for (int k = 0; k < N; k++) s += (double)v[k];
        });
        s = ifcn_block_sum(s, sh);
        if (threadIdx.x == 0) partial[(long long)blockIdx.y * parts + blockIdx.x] = s;
    }
    extern "C" __global__ void ifcn_channel_sum_partial(const float* x, double* partial, long long voxels, int parts) {
        ifcn_channel_sum_partial_t(x, partial, voxels, parts);
    }
    extern "C" __global__ void ifcn_channel_sum_partial_bf16(const unsigned short* x, double* partial, long long voxels,
                                                             int parts) {
        ifcn_channel_sum_partial_t(x, partial, voxels, parts);
    }

    // Grid: rows. dst[row] += float(sum of partial[row * parts ..< (row + 1) * parts]).
    extern "C" __global__ void ifcn_add_partial_sums(const double* partial, float* dst, int parts) {
        __shared__ double sh[IFCN_BLOCK];
        const int row = blockIdx.x;
        const double s = ifcn_sum_partials(partial + (long long)row * parts, parts, 1, sh);
        if (threadIdx.x == 0) dst[row] = __fadd_rn(dst[row], (float)s);
    }

    // Grid: parts blocks. partial[b] = sum of x[i]^2 over block b's range, in double.
    extern "C" __global__ void ifcn_sum_squares_partial(const float* x, double* partial, long long n, int parts) {
        __shared__ double sh[IFCN_BLOCK];
        long long lo, hi;
        ifcn_part_range(n, blockIdx.x, parts, &lo, &hi);
        double s = 0.0;
        for (long long i = lo + threadIdx.x; i < hi; i += IFCN_BLOCK) {
            const double v = (double)x[i];
            s += v * v;
        }
        s = ifcn_block_sum(s, sh);
        if (threadIdx.x == 0) partial[blockIdx.x] = s;
    }

    // Grid: 1 block. out[0] = sum of partial[0..<parts].
    extern "C" __global__ void ifcn_sum_finalize(const double* partial, double* out, int parts) {
        __shared__ double sh[IFCN_BLOCK];
        const double s = ifcn_sum_partials(partial, parts, 1, sh);
        if (threadIdx.x == 0) out[0] = s;
    }

    // ---------------------------------------------------------------- whole-scan volumes (segmentation)

    // The scan index of patch element i of the box at (ox, oy, oz) of side p, or -1 outside the scan.
    __device__ __forceinline__ long long ifcn_box_index(long long i, int p, int nx, int ny, int nz,
                                                        int ox, int oy, int oz) {
        const long long pp = (long long)p * p;
        const int x = ox + (int)(i % p), y = oy + (int)((i / p) % p), z = oz + (int)(i / pp);
        if (x < 0 || x >= nx || y < 0 || y >= ny || z < 0 || z >= nz) return -1;
        return x + (long long)nx * (y + (long long)ny * z);
    }

    // The patches and probabilities below are a network's activations (in bfloat16 in a training network's arena
    // with --gpu-activations bf16, which validation segments with); the scan, the mask and the labels are not.

    // patch[i] = volume at the box's element i, fill outside the scan.
    template <typename A>
    __device__ void ifcn_extract_patch_t(const float* volume, A* patch, int p, int nx, int ny, int nz, int ox, int oy,
                                         int oz, float fill) {
        const long long n = (long long)p * p * p;
        for (long long i = ifcn_global_index(); i < n; i += ifcn_global_stride()) {
            const long long v = ifcn_box_index(i, p, nx, ny, nz, ox, oy, oz);
            ifcn_put(patch + i, v < 0 ? fill : volume[v]);
        }
    }
    extern "C" __global__ void ifcn_extract_patch(const float* volume, float* patch, int p, int nx, int ny, int nz,
                                                  int ox, int oy, int oz, float fill) {
        ifcn_extract_patch_t(volume, patch, p, nx, ny, nz, ox, oy, oz, fill);
    }
    extern "C" __global__ void ifcn_extract_patch_bf16(const float* volume, unsigned short* patch, int p, int nx, int ny,
                                                       int nz, int ox, int oy, int oz, float fill) {
        ifcn_extract_patch_t(volume, patch, p, nx, ny, nz, ox, oy, oz, fill);
    }

    // patch[i] = 1 where the mask byte at the box's element i is set, else 0 (also outside the scan).
    template <typename A>
    __device__ void ifcn_extract_mask_patch_t(const unsigned char* mask, A* patch, int p, int nx, int ny, int nz, int ox,
                                              int oy, int oz) {
        const long long n = (long long)p * p * p;
        for (long long i = ifcn_global_index(); i < n; i += ifcn_global_stride()) {
            const long long v = ifcn_box_index(i, p, nx, ny, nz, ox, oy, oz);
            ifcn_put(patch + i, (v >= 0 && mask[v] != 0) ? 1.0f : 0.0f);
        }
    }
    extern "C" __global__ void ifcn_extract_mask_patch(const unsigned char* mask, float* patch, int p, int nx, int ny,
                                                       int nz, int ox, int oy, int oz) {
        ifcn_extract_mask_patch_t(mask, patch, p, nx, ny, nz, ox, oy, oz);
    }
    extern "C" __global__ void ifcn_extract_mask_patch_bf16(const unsigned char* mask, unsigned short* patch, int p, int nx,
                                                            int ny, int nz, int ox, int oy, int oz) {
        ifcn_extract_mask_patch_t(mask, patch, p, nx, ny, nz, ox, oy, oz);
    }

    // The splitmix64 finaliser (IFCNSupport's mix64).
    __device__ __forceinline__ unsigned long long ifcn_mix64(unsigned long long z) {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }

    // Grid: parts blocks over the box's elements. partial[b] = wrapping sum of mix64(i ^ golden) over the
    // box elements i of block b's range whose mask byte is set.
    extern "C" __global__ void ifcn_mask_hash_partial(const unsigned char* mask, unsigned long long* partial, int p, int nx,
                                                      int ny, int nz, int ox, int oy, int oz, int parts) {
        __shared__ unsigned long long sh[IFCN_BLOCK];
        long long lo, hi;
        ifcn_part_range((long long)p * p * p, blockIdx.x, parts, &lo, &hi);
        unsigned long long h = 0ull;
        for (long long i = lo + threadIdx.x; i < hi; i += IFCN_BLOCK) {
            const long long v = ifcn_box_index(i, p, nx, ny, nz, ox, oy, oz);
            if (v >= 0 && mask[v] != 0) h += ifcn_mix64((unsigned long long)i ^ 0x9E3779B97F4A7C15ull);
        }
        h = ifcn_block_sum(h, sh);
        if (threadIdx.x == 0) partial[blockIdx.x] = h;
    }

    // Grid: 1 block. out[0] = wrapping sum of partial[0..<parts].
    extern "C" __global__ void ifcn_mask_hash_finalize(const unsigned long long* partial, unsigned long long* out, int parts) {
        __shared__ unsigned long long sh[IFCN_BLOCK];
        unsigned long long h = 0ull;
        for (int i = threadIdx.x; i < parts; i += IFCN_BLOCK) h += partial[i];
        h = ifcn_block_sum(h, sh);
        if (threadIdx.x == 0) out[0] = h;
    }

    // Grid: parts blocks over the box's elements. partial[4 b + k]: over block b's range, the voxels inside the
    // scan with prob > 0.5 (and label 0 when labels is not null): k = 0 their number, 1..3 the sums of x, y, z
    // (integers, exact in double).
    template <typename A>
    __device__ void ifcn_fragment_sums_partial_t(const A* prob, const int* labels, double* partial, int p, int nx, int ny,
                                                 int nz, int ox, int oy, int oz, int parts) {
        __shared__ double sh[IFCN_BLOCK];
        long long lo, hi;
        ifcn_part_range((long long)p * p * p, blockIdx.x, parts, &lo, &hi);
        double c = 0.0, sx = 0.0, sy = 0.0, sz = 0.0;
        const long long pp = (long long)p * p;
        for (long long i = lo + threadIdx.x; i < hi; i += IFCN_BLOCK) {
            const long long v = ifcn_box_index(i, p, nx, ny, nz, ox, oy, oz);
            if (v < 0 || !(ifcn_get(prob + i) > 0.5f) || (labels != 0 && labels[v] != 0)) continue;
            c += 1.0;
            sx += (double)(ox + (int)(i % p));
            sy += (double)(oy + (int)((i / p) % p));
            sz += (double)(oz + (int)(i / pp));
        }
        c = ifcn_block_sum(c, sh);
        sx = ifcn_block_sum(sx, sh);
        sy = ifcn_block_sum(sy, sh);
        sz = ifcn_block_sum(sz, sh);
        if (threadIdx.x == 0) {
            partial[4 * (long long)blockIdx.x] = c;
            partial[4 * (long long)blockIdx.x + 1] = sx;
            partial[4 * (long long)blockIdx.x + 2] = sy;
            partial[4 * (long long)blockIdx.x + 3] = sz;
        }
    }
    extern "C" __global__ void ifcn_fragment_sums_partial(const float* prob, const int* labels, double* partial, int p,
                                                          int nx, int ny, int nz, int ox, int oy, int oz, int parts) {
        ifcn_fragment_sums_partial_t(prob, labels, partial, p, nx, ny, nz, ox, oy, oz, parts);
    }
    extern "C" __global__ void ifcn_fragment_sums_partial_bf16(const unsigned short* prob, const int* labels, double* partial,
                                                               int p, int nx, int ny, int nz, int ox, int oy, int oz,
                                                               int parts) {
        ifcn_fragment_sums_partial_t(prob, labels, partial, p, nx, ny, nz, ox, oy, oz, parts);
    }

    // Grid: 1 block. out[k] = sum over blocks of partial[4 b + k].
    extern "C" __global__ void ifcn_fragment_sums_finalize(const double* partial, double* out, int parts) {
        __shared__ double sh[IFCN_BLOCK];
        for (int k = 0; k < 4; k++) {
            const double s = ifcn_sum_partials(partial + k, parts, 4, sh);
            if (threadIdx.x == 0) out[k] = s;
        }
    }

    // For the box elements inside the scan with prob > 0.5: mask = 1, and label where it is 0.
    template <typename A>
    __device__ void ifcn_accept_fragment_t(const A* prob, unsigned char* mask, int* labels, int label, int p, int nx,
                                           int ny, int nz, int ox, int oy, int oz) {
        const long long n = (long long)p * p * p;
        for (long long i = ifcn_global_index(); i < n; i += ifcn_global_stride()) {
            const long long v = ifcn_box_index(i, p, nx, ny, nz, ox, oy, oz);
            if (v < 0 || !(ifcn_get(prob + i) > 0.5f)) continue;
            mask[v] = 1;
            if (labels[v] == 0) labels[v] = label;
        }
    }
    extern "C" __global__ void ifcn_accept_fragment(const float* prob, unsigned char* mask, int* labels, int label, int p,
                                                    int nx, int ny, int nz, int ox, int oy, int oz) {
        ifcn_accept_fragment_t(prob, mask, labels, label, p, nx, ny, nz, ox, oy, oz);
    }
    extern "C" __global__ void ifcn_accept_fragment_bf16(const unsigned short* prob, unsigned char* mask, int* labels,
                                                         int label, int p, int nx, int ny, int nz, int ox, int oy,
                                                         int oz) {
        ifcn_accept_fragment_t(prob, mask, labels, label, p, nx, ny, nz, ox, oy, oz);
    }

    // ---------------------------------------------------------------- batch norm

    // Grid: (parts, channels). One pass over x for both moments: partial sums of d and d^2 in double, d = x - K,
    // K = the channel's first element (a shift inside the data keeps E[d^2] - E[d]^2 clear of cancellation):
    // partial[2 (c parts + b)], [... + 1].
    template <typename A>
    __device__ void ifcn_bn_stats_partial_t(const A* x, double* partial, long long voxels, int parts) {
        __shared__ double sh[IFCN_BLOCK];
        const int c = blockIdx.y;
        const A* xc = x + (long long)c * voxels;
        const double shift = voxels > 0 ? (double)ifcn_get(xc) : 0.0;
        double s = 0.0, q = 0.0;
        ifcn_row_part<A>(ifcn_rows_vectorised(x, voxels), voxels, parts, [&](auto g, long long i) {
            constexpr int N = decltype(g)::n;
            float v[N];
            ifcn_load_group<N>(xc + i, v);
            for (int k = 0; k < N; k++) {
                const double d = (double)v[k] - shift;
                s += d;
                q += d * d;
            }
        });
        s = ifcn_block_sum(s, sh);
        q = ifcn_block_sum(q, sh);
        if (threadIdx.x == 0) {
            const long long k = 2 * ((long long)c * parts + blockIdx.x);
            partial[k] = s;
            partial[k + 1] = q;
        }
    }
    extern "C" __global__ void ifcn_bn_stats_partial(const float* x, double* partial, long long voxels, int parts) {
        ifcn_bn_stats_partial_t(x, partial, voxels, parts);
    }
    extern "C" __global__ void ifcn_bn_stats_partial_bf16(const unsigned short* x, double* partial, long long voxels,
                                                          int parts) {
        ifcn_bn_stats_partial_t(x, partial, voxels, parts);
    }

    // Grid: channels. From ifcn_bn_stats_partial's sums (x: the same tensor, for its shift): mean = K + S1 / n,
    // biased variance (S2 - S1^2 / n) / n to normalise, the unbiased one for running_var (PyTorch), running
    // statistics updated in double as on the CPU. For ifcn_bn_apply, as CPUBackend: mean = savedMean = float(mean),
    // scale = float(gamma invStd), shift = float(beta - (mean - float(mean)) gamma invStd) (the part of the mean
    // below float resolution goes into the shift).
    template <typename A>
    __device__ void ifcn_bn_train_finalize_t(const A* x, const double* partial, const float* gamma, const float* beta,
                                             float* runningMean, float* runningVar, float* savedMean,
                                             float* savedInvStd, float* scale, float* shift, int parts,
                                             long long voxels, float momentum, float epsilon) {
        __shared__ double sh[IFCN_BLOCK];
        const int c = blockIdx.x;
        const double* p = partial + 2 * (long long)c * parts;
        const double s1 = ifcn_sum_partials(p, parts, 2, sh);
        const double s2 = ifcn_sum_partials(p + 1, parts, 2, sh);
        if (threadIdx.x != 0) return;
        const double n = (double)voxels;
        const double offset = __ddiv_rn(s1, n);
        const double first = voxels > 0 ? (double)ifcn_get(x + (long long)c * voxels) : 0.0;
        const double mean = __dadd_rn(first, offset);
        const double difference = __dsub_rn(__ddiv_rn(s2, n), __dmul_rn(offset, offset));
        const double variance = difference < 0.0 ? 0.0 : difference;  // rounding's negative zeros; NaN stays
        const double invStd = __ddiv_rn(1.0, __dsqrt_rn(__dadd_rn(variance, (double)epsilon)));
        const float meanF = (float)mean;
        savedMean[c] = meanF;
        savedInvStd[c] = (float)invStd;
        const double unbiased = voxels > 1 ? __ddiv_rn(__dmul_rn(variance, n), (double)(voxels - 1)) : variance;
        const double mom = (double)momentum, keep = 1.0 - mom;
        runningMean[c] = (float)__dadd_rn(__dmul_rn(keep, (double)runningMean[c]), __dmul_rn(mom, mean));
        runningVar[c] = (float)__dadd_rn(__dmul_rn(keep, (double)runningVar[c]), __dmul_rn(mom, unbiased));
        const double scaleD = __dmul_rn((double)gamma[c], invStd);
        scale[c] = (float)scaleD;
        shift[c] = (float)__dsub_rn((double)beta[c], __dmul_rn(__dsub_rn(mean, (double)meanF), scaleD));
    }
    extern "C" __global__ void ifcn_bn_train_finalize(const float* x, const double* partial, const float* gamma,
                                                      const float* beta, float* runningMean, float* runningVar,
                                                      float* savedMean, float* savedInvStd, float* scale, float* shift,
                                                      int parts, long long voxels, float momentum, float epsilon) {
        ifcn_bn_train_finalize_t(x, partial, gamma, beta, runningMean, runningVar, savedMean, savedInvStd, scale, shift,
                                 parts, voxels, momentum, epsilon);
    }
    extern "C" __global__ void ifcn_bn_train_finalize_bf16(const unsigned short* x, const double* partial,
                                                           const float* gamma, const float* beta, float* runningMean,
                                                           float* runningVar, float* savedMean, float* savedInvStd,
                                                           float* scale, float* shift, int parts, long long voxels,
                                                           float momentum, float epsilon) {
        ifcn_bn_train_finalize_t(x, partial, gamma, beta, runningMean, runningVar, savedMean, savedInvStd, scale, shift,
                                 parts, voxels, momentum, epsilon);
    }

    // Grid: ceil(channels / 256). As CPUBackend.batchNormEvalForward (folded form):
    // scale = float(gamma / sqrt(running_var + eps)) in double, shift = beta - running_mean * scale
    // in float, and mean = 0 for ifcn_bn_apply (x - 0 is x exactly).
    extern "C" __global__ void ifcn_bn_eval_prepare(const float* gamma, const float* beta, const float* runningMean,
                                                    const float* runningVar, float* mean, float* scale, float* shift,
                                                    int channels, float epsilon) {
        const int c = blockIdx.x * IFCN_BLOCK + threadIdx.x;
        if (c >= channels) return;
        const double invStd = __ddiv_rn(1.0, __dsqrt_rn(__dadd_rn((double)runningVar[c], (double)epsilon)));
        const float k = (float)__dmul_rn((double)gamma[c], invStd);
        mean[c] = 0.0f;
        scale[c] = k;
        shift[c] = __fsub_rn(beta[c], __fmul_rn(runningMean[c], k));
    }

    // Batch norm's output before its ReLU: (x - m) * k + b in float, rounded at each step. The forward
    // pass, its recomputation and the backward pass's ReLU mask all use this one expression.
    __device__ __forceinline__ float ifcn_bn_affine(float x, float m, float k, float b) {
        return __fadd_rn(__fmul_rn(__fsub_rn(x, m), k), b);
    }

    // Grid: (blocks, channels), a block per 256 vectors of a row. y = (x - mean[c]) * scale[c] + shift[c] in
    // float, then ReLU if relu != 0. May run in place.
    template <typename A>
    __device__ void ifcn_bn_apply_t(const A* x, A* y, const float* mean, const float* scale, const float* shift,
                                    long long voxels, int relu) {
        const int c = blockIdx.y;
        const long long base = (long long)c * voxels;
        const float m = mean[c], k = scale[c], b = shift[c];
        ifcn_row_strided<A>(ifcn_rows_vectorised(x, voxels) && ifcn_aligned16(y), voxels, [&](auto g, long long i) {
            constexpr int N = decltype(g)::n;
            float v[N];
            ifcn_load_group<N>(x + base + i, v);
            for (int e = 0; e < N; e++) {
                const float a = ifcn_bn_affine(v[e], m, k, b);
                v[e] = relu ? ifcn_relu(a) : a;
            }
            ifcn_store_group<N>(y + base + i, v);
        });
    }
    extern "C" __global__ void ifcn_bn_apply(const float* x, float* y, const float* mean, const float* scale,
                                             const float* shift, long long voxels, int relu) {
        ifcn_bn_apply_t(x, y, mean, scale, shift, voxels, relu);
    }
    extern "C" __global__ void ifcn_bn_apply_bf16(const unsigned short* x, unsigned short* y, const float* mean,
                                                  const float* scale, const float* shift, long long voxels, int relu) {
        ifcn_bn_apply_t(x, y, mean, scale, shift, voxels, relu);
    }

    // The terms of batch norm's backward sums for one element: g (masked by the output's sign,
    // ifcn_bn_affine(x) > 0 with the forward pass's scale and shift, when relu != 0) and g * xhat,
    // xhat = (x - mean) * invStd in float, both in double.
    __device__ __forceinline__ void ifcn_bn_backward_terms(float xi, float gi, float m, float is, float k, float b,
                                                           int relu, double* sg, double* sgx) {
        if (relu && !(ifcn_bn_affine(xi, m, k, b) > 0.0f)) return;
        const double g = (double)gi;
        *sg += g;
        *sgx += g * (double)__fmul_rn(__fsub_rn(xi, m), is);
    }

    // Grid: (parts, channels). Partial sums of g and g * xhat (ifcn_bn_backward_terms): partial[2 (c parts + b)],
    // [... + 1].
    template <typename A>
    __device__ void ifcn_bn_backward_partial_t(const A* x, const A* dy, const float* mean, const float* invStd,
                                               const float* scale, const float* shift, double* partial,
                                               long long voxels, int parts, int relu) {
        __shared__ double sh[IFCN_BLOCK];
        const int c = blockIdx.y;
        const long long base = (long long)c * voxels;
        const float m = mean[c], is = invStd[c], k = scale[c], b = shift[c];
        double sg = 0.0, sgx = 0.0;
        ifcn_row_part<A>(ifcn_rows_vectorised(x, voxels) && ifcn_aligned16(dy), voxels, parts, [&](auto g, long long i) {
            constexpr int N = decltype(g)::n;
            float xv[N], gv[N];
            ifcn_load_group<N>(x + base + i, xv);
            ifcn_load_group<N>(dy + base + i, gv);
            for (int e = 0; e < N; e++) ifcn_bn_backward_terms(xv[e], gv[e], m, is, k, b, relu, &sg, &sgx);
        });
        sg = ifcn_block_sum(sg, sh);
        sgx = ifcn_block_sum(sgx, sh);
        if (threadIdx.x == 0) {
            const long long j = 2 * ((long long)c * parts + blockIdx.x);
            partial[j] = sg;
            partial[j + 1] = sgx;
        }
    }
    extern "C" __global__ void ifcn_bn_backward_partial(const float* x, const float* dy,
                                                        const float* mean, const float* invStd, const float* scale,
                                                        const float* shift, double* partial,
                                                        long long voxels, int parts, int relu) {
        ifcn_bn_backward_partial_t(x, dy, mean, invStd, scale, shift, partial, voxels, parts, relu);
    }
    extern "C" __global__ void ifcn_bn_backward_partial_bf16(const unsigned short* x, const unsigned short* dy,
                                                             const float* mean, const float* invStd, const float* scale,
                                                             const float* shift, double* partial,
                                                             long long voxels, int parts, int relu) {
        ifcn_bn_backward_partial_t(x, dy, mean, invStd, scale, shift, partial, voxels, parts, relu);
    }

    // Grid: channels. sums[2 c] = sum g, sums[2 c + 1] = sum g xhat; gradGamma += sum g xhat,
    // gradBeta += sum g (as float).
    extern "C" __global__ void ifcn_bn_backward_finalize(const double* partial, float* gradGamma, float* gradBeta,
                                                         double* sums, int parts) {
        __shared__ double sh[IFCN_BLOCK];
        const int c = blockIdx.x;
        const double* p = partial + 2 * (long long)c * parts;
        const double sg = ifcn_sum_partials(p, parts, 2, sh);
        const double sgx = ifcn_sum_partials(p + 1, parts, 2, sh);
        if (threadIdx.x == 0) {
            sums[2 * c] = sg;
            sums[2 * c + 1] = sgx;
            gradGamma[c] = __fadd_rn(gradGamma[c], (float)sgx);
            gradBeta[c] = __fadd_rn(gradBeta[c], (float)sg);
        }
    }

    // One element of batch norm's input gradient, as CPUBackend, in float: k (g - mean(g) - xhat mean(g xhat)),
    // k = gamma invStd, xhat = (x - mean) invStd, g masked as in ifcn_bn_backward_terms; added to the old value
    // `old` when accumulate != 0.
    __device__ __forceinline__ float ifcn_bn_input_gradient(float xj, float dyj, float old, float m, float is, float ks,
                                                           float bs, float k, float mg, float mgx, int relu,
                                                           int accumulate) {
        const float gi = relu ? (ifcn_bn_affine(xj, m, ks, bs) > 0.0f ? dyj : 0.0f) : dyj;
        const float xhat = __fmul_rn(__fsub_rn(xj, m), is);
        const float v = __fmul_rn(k, __fsub_rn(__fsub_rn(gi, mg), __fmul_rn(xhat, mgx)));
        return accumulate ? __fadd_rn(old, v) : v;
    }

    // Grid: (blocks, channels), a block per 256 vectors of a row. dx (ifcn_bn_input_gradient), with
    // mean(g) = float(sum g / n), mean(g xhat) = float(sum g xhat / n).
    template <typename A>
    __device__ void ifcn_bn_backward_apply_t(const A* x, const A* dy, A* dx, const float* gamma, const float* mean,
                                             const float* invStd, const float* scale, const float* shift,
                                             const double* sums, long long voxels, int relu, int accumulate) {
        const int c = blockIdx.y;
        const long long base = (long long)c * voxels;
        const float m = mean[c], is = invStd[c], ks = scale[c], bs = shift[c];
        const float k = __fmul_rn(gamma[c], is);
        const float mg = (float)(sums[2 * c] / (double)voxels);
        const float mgx = (float)(sums[2 * c + 1] / (double)voxels);
        const bool vectorised = ifcn_rows_vectorised(x, voxels) && ifcn_aligned16(dy) && ifcn_aligned16(dx);
        ifcn_row_strided<A>(vectorised, voxels, [&](auto g, long long i) {
            constexpr int N = decltype(g)::n;
            const long long j = base + i;
            float xv[N], gv[N], dv[N] = {};
            ifcn_load_group<N>(x + j, xv);
            ifcn_load_group<N>(dy + j, gv);
            if (accumulate) ifcn_load_group<N>(dx + j, dv);
            for (int e = 0; e < N; e++) {
                dv[e] = ifcn_bn_input_gradient(xv[e], gv[e], dv[e], m, is, ks, bs, k, mg, mgx, relu, accumulate);
            }
            ifcn_store_group<N>(dx + j, dv);
        });
    }
    extern "C" __global__ void ifcn_bn_backward_apply(const float* x, const float* dy, float* dx,
                                                      const float* gamma, const float* mean, const float* invStd,
                                                      const float* scale, const float* shift,
                                                      const double* sums, long long voxels, int relu, int accumulate) {
        ifcn_bn_backward_apply_t(x, dy, dx, gamma, mean, invStd, scale, shift, sums, voxels, relu, accumulate);
    }
    extern "C" __global__ void ifcn_bn_backward_apply_bf16(const unsigned short* x, const unsigned short* dy,
                                                           unsigned short* dx, const float* gamma, const float* mean,
                                                           const float* invStd, const float* scale, const float* shift,
                                                           const double* sums, long long voxels, int relu,
                                                           int accumulate) {
        ifcn_bn_backward_apply_t(x, dy, dx, gamma, mean, invStd, scale, shift, sums, voxels, relu, accumulate);
    }

    // ---------------------------------------------------------------- pooling, upsampling

    // Where the rows of the larger tensor are a multiple of 8 elements long (max pooling's input, upsampling's
    // output: every level of the network down to 8^3) and the tensors are 16-byte aligned, a thread takes 4
    // neighbouring outputs along w of max pooling (their 2x2x2 windows: 4 rows of 8 inputs) or 4 neighbouring inputs
    // of upsampling (their 4 rows of 8 outputs), and moves them 16 bytes (8 for 4 bfloat16 elements) at a time; else
    // a thread takes one, element by element. Both compute the same values in the same order. (One 2-byte bfloat16
    // element per access kept too few bytes in flight: about half the bandwidth.) The launch grid
    // (CUDABackend.poolingBlocks) counts groups of 4 where the extent allows them.
    template <typename A>
    __device__ __forceinline__ bool ifcn_pooling_vectorised(int largerRow, const A* a, const A* b) {
        return largerRow % 8 == 0 && ifcn_aligned16(a) && ifcn_aligned16(b);
    }

    // The first input element of output o's window (o: an index into [c][od][oh][ow]).
    __device__ __forceinline__ long long ifcn_pooled_window(long long o, int od, int oh, int ow, int h, int w,
                                                            long long inVoxels) {
        long long t = o;
        const int ox = (int)(t % ow); t /= ow;
        const int oy = (int)(t % oh); t /= oh;
        const int oz = (int)(t % od);
        const long long c = t / od;
        // The window's first input element; its rows (dz, dy) lie (dz h + dy) w further on.
        return c * inVoxels + ((long long)(2 * oz) * h + 2 * oy) * w + 2 * ox;
    }

    // One output (N = 1) or 4 neighbouring outputs along w (N = 4) from the window rows at `first`; NaN counts as
    // the maximum.
    template <int N, typename A>
    __device__ __forceinline__ void ifcn_maxpool2_group(const A* first, int h, int w, float* m) {
        for (int j = 0; j < N; j++) m[j] = ifcn_neg_inf();
        for (int dz = 0; dz < 2; dz++) {
            for (int dyy = 0; dyy < 2; dyy++) {
                const A* row = first + ((long long)dz * h + dyy) * w;
                float v[2 * N];
                if constexpr (N == 1) { v[0] = ifcn_get(row); v[1] = ifcn_get(row + 1); } else ifcn_load_run<2 * N>(row, v);
                for (int j = 0; j < N; j++) {
                    for (int dxx = 0; dxx < 2; dxx++) {
                        const float x = v[2 * j + dxx];
                        if (x > m[j] || isnan(x)) m[j] = x;
                    }
                }
            }
        }
    }

    // d, h, w: the input extent.
    template <typename A>
    __device__ void ifcn_maxpool2_forward_t(const A* x, A* y, long long outputs, int d, int h, int w) {
        const int od = d / 2, oh = h / 2, ow = w / 2;
        const long long inVoxels = (long long)d * h * w;
        if (ifcn_pooling_vectorised(w, x, y)) {
            for (long long q = ifcn_global_index(); q < outputs / 4; q += ifcn_global_stride()) {
                float m[4];
                ifcn_maxpool2_group<4>(x + ifcn_pooled_window(4 * q, od, oh, ow, h, w, inVoxels), h, w, m);
                ifcn_store_run<4>(y + 4 * q, m);
            }
            return;
        }
        for (long long o = ifcn_global_index(); o < outputs; o += ifcn_global_stride()) {
            float m[1];
            ifcn_maxpool2_group<1>(x + ifcn_pooled_window(o, od, oh, ow, h, w, inVoxels), h, w, m);
            ifcn_put(y + o, m[0]);
        }
    }
    extern "C" __global__ void ifcn_maxpool2_forward(const float* x, float* y, long long outputs, int d, int h, int w) {
        ifcn_maxpool2_forward_t(x, y, outputs, d, h, w);
    }
    extern "C" __global__ void ifcn_maxpool2_forward_bf16(const unsigned short* x, unsigned short* y, long long outputs, int d, int h, int w) {
        ifcn_maxpool2_forward_t(x, y, outputs, d, h, w);
    }

    // The gradient of one output (N = 1) or of 4 neighbouring ones along w (N = 4), windows at `first` of x and dx
    // (windows are disjoint: no races). It goes to the window's first maximum in (dz, dy, dx) order (a later NaN
    // replaces it, as on the CPU), added to the old value with accumulate, else to zero with the rest of the window
    // zeroed.
    template <int N, typename A>
    __device__ __forceinline__ void ifcn_maxpool2_backward_group(const A* xFirst, A* dxFirst, const float* g, int h, int w,
                                                                 int accumulate) {
        float m[N];
        int arg[N];
        for (int j = 0; j < N; j++) { m[j] = ifcn_neg_inf(); arg[j] = -1; }
        for (int r = 0; r < 4; r++) {
            const A* row = xFirst + ((long long)(r >> 1) * h + (r & 1)) * w;
            float v[2 * N];
            if constexpr (N == 1) { v[0] = ifcn_get(row); v[1] = ifcn_get(row + 1); } else ifcn_load_run<2 * N>(row, v);
            for (int j = 0; j < N; j++) {
                for (int dxx = 0; dxx < 2; dxx++) {
                    const float x = v[2 * j + dxx];
                    if (arg[j] < 0 || x > m[j] || isnan(x)) {
                        m[j] = x;
                        arg[j] = 2 * r + dxx;
                    }
                }
            }
        }
        for (int r = 0; r < 4; r++) {
            A* row = dxFirst + ((long long)(r >> 1) * h + (r & 1)) * w;
            float v[2 * N];
            if (accumulate) {
                if constexpr (N == 1) { v[0] = ifcn_get(row); v[1] = ifcn_get(row + 1); } else ifcn_load_run<2 * N>(row, v);
            } else {
                for (int k = 0; k < 2 * N; k++) v[k] = 0.0f;
            }
            for (int j = 0; j < N; j++) {
                for (int dxx = 0; dxx < 2; dxx++) {
                    if (arg[j] == 2 * r + dxx) v[2 * j + dxx] = __fadd_rn(v[2 * j + dxx], g[j]);
                }
            }
            if constexpr (N == 1) { ifcn_put(row, v[0]); ifcn_put(row + 1, v[1]); } else ifcn_store_run<2 * N>(row, v);
        }
    }

    template <typename A>
    __device__ void ifcn_maxpool2_backward_t(const A* x, const A* gradOutput, A* gradInput, long long outputs,
                                             int d, int h, int w, int accumulate) {
        const int od = d / 2, oh = h / 2, ow = w / 2;
        const long long inVoxels = (long long)d * h * w;
        if (ifcn_pooling_vectorised(w, x, gradInput) && ifcn_aligned16(gradOutput)) {
            for (long long q = ifcn_global_index(); q < outputs / 4; q += ifcn_global_stride()) {
                const long long first = ifcn_pooled_window(4 * q, od, oh, ow, h, w, inVoxels);
                float g[4];
                ifcn_load_run<4>(gradOutput + 4 * q, g);
                ifcn_maxpool2_backward_group<4>(x + first, gradInput + first, g, h, w, accumulate);
            }
            return;
        }
        for (long long o = ifcn_global_index(); o < outputs; o += ifcn_global_stride()) {
            const long long first = ifcn_pooled_window(o, od, oh, ow, h, w, inVoxels);
            const float g[1] = {ifcn_get(gradOutput + o)};
            ifcn_maxpool2_backward_group<1>(x + first, gradInput + first, g, h, w, accumulate);
        }
    }
    extern "C" __global__ void ifcn_maxpool2_backward(const float* x, const float* gradOutput, float* gradInput,
                                                      long long outputs, int d, int h, int w, int accumulate) {
        ifcn_maxpool2_backward_t(x, gradOutput, gradInput, outputs, d, h, w, accumulate);
    }
    extern "C" __global__ void ifcn_maxpool2_backward_bf16(const unsigned short* x, const unsigned short* gradOutput,
                                                           unsigned short* gradInput, long long outputs, int d, int h,
                                                           int w, int accumulate) {
        ifcn_maxpool2_backward_t(x, gradOutput, gradInput, outputs, d, h, w, accumulate);
    }

    // Where input element i's 2x2x2 block starts in the upsampled tensor (d, h, w: the input extent); its four rows
    // of two start there, a row (2 w) and a plane (4 h w) further on.
    __device__ __forceinline__ long long ifcn_upsample_block(long long i, int d, int h, int w) {
        long long t = i;
        const int xx = (int)(t % w); t /= w;
        const int yy = (int)(t % h); t /= h;
        const int z = (int)(t % d);
        const long long c = t / d;
        return c * (8LL * d * h * w) + ((long long)(2 * z) * (2 * h) + 2 * yy) * (2 * w) + 2 * xx;
    }

    // The four output rows of input element i's block (or of 4 neighbouring inputs' blocks): r00, r00 + row,
    // r00 + plane, r00 + plane + row.
    __device__ __forceinline__ long long ifcn_upsample_row(int r, int h, int w) {
        return (r >> 1) * (4LL * h * w) + (r & 1) * (2LL * w);
    }

    // One input element (N = 1) or 4 neighbouring ones along w (N = 4) written to their 2x2x2 blocks (a warp's rows
    // are contiguous). A thread per output spent more time dividing its index into coordinates than moving its
    // element.
    template <int N, typename A>
    __device__ __forceinline__ void ifcn_upsample2_forward_group(const float* v, A* block, int h, int w) {
        float o[2 * N];
        for (int j = 0; j < N; j++) { o[2 * j] = v[j]; o[2 * j + 1] = v[j]; }
        for (int r = 0; r < 4; r++) {
            A* row = block + ifcn_upsample_row(r, h, w);
            if constexpr (N == 1) { ifcn_put(row, o[0]); ifcn_put(row + 1, o[1]); } else ifcn_store_run<2 * N>(row, o);
        }
    }

    // The vector path needs output rows of a multiple of 8 elements (input w a multiple of 4).
    template <typename A>
    __device__ void ifcn_upsample2_forward_t(const A* x, A* y, long long inputs, int d, int h, int w) {
        if (ifcn_pooling_vectorised(2 * w, x, y)) {
            for (long long q = ifcn_global_index(); q < inputs / 4; q += ifcn_global_stride()) {
                float v[4];
                ifcn_load_run<4>(x + 4 * q, v);
                ifcn_upsample2_forward_group<4>(v, y + ifcn_upsample_block(4 * q, d, h, w), h, w);
            }
            return;
        }
        for (long long i = ifcn_global_index(); i < inputs; i += ifcn_global_stride()) {
            const float v[1] = {ifcn_get(x + i)};
            ifcn_upsample2_forward_group<1>(v, y + ifcn_upsample_block(i, d, h, w), h, w);
        }
    }
    extern "C" __global__ void ifcn_upsample2_forward(const float* x, float* y, long long inputs, int d, int h, int w) {
        ifcn_upsample2_forward_t(x, y, inputs, d, h, w);
    }
    extern "C" __global__ void ifcn_upsample2_forward_bf16(const unsigned short* x, unsigned short* y, long long inputs,
                                                           int d, int h, int w) {
        ifcn_upsample2_forward_t(x, y, inputs, d, h, w);
    }

    // The sum of each block of gradOutput, in the CPU's order: (r00[0] + r00[1] + r01[0] + r01[1]) +
    // (r10[0] + r10[1] + r11[0] + r11[1]), each sum rounded.
    template <int N, typename A>
    __device__ __forceinline__ void ifcn_upsample2_backward_group(const A* block, int h, int w, float* s) {
        float half[2][N];
        for (int r = 0; r < 4; r++) {
            const A* row = block + ifcn_upsample_row(r, h, w);
            float v[2 * N];
            if constexpr (N == 1) { v[0] = ifcn_get(row); v[1] = ifcn_get(row + 1); } else ifcn_load_run<2 * N>(row, v);
            for (int j = 0; j < N; j++) {
                const float a = (r & 1) ? half[r >> 1][j] : 0.0f;
                half[r >> 1][j] = (r & 1) ? __fadd_rn(__fadd_rn(a, v[2 * j]), v[2 * j + 1]) : __fadd_rn(v[2 * j], v[2 * j + 1]);
            }
        }
        for (int j = 0; j < N; j++) s[j] = __fadd_rn(half[0][j], half[1][j]);
    }

    template <typename A>
    __device__ void ifcn_upsample2_backward_t(const A* gradOutput, A* gradInput, long long inputs, int d, int h, int w,
                                              int accumulate) {
        if (ifcn_pooling_vectorised(2 * w, gradOutput, gradInput)) {
            for (long long q = ifcn_global_index(); q < inputs / 4; q += ifcn_global_stride()) {
                float s[4], old[4];
                ifcn_upsample2_backward_group<4>(gradOutput + ifcn_upsample_block(4 * q, d, h, w), h, w, s);
                if (accumulate) {
                    ifcn_load_run<4>(gradInput + 4 * q, old);
                    for (int j = 0; j < 4; j++) s[j] = __fadd_rn(old[j], s[j]);
                }
                ifcn_store_run<4>(gradInput + 4 * q, s);
            }
            return;
        }
        for (long long i = ifcn_global_index(); i < inputs; i += ifcn_global_stride()) {
            float s[1];
            ifcn_upsample2_backward_group<1>(gradOutput + ifcn_upsample_block(i, d, h, w), h, w, s);
            ifcn_put(gradInput + i, accumulate ? __fadd_rn(ifcn_get(gradInput + i), s[0]) : s[0]);
        }
    }
    extern "C" __global__ void ifcn_upsample2_backward(const float* gradOutput, float* gradInput, long long inputs,
                                                       int d, int h, int w, int accumulate) {
        ifcn_upsample2_backward_t(gradOutput, gradInput, inputs, d, h, w, accumulate);
    }
    extern "C" __global__ void ifcn_upsample2_backward_bf16(const unsigned short* gradOutput, unsigned short* gradInput,
                                                            long long inputs, int d, int h, int w, int accumulate) {
        ifcn_upsample2_backward_t(gradOutput, gradInput, inputs, d, h, w, accumulate);
    }

    // ---------------------------------------------------------------- global max pooling

    // The CPU's sequential scan (`if v > m || v.isNaN { m = v }` from -inf) ends on the last NaN if
    // there is one, else on the first element with the largest value. Candidates (value, index)
    // are combined with that rule, which is a strict total order, so any tree gives the CPU's
    // element (the sign of a zero maximum and a NaN's payload included).
    __device__ __forceinline__ bool ifcn_max_replaces(float va, long long ia, float vb, long long ib) {
        const bool na = isnan(va), nb = isnan(vb);
        if (na || nb) return (na && nb) ? (ib > ia) : nb;
        if (vb > va) return true;
        if (va > vb) return false;
        return ib < ia;
    }

    __device__ void ifcn_block_max(float* v, long long* idx, float* sv, long long* si) {
        const int t = threadIdx.x;
        sv[t] = *v;
        si[t] = *idx;
        __syncthreads();
        for (int s = IFCN_BLOCK / 2; s > 0; s >>= 1) {
            if (t < s && ifcn_max_replaces(sv[t], si[t], sv[t + s], si[t + s])) {
                sv[t] = sv[t + s];
                si[t] = si[t + s];
            }
            __syncthreads();
        }
        *v = sv[0];
        *idx = si[0];
        __syncthreads();
    }

    // Grid: (parts, channels). Per block: the winning (value, index) of its range, stored in
    // partialValue (float) and partialIndex (double, exact below 2^53). An empty range yields
    // (-inf, voxels), which every real element beats or equals in value.
    template <typename A>
    __device__ void ifcn_global_max_partial_t(const A* x, float* partialValue, double* partialIndex, long long voxels,
                                              int parts) {
        __shared__ float sv[IFCN_BLOCK];
        __shared__ long long si[IFCN_BLOCK];
        const int c = blockIdx.y;
        const A* xc = x + (long long)c * voxels;
        long long lo, hi;
        ifcn_part_range(voxels, blockIdx.x, parts, &lo, &hi);
        float m = ifcn_neg_inf();
        long long arg = voxels;
        for (long long i = lo + threadIdx.x; i < hi; i += IFCN_BLOCK) {
            const float v = ifcn_get(xc + i);
            if (v > m || isnan(v)) {
                m = v;
                arg = i;
            }
        }
        ifcn_block_max(&m, &arg, sv, si);
        if (threadIdx.x == 0) {
            const long long k = (long long)c * parts + blockIdx.x;
            partialValue[k] = m;
            partialIndex[k] = (double)arg;
        }
    }
    extern "C" __global__ void ifcn_global_max_partial(const float* x, float* partialValue, double* partialIndex,
                                                       long long voxels, int parts) {
        ifcn_global_max_partial_t(x, partialValue, partialIndex, voxels, parts);
    }
    extern "C" __global__ void ifcn_global_max_partial_bf16(const unsigned short* x, float* partialValue, double* partialIndex,
                                                            long long voxels, int parts) {
        ifcn_global_max_partial_t(x, partialValue, partialIndex, voxels, parts);
    }

    // Grid: channels. y[c] = the winning value over the partials.
    template <typename A>
    __device__ void ifcn_global_max_finalize_t(const float* partialValue, const double* partialIndex, A* y, int parts) {
        __shared__ float sv[IFCN_BLOCK];
        __shared__ long long si[IFCN_BLOCK];
        const int c = blockIdx.x;
        float m = ifcn_neg_inf();
        long long arg = 9223372036854775807LL;
        for (int b = threadIdx.x; b < parts; b += IFCN_BLOCK) {
            const long long k = (long long)c * parts + b;
            const float v = partialValue[k];
            const long long i = (long long)partialIndex[k];
            if (ifcn_max_replaces(m, arg, v, i)) {
                m = v;
                arg = i;
            }
        }
        ifcn_block_max(&m, &arg, sv, si);
        if (threadIdx.x == 0) ifcn_put(y + c, m);
    }
    extern "C" __global__ void ifcn_global_max_finalize(const float* partialValue, const double* partialIndex,
                                                        float* y, int parts) {
        ifcn_global_max_finalize_t(partialValue, partialIndex, y, parts);
    }
    extern "C" __global__ void ifcn_global_max_finalize_bf16(const float* partialValue, const double* partialIndex,
                                                             unsigned short* y, int parts) {
        ifcn_global_max_finalize_t(partialValue, partialIndex, y, parts);
    }

    // Grid: (parts, channels). Partial counts of x == y[c] (ties), in double (exact integers).
    template <typename A>
    __device__ void ifcn_global_max_count_partial_t(const A* x, const A* y, double* partial, long long voxels, int parts) {
        __shared__ double sh[IFCN_BLOCK];
        const int c = blockIdx.y;
        const A* xc = x + (long long)c * voxels;
        const float yc = ifcn_get(y + c);
        long long lo, hi;
        ifcn_part_range(voxels, blockIdx.x, parts, &lo, &hi);
        double n = 0.0;
        for (long long i = lo + threadIdx.x; i < hi; i += IFCN_BLOCK) {
            if (ifcn_get(xc + i) == yc) n += 1.0;
        }
        n = ifcn_block_sum(n, sh);
        if (threadIdx.x == 0) partial[(long long)c * parts + blockIdx.x] = n;
    }
    extern "C" __global__ void ifcn_global_max_count_partial(const float* x, const float* y, double* partial,
                                                             long long voxels, int parts) {
        ifcn_global_max_count_partial_t(x, y, partial, voxels, parts);
    }
    extern "C" __global__ void ifcn_global_max_count_partial_bf16(const unsigned short* x, const unsigned short* y, double* partial,
                                                                  long long voxels, int parts) {
        ifcn_global_max_count_partial_t(x, y, partial, voxels, parts);
    }

    // Grid: channels. share[c] = dy[c] / float(max(ties, 1)).
    template <typename A>
    __device__ void ifcn_global_max_share_t(const double* partial, const A* gradOutput, float* share, int parts) {
        __shared__ double sh[IFCN_BLOCK];
        const int c = blockIdx.x;
        const double ties = ifcn_sum_partials(partial + (long long)c * parts, parts, 1, sh);
        if (threadIdx.x == 0) share[c] = __fdiv_rn(ifcn_get(gradOutput + c), (float)(ties > 1.0 ? ties : 1.0));
    }
    extern "C" __global__ void ifcn_global_max_share(const double* partial, const float* gradOutput, float* share,
                                                     int parts) {
        ifcn_global_max_share_t(partial, gradOutput, share, parts);
    }
    extern "C" __global__ void ifcn_global_max_share_bf16(const double* partial, const unsigned short* gradOutput,
                                                          float* share, int parts) {
        ifcn_global_max_share_t(partial, gradOutput, share, parts);
    }

    // Grid: (blocks, channels). dx = (x == y[c] ? share[c] : 0), added when accumulate != 0.
    template <typename A>
    __device__ void ifcn_global_max_backward_apply_t(const A* x, const A* y, const float* share, A* gradInput,
                                                     long long voxels, int accumulate) {
        const int c = blockIdx.y;
        const long long base = (long long)c * voxels;
        const float yc = ifcn_get(y + c), s = share[c];
        for (long long i = ifcn_global_index(); i < voxels; i += ifcn_global_stride()) {
            const float v = ifcn_get(x + base + i) == yc ? s : 0.0f;
            ifcn_put(gradInput + base + i, accumulate ? __fadd_rn(ifcn_get(gradInput + base + i), v) : v);
        }
    }
    extern "C" __global__ void ifcn_global_max_backward_apply(const float* x, const float* y, const float* share,
                                                              float* gradInput, long long voxels, int accumulate) {
        ifcn_global_max_backward_apply_t(x, y, share, gradInput, voxels, accumulate);
    }
    extern "C" __global__ void ifcn_global_max_backward_apply_bf16(const unsigned short* x, const unsigned short* y,
                                                                   const float* share, unsigned short* gradInput,
                                                                   long long voxels, int accumulate) {
        ifcn_global_max_backward_apply_t(x, y, share, gradInput, voxels, accumulate);
    }

    // ---------------------------------------------------------------- 1x1x1 convolution, bias

    // Grid: (blocks, channels). y[c, v] += bias[c].
    template <typename A>
    __device__ void ifcn_add_bias_t(A* y, const float* bias, long long voxels) {
        const int c = blockIdx.y;
        const long long base = (long long)c * voxels;
        const float b = bias[c];
        for (long long i = ifcn_global_index(); i < voxels; i += ifcn_global_stride()) {
            ifcn_put(y + base + i, __fadd_rn(ifcn_get(y + base + i), b));
        }
    }
    extern "C" __global__ void ifcn_add_bias(float* y, const float* bias, long long voxels) {
        ifcn_add_bias_t(y, bias, voxels);
    }
    extern "C" __global__ void ifcn_add_bias_bf16(unsigned short* y, const float* bias, long long voxels) {
        ifcn_add_bias_t(y, bias, voxels);
    }

    // Grid: (blocks, cout), a block per 256 vectors of a row. y[co, v] = sum_ci w[co, ci] x[ci, v] (float, ci
    // ascending) + bias[co]; a thread computes a vector's worth of neighbouring voxels (16 bytes of each input row
    // per load, where the rows allow it).
    template <typename A>
    __device__ void ifcn_conv1_forward_t(const A* x, const float* w, const float* bias, A* y, int cin, long long voxels,
                                         int hasBias) {
        const int co = blockIdx.y;
        const float* wr = w + (long long)co * cin;
        const float b = hasBias ? bias[co] : 0.0f;
        ifcn_row_strided<A>(ifcn_rows_vectorised(x, voxels) && ifcn_aligned16(y), voxels, [&](auto g, long long v) {
            constexpr int N = decltype(g)::n;
            float acc[N] = {};
            for (int ci = 0; ci < cin; ci++) {
                float xv[N];
                ifcn_load_group<N>(x + (long long)ci * voxels + v, xv);
                for (int e = 0; e < N; e++) acc[e] = fmaf(wr[ci], xv[e], acc[e]);
            }
            for (int e = 0; e < N; e++) acc[e] = hasBias ? __fadd_rn(acc[e], b) : acc[e];
            ifcn_store_group<N>(y + (long long)co * voxels + v, acc);
        });
    }
    extern "C" __global__ void ifcn_conv1_forward(const float* x, const float* w, const float* bias, float* y,
                                                  int cin, long long voxels, int hasBias) {
        ifcn_conv1_forward_t(x, w, bias, y, cin, voxels, hasBias);
    }
    extern "C" __global__ void ifcn_conv1_forward_bf16(const unsigned short* x, const float* w, const float* bias,
                                                       unsigned short* y, int cin, long long voxels, int hasBias) {
        ifcn_conv1_forward_t(x, w, bias, y, cin, voxels, hasBias);
    }

    // Grid: (blocks, cin), a block per 256 vectors of a row. dx[ci, v] (+)= sum_co w[co, ci] dy[co, v] (float, co
    // ascending), a vector's worth of voxels per thread as in ifcn_conv1_forward.
    template <typename A>
    __device__ void ifcn_conv1_backward_data_t(const A* gradOutput, const float* w, A* gradInput, int cin, int cout,
                                               long long voxels, int accumulate) {
        const int ci = blockIdx.y;
        const bool vectorised = ifcn_rows_vectorised(gradOutput, voxels) && ifcn_aligned16(gradInput);
        ifcn_row_strided<A>(vectorised, voxels, [&](auto g, long long v) {
            constexpr int N = decltype(g)::n;
            float acc[N] = {};
            for (int co = 0; co < cout; co++) {
                float dy[N];
                ifcn_load_group<N>(gradOutput + (long long)co * voxels + v, dy);
                const float wc = w[(long long)co * cin + ci];
                for (int e = 0; e < N; e++) acc[e] = fmaf(wc, dy[e], acc[e]);
            }
            const long long j = (long long)ci * voxels + v;
            if (accumulate) {
                float old[N];
                ifcn_load_group<N>(gradInput + j, old);
                for (int e = 0; e < N; e++) acc[e] = __fadd_rn(old[e], acc[e]);
            }
            ifcn_store_group<N>(gradInput + j, acc);
        });
    }
    extern "C" __global__ void ifcn_conv1_backward_data(const float* gradOutput, const float* w, float* gradInput,
                                                        int cin, int cout, long long voxels, int accumulate) {
        ifcn_conv1_backward_data_t(gradOutput, w, gradInput, cin, cout, voxels, accumulate);
    }
    extern "C" __global__ void ifcn_conv1_backward_data_bf16(const unsigned short* gradOutput, const float* w,
                                                             unsigned short* gradInput, int cin, int cout,
                                                             long long voxels, int accumulate) {
        ifcn_conv1_backward_data_t(gradOutput, w, gradInput, cin, cout, voxels, accumulate);
    }

    // Grid: (parts, cout * cin); row r = co * cin + ci. partial[r * parts + b] = sum over the
    // block's range of dy[co, v] * x[ci, v] in double (exact products), rows streamed 16 bytes at a time where they
    // can be.
    template <typename A>
    __device__ void ifcn_conv1_weight_partial_t(const A* x, const A* gradOutput, double* partial, int cin,
                                                long long voxels, int parts) {
        __shared__ double sh[IFCN_BLOCK];
        const int r = blockIdx.y;
        const int co = r / cin, ci = r % cin;
        const A* xc = x + (long long)ci * voxels;
        const A* gc = gradOutput + (long long)co * voxels;
        double s = 0.0;
        const bool vectorised = ifcn_rows_vectorised(x, voxels) && ifcn_aligned16(gradOutput);
        ifcn_row_part<A>(vectorised, voxels, parts, [&](auto g, long long i) {
            constexpr int N = decltype(g)::n;
            float xv[N], gv[N];
            ifcn_load_group<N>(xc + i, xv);
            ifcn_load_group<N>(gc + i, gv);
            for (int k = 0; k < N; k++) s += (double)gv[k] * (double)xv[k];
        });
        s = ifcn_block_sum(s, sh);
        if (threadIdx.x == 0) partial[(long long)r * parts + blockIdx.x] = s;
    }
    extern "C" __global__ void ifcn_conv1_weight_partial(const float* x, const float* gradOutput, double* partial,
                                                         int cin, long long voxels, int parts) {
        ifcn_conv1_weight_partial_t(x, gradOutput, partial, cin, voxels, parts);
    }
    extern "C" __global__ void ifcn_conv1_weight_partial_bf16(const unsigned short* x, const unsigned short* gradOutput,
                                                              double* partial, int cin, long long voxels, int parts) {
        ifcn_conv1_weight_partial_t(x, gradOutput, partial, cin, voxels, parts);
    }
    """
}

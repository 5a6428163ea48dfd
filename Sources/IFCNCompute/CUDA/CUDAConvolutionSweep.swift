import CCUDA
import Foundation

private extension ConvolutionPrecision {
    /// A fill pattern of small values (0.01) for timing buffers: one float32, or two bfloat16s.
    var fillPattern: UInt32 { self == .bf16 ? 0x3C24_3C24 : 0x3C23_D70A }
}

extension CUDABackend {
    /// Times each convolution of `calls` in each variant (default: this backend's own, then the levers), on scratch
    /// buffers: every algorithm cuDNN's Find...Ex offers within the workspace cap is ranked, then the fastest
    /// deterministic one and the fastest of all are each run `repeats` times between CUDA events (median). A
    /// configuration cuDNN refuses is recorded, not fatal. Variants are timed in the order given until `budgetSeconds`
    /// of wall time have passed; the variant then in progress and the rest are listed as skipped. Nothing of the
    /// network is touched.
    public func sweepConvolutions(_ calls: [ConvolutionCall: Int], variants: [ConvolutionVariant]? = nil, repeats: Int = 5,
                                  budgetSeconds: Double = .infinity, progress: (String) -> Void = { _ in }) -> ConvolutionSweep {
        bind()
        synchronize()
        queuedWork += 1  // its scratch work is queued past the backend's bookkeeping
        let start = DispatchTime.now().uptimeNanoseconds
        // Scratch buffers big enough for every shape timed (float32 sizes; bf16 uses half).
        func padded(_ c: Int) -> Int { (c + 7) / 8 * 8 }
        var xBytes = 0, yBytes = 0, wBytes = 0
        for call in calls.keys {
            let s = call.shape, cin = padded(s.inChannels)
            xBytes = max(xBytes, cin * s.extent.voxels * 4)
            yBytes = max(yBytes, s.outChannels * s.extent.voxels * 4)
            wBytes = max(wBytes, s.outChannels * cin * 27 * 4)
        }
        let x = deviceAllocate(bytes: max(xBytes, 256)), y = deviceAllocate(bytes: max(yBytes, 256))
        let w = deviceAllocate(bytes: max(wBytes, 256))
        let cap = convolutionWorkspaceCap()  // the backend's own
        let ws = deviceAllocate(bytes: max(cap, 256))
        defer {
            deviceFree(ws, bytes: max(cap, 256)); deviceFree(w, bytes: max(wBytes, 256))
            deviceFree(y, bytes: max(yBytes, 256)); deviceFree(x, bytes: max(xBytes, 256))
        }
        var sweep = ConvolutionSweep(calls: calls, baseline: convolutionVariant,
                                     device: "\(device.name), cuDNN \(ifcn_cudnn_version()), workspace cap \(cap >> 20) MiB")
        let clock = makeClock()
        let ordered = sweep.orderedCalls
        let variants = variants ?? ConvolutionVariant.sweep(from: convolutionVariant)
        func spent() -> Bool { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 > budgetSeconds }
        variantLoop: for (index, variant) in variants.enumerated() {
            for call in ordered {
                if spent() {
                    sweep.skipped = Array(variants[index...])
                    progress(String(format: "conv sweep: %.0f s budget spent; not (fully) timed: ", budgetSeconds)
                             + sweep.skipped.map(\.description).joined(separator: ", "))
                    break variantLoop
                }
                let s = call.shape
                for cin in [s.inChannels] + (variant.paddedInChannels(s.inChannels).map { [$0] } ?? []) {
                    // Fresh small values for each convolution: outputs fed back as inputs would grow without bound.
                    for (address, bytes) in [(x, xBytes), (y, yBytes), (w, wBytes)] {
                        check(ifcn_cu_memset_d32(address, variant.precision.fillPattern, max(bytes, 256) / 4, stream), "cuMemsetD32Async")
                    }
                    let timedShape = ConvolutionShape(inChannels: cin, outChannels: s.outChannels, extent: s.extent)
                    sweep.measurements.append(measure(call, as: timedShape, variant, x: x, y: y, w: w,
                                                      workspace: (ws, cap), repeats: repeats, clock: clock))
                }
            }
            let t = sweep.seconds(variant, deterministicOnly: true)
            progress("conv sweep: \(variant) timed" + (t.map { String(format: " (%.2f ms per span, deterministic)", $0 * 1e3) } ?? ""))
        }
        return sweep
    }

    /// One convolution in one variant: rank the algorithms, then time the fastest deterministic one and the fastest.
    private func measure(_ call: ConvolutionCall, as shape: ConvolutionShape, _ variant: ConvolutionVariant,
                         x: UInt64, y: UInt64, w: UInt64, workspace: (address: UInt64, bytes: Int), repeats: Int,
                         clock: any BackendClock) -> SweepMeasurement {
        var result = SweepMeasurement(call: call, variant: variant, timedInChannels: shape.inChannels)
        func problem(_ what: String, _ code: Int32) -> SweepMeasurement {
            var r = result
            r.problem = "\(what): \(String(cString: ifcn_cudnn_error_string(code))) (cudnnStatus \(code))"
            return r
        }
        var conv: OpaquePointer?
        let e = shape.extent
        let created = ifcn_conv3_create_variant(&conv, Int32(shape.inChannels), Int32(shape.outChannels), Int32(e.d), Int32(e.h),
                                                Int32(e.w), variant.precision.shimCode, variant.layout.shimCode)
        guard created == 0, let conv else { return problem("descriptors", created) }
        defer { ifcn_conv3_destroy(conv) }
        let direction = call.direction.rawValue
        var candidates = [ifcn_conv3_candidate](repeating: ifcn_conv3_candidate(), count: 16)
        var count: Int32 = 0
        let found = ifcn_conv3_find_all(cudnn, conv, direction, x, w, y, workspace.address, workspace.bytes,
                                        &candidates, Int32(candidates.count), &count)
        guard found == 0 else { return problem("cudnnFind...Ex", found) }
        // As the backend chooses (float32 math: no FFT or Winograd algorithm).
        let usable = candidates.prefix(Int(count)).filter {
            $0.status == 0 && $0.workspace_bytes <= workspace.bytes && ifcn_conv3_allows(conv, direction, $0.algorithm, $0.math_type) != 0
        }
        guard let fastest = usable.first else {
            result.problem = "no algorithm ran within \(workspace.bytes >> 20) MiB of workspace"
            return result
        }
        func time(_ c: ifcn_conv3_candidate) -> AlgorithmTiming? {
            ifcn_conv3_set_algorithm(conv, direction, c.algorithm, c.math_type)
            func run() -> Int32 {
                switch call.direction {
                case .forward: return ifcn_conv3_forward(cudnn, conv, x, w, 0, y, workspace.address, workspace.bytes)
                case .backwardData: return ifcn_conv3_backward_data(cudnn, conv, y, w, 0, x, workspace.address, workspace.bytes)
                case .backwardFilter: return ifcn_conv3_backward_filter(cudnn, conv, x, y, 1, w, workspace.address, workspace.bytes)
                }
            }
            guard run() == 0 else { return nil }  // warm-up
            var samples: [Double] = []
            for _ in 0..<max(1, repeats) {
                clock.record(0)
                guard run() == 0 else { return nil }
                clock.record(1)
                synchronize()
                samples.append(clock.seconds(from: 0, to: 1))
            }
            samples.sort()
            return AlgorithmTiming(algorithm: Int(c.algorithm), seconds: samples[samples.count / 2], workspaceBytes: c.workspace_bytes)
        }
        result.fastest = time(fastest)
        if let d = usable.first(where: { $0.deterministic != 0 }) {
            result.deterministic = d.algorithm == fastest.algorithm ? result.fastest : time(d)
        }
        if result.fastest == nil { result.problem = "algorithm \(fastest.algorithm) failed when run" }
        return result
    }
}

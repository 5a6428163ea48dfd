import Foundation
import IFCNCompute
import IFCNEngine
import IFCNSupport
import XCTest

/// `ifcn bench --profile`: the marking wrapper changes no result, and its profile splits a step by what ran.
final class ProfilingTests: XCTestCase {
    func testProfiledStepsAreTheSameStepsSplitByKind() throws {
        for backend in TestBackends.available {
            let plain = try trainSmallNetwork(on: backend, steps: 3)
            let profiler = Backends.profiling(backend)
            let profiled = try trainSmallNetwork(on: profiler, steps: 3) { profiler.collect() }
            XCTAssertEqual(profiled.parameters, plain.parameters, backend.name)
            XCTAssertEqual(profiled.losses, plain.losses, backend.name)

            let p = profiler.profile()
            XCTAssertEqual(p.spans, 3, backend.name)
            let calls = { (k: KernelKind) in p.calls[k] ?? 0 }
            // Every 3x3x3 convolution runs forward and has its weight gradient; all but the first (on the input
            // image) pass a gradient back.
            XCTAssertGreaterThan(calls(.convolutionForward), 0, backend.name)
            XCTAssertEqual(calls(.convolutionBackwardFilter), calls(.convolutionForward), backend.name)
            XCTAssertEqual(calls(.convolutionBackwardData), calls(.convolutionForward) - 1, backend.name)
            let convolutions = Network(config: try NetworkConfig(variant: .paper, channels: 4, patch: 16), backend: backend)
                .parameterTable.entries.filter { $0.shape.count == 5 && $0.shape.suffix(3) == [3, 3, 3] }.count
            XCTAssertGreaterThanOrEqual(calls(.convolutionForward), convolutions, backend.name)
            // Batch norm forward and backward; one loss and one Adam step; no segmentation bookkeeping.
            XCTAssertGreaterThan(calls(.batchNormBackward), 0, backend.name)
            XCTAssertGreaterThanOrEqual(calls(.batchNormForward), calls(.batchNormBackward), backend.name)
            XCTAssertEqual(calls(.lossOptimizer), 2, backend.name)
            XCTAssertEqual(calls(.segmentation), 0, backend.name)
            // Each call's time lies inside the span: nothing negative, and the calls together within the total.
            for (k, s) in p.seconds { XCTAssertGreaterThanOrEqual(s, 0, "\(backend.name) \(k)") }
            XCTAssertGreaterThan(p.total, 0, backend.name)
            let marks = Double(p.calls.values.reduce(0, +))
            XCTAssertGreaterThanOrEqual(p.between, -1e-6 * marks, backend.name)  // GPU events resolve to about 0.5 us
            XCTAssertEqual(profiler.profile(reset: true).spans, 3)
            XCTAssertEqual(profiler.profile().spans, 0)
        }
    }

    /// Batch norm's and pooling's bytes: each activation operand once, a tensor read and written twice.
    func testItCountsTheBytesOfTheActivationsACallStreams() throws {
        let backend = CPUBackend(threads: 1)
        let profiler = Backends.profiling(backend)
        let c = 3, e = Extent3(4, 4, 6), n = c * e.voxels
        func zeros(_ k: Int) -> TensorRef { TensorRef(buffer: backend.allocate(k)) }
        let x = zeros(n), y = zeros(n), dy = zeros(n), dx = zeros(n)
        let ones = TensorRef(buffer: backend.allocate(c)), saved = BatchNormSaved(zeros(BatchNormSaved.count(channels: c)), channels: c)
        var one: [Float] = [1, 1, 1]
        one.withUnsafeBufferPointer { backend.upload($0.baseAddress!, to: ones) }
        profiler.collect()  // a span starts at its first mark
        profiler.batchNormTrainForward(input: x, output: y, channels: c, voxels: e.voxels, gamma: ones, beta: zeros(c),
                                       runningMean: zeros(c), runningVar: ones, saved: saved, momentum: 0.1, epsilon: 1e-5,
                                       relu: true)
        profiler.batchNormBackward(input: x, gradOutput: dy, gradInput: dx, channels: c, voxels: e.voxels, gamma: ones,
                                   saved: saved, gradGamma: zeros(c), gradBeta: zeros(c), relu: true, accumulate: true)
        profiler.maxPool2Forward(input: x, output: zeros(n / 8), channels: c, extent: e)
        profiler.collect()
        let p = profiler.profile()
        XCTAssertEqual(p.spans, 1)
        XCTAssertEqual(p.bytes[.batchNormForward], Double(2 * n * 4))
        XCTAssertEqual(p.bytes[.batchNormBackward], Double(4 * n * 4))  // x, dy, and dx read and written
        XCTAssertEqual(p.bytes[.poolingUpsampling], Double((n + n / 8) * 4))
        XCTAssertNil(p.bytes[.convolutionForward])
        XCTAssertTrue(p.table(title: "t").contains("GB/s"))
        XCTAssertNotNil((p.json["bytes"] as? [String: Double])?["batch norm backward"])
    }

    /// The profile names each convolution a step runs (shape and pass), as `bench --conv-sweep` times them.
    func testItCountsEachConvolutionShapeAndPass() throws {
        let backend = CPUBackend(threads: 2)
        let profiler = Backends.profiling(backend)
        _ = try trainSmallNetwork(on: profiler, steps: 2) { profiler.collect() }
        let p = profiler.profile()
        for direction in ConvolutionDirection.allCases {
            let kind: KernelKind = direction == .forward ? .convolutionForward
                : direction == .backwardData ? .convolutionBackwardData : .convolutionBackwardFilter
            // Per span, like `calls`: the counts per shape add up to the calls of that kind.
            XCTAssertEqual(p.convolutions.filter { $0.key.direction == direction }.values.reduce(0, +), p.calls[kind], "\(direction)")
        }
        // Every 3x3x3 weight [cout, cin, 3, 3, 3] of the network runs forward and has its weight gradient with those channels.
        let net = Network(config: try NetworkConfig(variant: .paper, channels: 4, patch: 16), backend: backend)
        let weights = net.parameterTable.entries.filter { $0.shape.count == 5 && $0.shape.suffix(3) == [3, 3, 3] }
        for w in weights {
            for direction in [ConvolutionDirection.forward, .backwardFilter] {
                XCTAssertTrue(p.convolutions.keys.contains { $0.direction == direction && $0.shape.outChannels == w.shape[0]
                                                             && $0.shape.inChannels == w.shape[1] }, "\(w.name) \(direction)")
            }
        }
        // The first convolution reads the image and the instance memory at full size; nothing passes a gradient to them.
        let first = ConvolutionShape(inChannels: 2, outChannels: 4, extent: Extent3(cube: 16))
        XCTAssertEqual(p.convolutions[ConvolutionCall(first, .forward)], 1)
        XCTAssertNil(p.convolutions[ConvolutionCall(first, .backwardData)])
        XCTAssertTrue(p.convolutions.keys.allSatisfy { [16, 8, 4, 2].contains($0.shape.extent.d) })
        // A new span starts empty: a forward pass alone has no backward convolutions.
        profiler.enabled = true
        let inference = Network(config: try NetworkConfig(variant: .paper, channels: 4, patch: 16), backend: profiler, use: .inference)
        inference.forward(training: false)
        profiler.collect()
        let f = profiler.profile(reset: true).convolutions
        XCTAssertFalse(f.isEmpty)
        XCTAssertTrue(f.keys.allSatisfy { $0.direction == .forward })
    }

    /// The sweep's arithmetic: each convolution's best form (padded or not) times its count, per variant and pass.
    func testConvolutionSweepTotalsAndReport() throws {
        let e = Extent3(cube: 32)
        let input = ConvolutionCall(ConvolutionShape(inChannels: 2, outChannels: 16, extent: e), .forward)
        let inner = ConvolutionCall(ConvolutionShape(inChannels: 16, outChannels: 16, extent: e), .backwardFilter)
        let tf32 = ConvolutionVariant(.tf32, .ncdhw), last = ConvolutionVariant(.tf32, .ndhwc), bf16 = ConvolutionVariant(.bf16, .ndhwc)
        XCTAssertEqual(ConvolutionVariant.sweep(from: tf32), [tf32, last, bf16, ConvolutionVariant(.bf16, .ncdhw)])
        XCTAssertEqual(ConvolutionVariant.sweep(from: ConvolutionVariant(.fp32, .ncdhw)).first, ConvolutionVariant(.fp32, .ncdhw))
        XCTAssertEqual(ConvolutionVariant.sweep(from: ConvolutionVariant(.fp32, .ncdhw)).count, 5)
        XCTAssertEqual(ConvolutionVariant.sweep(from: last), [last, tf32, bf16, ConvolutionVariant(.bf16, .ncdhw)])
        XCTAssertNil(tf32.paddedInChannels(2))
        XCTAssertEqual(last.paddedInChannels(2), 8)
        XCTAssertNil(last.paddedInChannels(16))
        var sweep = ConvolutionSweep(calls: [input: 1, inner: 3], baseline: tf32, device: "test")
        func t(_ ms: Double, _ a: Int = 1) -> AlgorithmTiming { AlgorithmTiming(algorithm: a, seconds: ms / 1e3, workspaceBytes: 0) }
        sweep.measurements = [
            SweepMeasurement(call: input, variant: tf32, timedInChannels: 2, deterministic: t(2), fastest: t(1)),
            SweepMeasurement(call: inner, variant: tf32, timedInChannels: 16, deterministic: t(4), fastest: t(3)),
            // Channels-last: the padded input is faster than the 2-channel one; the deterministic pick has no fastest twin.
            SweepMeasurement(call: input, variant: last, timedInChannels: 2, deterministic: t(5), fastest: t(5)),
            SweepMeasurement(call: input, variant: last, timedInChannels: 8, deterministic: t(1.5), fastest: t(0.5)),
            SweepMeasurement(call: inner, variant: last, timedInChannels: 16, deterministic: nil, fastest: t(1)),
            SweepMeasurement(call: input, variant: bf16, timedInChannels: 2, problem: "descriptors: CUDNN_STATUS_NOT_SUPPORTED"),
            SweepMeasurement(call: inner, variant: bf16, timedInChannels: 16, deterministic: t(1), fastest: t(1)),
        ]
        sweep.skipped = [ConvolutionVariant(.fp32, .ncdhw)]
        XCTAssertEqual(sweep.orderedCalls, [inner, input])  // 16 input channels before 2 at the same size
        XCTAssertEqual(sweep.variants, [tf32, last, bf16])
        XCTAssertEqual(try XCTUnwrap(sweep.seconds(tf32, deterministicOnly: true)), 0.014, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(sweep.seconds(tf32, deterministicOnly: false)), 0.010, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(sweep.seconds(tf32, deterministicOnly: true, direction: .forward)), 0.002, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(sweep.seconds(tf32, deterministicOnly: true, direction: .backwardData)), 0, accuracy: 0)
        XCTAssertEqual(sweep.best(input, last, deterministicOnly: false)?.timedInChannels, 8)
        XCTAssertEqual(try XCTUnwrap(sweep.seconds(last, deterministicOnly: false)), 0.0035, accuracy: 1e-12)
        XCTAssertNil(sweep.seconds(last, deterministicOnly: true))  // no deterministic algorithm for one convolution
        XCTAssertNil(sweep.seconds(bf16, deterministicOnly: true))  // one convolution refused
        let inputFlops: Double = 2 * 27 * 2 * 16 * 32768, innerFlops: Double = 2 * 27 * 16 * 16 * 32768
        XCTAssertEqual(sweep.flops, inputFlops + 3 * innerFlops)

        let table = sweep.table()
        XCTAssertTrue(table.contains("4 convolutions per span (2 distinct), test"), table)
        XCTAssertTrue(table.contains("tf32 ncdhw    deterministic     2.00     0.00     12.00      14.00"), table)
        XCTAssertTrue(table.contains("1.00x"), table)
        XCTAssertTrue(table.contains("0.25x"), table)  // channels-last, any algorithm: 3.5 ms of 14
        XCTAssertTrue(table.contains("CUDNN_STATUS_NOT_SUPPORTED"), table)
        XCTAssertTrue(table.contains("not (fully) timed (time budget): fp32 ncdhw"), table)
        let json = sweep.json
        let data = try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])  // serialisable as it is
        let back = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let variants = try XCTUnwrap(back["variants"] as? [String: [String: [String: Any]]])
        XCTAssertEqual(variants["tf32_ndhwc"]?["any"]?["total_seconds"] as? Double ?? 0, 0.0035, accuracy: 1e-12)
        XCTAssertTrue(variants["tf32_ndhwc"]?["deterministic"]?["total_seconds"] is NSNull)
        XCTAssertEqual((back["measurements"] as? [Any])?.count, 7)
        XCTAssertEqual(back["skipped"] as? [String], ["fp32 ncdhw"])
        XCTAssertEqual(back["baseline"] as? String, "tf32 ncdhw")
    }

    func testAProfilerSwitchedOffMarksNothing() throws {
        let profiler = Backends.profiling(CPUBackend(threads: 2))
        profiler.enabled = false
        _ = try trainSmallNetwork(on: profiler, steps: 3) { profiler.collect() }
        XCTAssertEqual(profiler.profile().spans, 0)
        XCTAssertTrue(profiler.profile().calls.isEmpty)
    }
}

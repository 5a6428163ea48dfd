import IFCNCompute
@testable import IFCNEngine
import XCTest

final class NetworkTests: XCTestCase {
    func testConfigValidation() {
        XCTAssertThrowsError(try NetworkConfig(variant: .paper, channels: 4, patch: 24))
        XCTAssertThrowsError(try NetworkConfig(variant: .paper, channels: 4, patch: 8))
        XCTAssertThrowsError(try NetworkConfig(variant: .paper, channels: 0, patch: 16))
        XCTAssertEqual(try NetworkConfig(variant: .paper, channels: 64, patch: 128).classificationBlocks, 3)
    }

    /// Activations and their gradients share one arena by liveness (`TrainingArena`): a gradient takes the memory
    /// of activations the backward pass is done with. That must change no bit of training: two steps (the second
    /// on the memory the first left behind) give the same probabilities, losses, gradients, running statistics,
    /// weights and training overlap as with activations and gradients apart, in less memory. The shared arena also
    /// recomputes batch-norm outputs in the backward pass (`TrainingArena.Recomputation`), which must change no
    /// bit either. A lifetime too short by one op (a backward read left out of `Graph.backwardReads`) fails this.
    func testSharedTrainingArenaChangesNoBit() throws {
        for v in Variant.allCases {
            for (c, p) in [(8, 32), (3, 16)] {
                let config = try NetworkConfig(variant: v, channels: c, patch: p)
                let backend = CPUBackend(threads: 2)
                func train(shared: Bool) -> (values: [[Float]], overlaps: [Int], bytes: Int, recomputed: Int) {
                    let net = Network(config: config, backend: backend, seed: 7, use: .training, sharedArena: shared)
                    let adam = Adam(network: net, learningRate: 1e-3)
                    var r = SeededGenerator(seed: 11)
                    var values: [[Float]] = [], overlaps: [Int] = []
                    for step in 0..<2 {
                        let input = randomValues(2 * config.voxels, &r)
                        let target = (0..<config.voxels).map { _ in Float(r.next() % 2) }
                        let weight = randomValues(config.voxels, &r).map { abs($0) + 0.5 }
                        input.withUnsafeBufferPointer { net.setInput($0.baseAddress!) }
                        net.forward(training: true)
                        values.append(net.readSegmentation())
                        net.zeroGradients()
                        let loss = target.withUnsafeBufferPointer { t in
                            weight.withUnsafeBufferPointer { net.backward(target: t.baseAddress!, weight: $0.baseAddress!, completenessLabel: Float(step)) }
                        }
                        values += [[Float(loss.total), Float(loss.completeness)], net.readGradients(), net.readBuffers()]
                        adam.update()
                        values.append(net.readParameters())
                        let o = net.trainingOverlap()
                        overlaps += [o.predicted, o.reference, o.intersection]
                    }
                    return (values, overlaps, net.allocatedBytes, net.trainingArena!.recomputations.count)
                }
                let shared = train(shared: true), apart = train(shared: false), label = "\(config)"
                XCTAssertEqual(shared.values.count, apart.values.count, label)
                for (k, (a, b)) in zip(shared.values, apart.values).enumerated() {
                    XCTAssertTrue(a == b, "\(label): value set \(k) differs")
                }
                XCTAssertEqual(shared.overlaps, apart.overlaps, label)
                XCTAssertGreaterThan(Set(shared.values[2]).count, 100, label)  // gradients that depend on the data
                XCTAssertLessThan(Double(shared.bytes), 0.95 * Double(apart.bytes), label)
                XCTAssertGreaterThan(shared.recomputed, 0, label)
                XCTAssertEqual(apart.recomputed, 0, label)
            }
        }
    }

    /// At the paper's size the arena holds less than the activations alone: batch norm's backward pass reads only
    /// its input, and where a convolution's weight gradient reads a norm's output the backward pass recomputes it
    /// (`TrainingArena.Recomputation`), so the full-size outputs inside the blocks need not live until then. That
    /// is more than 1 GiB less than with every output kept (5,887 MiB, session 15), far less than activations and
    /// gradients apart, and the whole network leaves 2 GiB for cuDNN's workspace below PyTorch float32's peak for
    /// the same step on the H200 (7,244 MiB, docs/BENCHMARKS.md).
    func testTheTrainingArenaAtThePapersSize() throws {
        let config = try NetworkConfig(variant: .paper, channels: 64, patch: 128)
        let g = Graph.build(config), plan = Network.planBackward(g)
        let arena = TrainingArena(graph: g, plan: plan), kept = TrainingArena(graph: g, plan: plan, recomputing: false)
        let mib = { (floats: Int) in Double(floats) / 262_144 }
        XCTAssertEqual(mib(arena.separateSize.activations), 5366, accuracy: 1)
        XCTAssertGreaterThan(mib(arena.separateSize.gradients), 2048)
        XCTAssertLessThan(mib(kept.size), mib(arena.separateSize.activations) + 600)
        XCTAssertLessThan(mib(arena.size), mib(kept.size) - 1024)
        XCTAssertLessThan(mib(arena.size), mib(arena.separateSize.activations) - 512)
        XCTAssertFalse(arena.recomputations.isEmpty)
        XCTAssertTrue(kept.recomputations.isEmpty)
        XCTAssertLessThan(config.networkBytes / 1_048_576, 7244 - 2048)
    }

    /// A network built for inference (activation memory shared by liveness, eval batch norm and sigmoid in
    /// place, batch norm fused into the CPU's Winograd convolutions) gives the same bits as the training
    /// network's eval-mode forward pass, also after a pass on other input (so no activation depends on what the
    /// arena held before), in less memory. With the rule's algorithms and with each Winograd forced (whose
    /// epilogue then applies the batch norms).
    func testInferenceNetworkMatchesTheTrainingNetworkInLessMemory() throws {
        var algorithms: [ConvolutionAlgorithm?] = [nil]
        if ConvolutionAlgorithm.directKernelsSupported { algorithms += [.winograd, .winograd4] }
        for v in Variant.allCases {
            for algorithm in algorithms {
                let config = try NetworkConfig(variant: v, channels: 8, patch: 32)
                let backend = CPUBackend(threads: 2, convolutionAlgorithm: algorithm)
                let training = Network(config: config, backend: backend, seed: 4)
                let inference = Network(config: config, backend: backend, seed: 4, use: .inference)
                // Running statistics from training-mode passes, so eval mode sees what training saw.
                var r = SeededGenerator(seed: 9)
                let warmup = randomValues(2 * config.voxels, &r)
                warmup.withUnsafeBufferPointer { training.setInput($0.baseAddress!) }
                for _ in 0..<20 { training.forward(training: true) }
                inference.loadBuffers(training.readBuffers())
                func pass(_ net: Network, _ seed: UInt64) -> ([Float], Double) {
                    var r = SeededGenerator(seed: seed)
                    let input = randomValues(2 * config.voxels, &r)
                    input.withUnsafeBufferPointer { net.setInput($0.baseAddress!) }
                    net.forward(training: false)
                    return (net.readSegmentation(), net.completeness)
                }
                let label = "\(v) \(algorithm.map(\.rawValue) ?? "rule")"
                let (segA, clsA) = pass(training, 1), (segB, clsB) = pass(training, 2)
                let (segA2, clsA2) = pass(inference, 1), (segB2, clsB2) = pass(inference, 2)
                XCTAssertTrue(segA == segA2, label); XCTAssertEqual(clsA, clsA2, label)
                XCTAssertTrue(segB == segB2, label); XCTAssertEqual(clsB, clsB2, label)
                XCTAssertGreaterThan(Set(segA).count, 1000, label)  // an output that depends on the input
                XCTAssertFalse(segA == segB, label)
                XCTAssertLessThan(Double(inference.arenaCount), 0.5 * Double(training.arenaCount), label)
            }
        }
    }

    /// Measured batch-norm statistics (`segment --scan-statistics`): after patches 0...k the running statistics are
    /// the equal-weight mean of what each patch alone gives, the same on an inference network (its batch norms run
    /// in place) as on a training network, and the weights do not change.
    func testMeasuredStatisticsAreThePatchesMeanOnAnyNetwork() throws {
        for v in Variant.allCases {
            let config = try NetworkConfig(variant: v, channels: 4, patch: 16)
            let backend = CPUBackend(threads: 2)
            let training = Network(config: config, backend: backend, seed: 6)
            let inference = Network(config: config, backend: backend, seed: 6, use: .inference)
            let weights = training.readParameters()
            var r = SeededGenerator(seed: 11)
            // Patches with different intensity levels and spreads, as patches of different scans would have.
            let patches = (0..<3).map { k in randomValues(2 * config.voxels, &r, scale: 1 + Double(k)).map { $0 + Float(k) } }
            var alone: [[Float]] = []
            for p in patches {
                p.withUnsafeBufferPointer { training.setInput($0.baseAddress!) }
                training.measureBatchNormStatistics(index: 0)
                alone.append(training.readBuffers())
            }
            for net in [training, inference] {
                for (k, p) in patches.enumerated() {
                    p.withUnsafeBufferPointer { net.setInput($0.baseAddress!) }
                    net.measureBatchNormStatistics(index: k)
                }
            }
            let measured = training.readBuffers()
            XCTAssertEqual(inference.readBuffers(), measured, "\(v): inference network")
            XCTAssertEqual(training.readParameters(), weights, "\(v): weights")
            XCTAssertEqual(training.batchesTracked.values.reduce(0, +), 0, "\(v): a measurement is not a training step")
            for i in measured.indices {
                let mean = (Double(alone[0][i]) + Double(alone[1][i]) + Double(alone[2][i])) / 3
                XCTAssertEqual(Double(measured[i]), mean, accuracy: 1e-5 * max(1, abs(mean)), "\(v): statistic \(i)")
            }
            XCTAssertNotEqual(alone[0], alone[2], "\(v): the patches differ in what they measure")
        }
    }

    /// On an inference network the measuring pass writes no activation memory that an eval-mode pass leaves
    /// untouched. Where the fused convolution + batch norm writes into a skip connection's concatenation buffer, the
    /// convolution's own output block is never written by an eval pass; the measuring pass had written it, which
    /// cost 0.5 GB of resident memory at C=64, P=128 (`segment --scan-statistics`). Winograd forces the fused path
    /// at this small size.
    func testMeasuringWritesOnlyMemoryTheEvalPassWrites() throws {
        for v in Variant.allCases {
            let config = try NetworkConfig(variant: v, channels: 4, patch: 16)
            let net = Network(config: config, backend: CPUBackend(threads: 2, convolutionAlgorithm: .winograd), seed: 6, use: .inference)
            var r = SeededGenerator(seed: 12)
            let patch = randomValues(2 * config.voxels, &r)
            let sentinel = [Float](repeating: .nan, count: net.arena.count)
            func written(_ pass: () -> Void) -> Set<Int> {
                net.write(sentinel, to: net.arena)
                patch.withUnsafeBufferPointer { net.setInput($0.baseAddress!) }
                pass()
                let values = net.read(net.arena)
                return Set(values.indices.filter { !values[$0].isNaN })
            }
            let byEval = written { net.forward(training: false) }
            let byMeasuring = written { net.measureBatchNormStatistics(index: 0) }
            XCTAssertTrue(byMeasuring.isSubset(of: byEval),
                          "\(v): the measuring pass writes \(byMeasuring.subtracting(byEval).count) floats the eval pass does not")
            if v == .paper {
                XCTAssertLessThan(byEval.count, net.arena.count, "the paper variant has convolution outputs the fused pass skips")
            }
        }
    }

    /// Same seed and threads: bit-identical training steps; a training step lowers the loss on
    /// a repeated example.
    func testDeterministicTrainingStepsReduceLoss() throws {
        func run() throws -> ([Float], [Double]) {
            let r = try trainSmallNetwork(on: CPUBackend(threads: 2), steps: 8)
            return (r.parameters, r.losses)
        }
        let (p1, l1) = try run(), (p2, l2) = try run()
        XCTAssertEqual(p1, p2)
        XCTAssertEqual(l1, l2)
        XCTAssertLessThan(l1.last!, 0.7 * l1.first!, "loss \(l1)")
    }
}

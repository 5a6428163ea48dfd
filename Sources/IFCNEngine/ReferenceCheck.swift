import Foundation
import IFCNCompute

/// Comparison of one tensor with a reference.
public struct TensorComparison: Sendable {
    public let name: String
    public let relativeL2: Double
    public let maxAbs: Double
    public let passed: Bool
}

/// Result of running a PyTorch fixture (docs/REFERENCE_FIXTURES.md) through the engine.
public struct ReferenceCheckReport: Sendable {
    public let config: NetworkConfig
    public var comparisons: [TensorComparison] = []
    public var skipped: [String] = []
    /// What the engine computed, by fixture tensor name (to compare backends or repeated runs).
    public var computed: [String: [Float]] = [:]
    public var passed: Bool { comparisons.allSatisfy(\.passed) }

    /// The comparisons judged with PyTorch float32's own errors on the same fixture
    /// (tools/pytorch_f32_baseline.py): a tensor that misses the README tolerance still passes where
    /// PyTorch float32 misses it too and ifcn's error is at most `pytorchPrecisionFactor` times PyTorch's.
    public func judged(pytorchFloat32Errors baseline: [String: Double]) -> [TensorComparison] {
        comparisons.map { c in
            guard !c.passed, let torch = baseline[c.name], torch > ReferenceCheck.relativeL2Tolerance else { return c }
            return TensorComparison(name: c.name, relativeL2: c.relativeL2, maxAbs: c.maxAbs,
                                    passed: c.relativeL2 <= torch * ReferenceCheck.pytorchPrecisionFactor)
        }
    }

    /// Names whose values differ in any bit from `other`'s.
    public func bitwiseDifferences(from other: ReferenceCheckReport) -> [String] {
        computed.keys.sorted().filter { name in
            guard let b = other.computed[name], let a = computed[name], a.count == b.count else { return true }
            return !zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern }
        }
    }

    /// Each tensor against `other`'s result of the same fixture (another backend), largest distance first: within
    /// the README tolerance of each other; or, for a tensor where PyTorch float32 itself misses that tolerance
    /// against the reference (ill-conditioned, in `baseline`: Adam's first step on tiny gradients), both results
    /// within their accepted error of the reference (`judged`), since two float32 results each that close to it
    /// may lie further apart than the tolerance.
    public func agreement(with other: ReferenceCheckReport, pytorchFloat32Errors baseline: [String: Double]?) -> [TensorComparison] {
        let mine = Dictionary(uniqueKeysWithValues: judged(pytorchFloat32Errors: baseline ?? [:]).map { ($0.name, $0.passed) })
        let theirs = Dictionary(uniqueKeysWithValues: other.judged(pytorchFloat32Errors: baseline ?? [:]).map { ($0.name, $0.passed) })
        return computed.keys.compactMap { name -> TensorComparison? in
            guard let a = computed[name], let b = other.computed[name], a.count == b.count else { return nil }
            let (rel, mx) = compare(a, b)
            let illConditioned = (baseline?[name] ?? 0) > ReferenceCheck.relativeL2Tolerance
            let passed = rel <= ReferenceCheck.relativeL2Tolerance || (illConditioned && mine[name] == true && theirs[name] == true)
            return TensorComparison(name: name, relativeL2: rel, maxAbs: mx, passed: passed)
        }.sorted { $0.relativeL2 > $1.relativeL2 }
    }
}

/// Relative L2 error ||a - b|| / ||b|| and max |a - b|, in float64.
public func compare(_ a: [Float], _ b: [Float]) -> (relativeL2: Double, maxAbs: Double) {
    precondition(a.count == b.count)
    var num = 0.0, den = 0.0, mx = 0.0
    for i in 0..<a.count {
        let d = Double(a[i]) - Double(b[i])
        num += d * d; den += Double(b[i]) * Double(b[i]); mx = max(mx, abs(d))
    }
    return (den > 0 ? (num / den).squareRoot() : num.squareRoot(), mx)
}

public enum ReferenceCheck {
    /// Tolerances of docs/REFERENCE_FIXTURES.md.
    public static let relativeL2Tolerance = 1e-3
    public static let probabilityMaxAbsTolerance = 1e-4
    /// Where a fixture is too ill-conditioned for float32, the fixture README's bar for an engine
    /// that claims PyTorch's precision: at most this factor times PyTorch float32's own error.
    public static let pytorchPrecisionFactor = 1.5

    /// Runs what the fixture holds: eval forward; train forward, loss, backward, running
    /// statistics, one Adam step. Compares every tensor present; lists what it skipped.
    public static func run(path: String, threads: Int? = nil) throws -> ReferenceCheckReport {
        try run(path: path, backend: Backends.cpu(threads: threads))
    }

    /// The same check on any backend.
    public static func run(path: String, backend: any ComputeBackend) throws -> ReferenceCheckReport {
        let file = try SafeTensorsFile(path: path)
        func meta(_ k: String, _ alt: String? = nil) throws -> String {
            if let v = file.metadata[k] ?? alt.flatMap({ file.metadata[$0] }) { return v }
            throw EngineError.safetensors(path: path, message: "metadata key '\(k)' missing: not a reference fixture")
        }
        guard let variant = Variant(rawValue: try meta("arch", "variant")) else {
            throw EngineError.safetensors(path: path, message: "unknown arch '\(file.metadata["arch"] ?? "")'")
        }
        guard let channels = Int(try meta("channels")), let patch = Int(try meta("patch")) else {
            throw EngineError.safetensors(path: path, message: "channels/patch metadata are not integers")
        }
        let config = try NetworkConfig(variant: variant, channels: channels, patch: patch)
        let net = Network(config: config, backend: backend)
        var report = ReferenceCheckReport(config: config)

        var params = [Float](repeating: 0, count: net.parameterTable.total)
        for t in net.parameterTable.entries {
            let v = try file.floats("param/" + t.name, shape: t.shape)
            params.replaceSubrange(t.offset..<(t.offset + t.count), with: v)
        }
        net.loadParameters(params)
        var stats = [Float](repeating: 0, count: net.bufferTable.total)
        for t in net.bufferTable.entries {
            let v = try file.floats("buffer/" + t.name, shape: t.shape)
            stats.replaceSubrange(t.offset..<(t.offset + t.count), with: v)
        }
        net.loadBuffers(stats)
        let P = patch, V = config.voxels
        let input = try file.floats("input", shape: [1, 2, P, P, P])
        input.withUnsafeBufferPointer { net.setInput($0.baseAddress!) }

        func check(_ name: String, _ got: [Float], probability: Bool = false) throws {
            guard file.has(name) else { report.skipped.append(name); return }
            let want = try file.floats(name)
            guard want.count == got.count else {
                throw EngineError.safetensors(path: path, message: "\(name) has \(want.count) values, engine made \(got.count)")
            }
            report.computed[name] = got
            let (rel, mx) = compare(got, want)
            let ok = rel <= relativeL2Tolerance && (!probability || mx <= probabilityMaxAbsTolerance)
            report.comparisons.append(TensorComparison(name: name, relativeL2: rel, maxAbs: mx, passed: ok))
        }

        if file.has("eval/seg") || file.has("eval/cls") {
            net.forward(training: false)
            try check("eval/seg", net.readSegmentation(), probability: true)
            try check("eval/cls", [Float(net.completeness)])
        } else {
            report.skipped += ["eval/seg", "eval/cls"]
        }

        guard file.has("train/seg") || file.has("train/loss") || file.has("target") else {
            report.skipped.append("train/* grad/* adam1/* buffer_after/* (eval-only fixture)")
            return report
        }
        net.forward(training: true)
        try check("train/seg", net.readSegmentation(), probability: true)
        try check("train/cls", [Float(net.completeness)])
        let target = try file.floats("target", shape: [1, 1, P, P, P])
        let weight = try file.floats("weight", shape: [1, 1, P, P, P])
        let label = try file.floats("c_label")
        guard target.count == V, label.count == 1 else {
            throw EngineError.safetensors(path: path, message: "target/c_label have unexpected sizes")
        }
        net.zeroGradients()
        let loss = target.withUnsafeBufferPointer { t in
            weight.withUnsafeBufferPointer { w in
                net.backward(target: t.baseAddress!, weight: w.baseAddress!, completenessLabel: label[0])
            }
        }
        try check("train/loss", [Float(loss.total), Float(loss.segmentation), Float(loss.classification)])
        let grads = net.readGradients()
        for t in net.parameterTable.entries {
            try check("grad/" + t.name, Array(grads[t.offset..<(t.offset + t.count)]))
        }
        let after = net.readBuffers()
        for t in net.bufferTable.entries {
            try check("buffer_after/" + t.name, Array(after[t.offset..<(t.offset + t.count)]))
        }
        let adam = Adam(network: net, learningRate: Float(file.metadata["lr"].flatMap(Double.init) ?? 1e-3))
        adam.update()
        let stepped = net.readParameters()
        for t in net.parameterTable.entries {
            try check("adam1/" + t.name, Array(stepped[t.offset..<(t.offset + t.count)]))
        }
        return report
    }
}

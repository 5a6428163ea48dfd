import Foundation
import IFCNSupport

/// How CT intensities become network input: clamp(HU) * scale.
public struct IntensityNormaliser: Codable, Sendable, Equatable {
    public var clamp: [Float]?
    public var scale: Float

    public init(clamp: [Float]?, scale: Float) { self.clamp = clamp; self.scale = scale }

    /// The paper's: clamp to [-1000, 3000] HU, divide by 1000.
    public static let paper = IntensityNormaliser(clamp: [-1000, 3000], scale: 0.001)
    /// An imported public-implementation model: identity.
    public static let identity = IntensityNormaliser(clamp: nil, scale: 1)

    @inline(__always)
    public func apply(_ hu: Float) -> Float {
        if let c = clamp { return min(max(hu, c[0]), c[1]) * scale }
        return hu * scale
    }

    public var json: String {
        let c = clamp.map { "[\($0[0]), \($0[1])]" } ?? "null"
        return "{\"clamp\": \(c), \"scale\": \(scale)}"
    }

    /// Parses the metadata JSON; the clamp must be two finite numbers lo < hi and the scale finite and non-zero.
    public static func parse(_ s: String) throws -> IntensityNormaliser {
        guard let d = s.data(using: .utf8), let v = try? JSONDecoder().decode(IntensityNormaliser.self, from: d),
              v.clamp == nil || v.clamp!.count == 2 else {
            throw EngineError.invalidConfig("intensity must be JSON {\"clamp\": [lo, hi] or null, \"scale\": s}, got \(quoted(s))")
        }
        if let c = v.clamp, !(c[0].isFinite && c[1].isFinite && c[0] < c[1]) {
            throw EngineError.invalidConfig("intensity clamp must be two finite numbers lo < hi, got \(c)")
        }
        guard v.scale.isFinite, v.scale != 0 else {
            throw EngineError.invalidConfig("intensity scale must be finite and non-zero, got \(v.scale)")
        }
        return v
    }
}

/// What a model needs besides its weights to segment a scan.
public struct ModelInfo: Sendable, Equatable {
    public var config: NetworkConfig
    public var spacingMM: Double
    public var intensity: IntensityNormaliser
    public init(config: NetworkConfig, spacingMM: Double, intensity: IntensityNormaliser) {
        self.config = config; self.spacingMM = spacingMM; self.intensity = intensity
    }
}

/// Optimiser and progress state saved alongside the weights.
public struct TrainingState: Sendable {
    public var iteration: Int
    public var adamStep: Int
    public var firstMoment: [Float]
    public var secondMoment: [Float]
    public var metadata: [String: String]
    public init(iteration: Int, adamStep: Int, firstMoment: [Float], secondMoment: [Float], metadata: [String: String] = [:]) {
        self.iteration = iteration; self.adamStep = adamStep
        self.firstMoment = firstMoment; self.secondMoment = secondMoment; self.metadata = metadata
    }
}

/// A checkpoint read from disk, validated against its configuration.
public struct LoadedCheckpoint: Sendable {
    public let path: String
    public let info: ModelInfo
    public let parameters: [Float]
    public let buffers: [Float]
    public let training: TrainingState?
    public let metadata: [String: String]
}

/// Safetensors checkpoints whose tensor names are the reference's PyTorch state_dict names,
/// so PyTorch loads ours and we load theirs. Training state lives under `optimizer.` prefixes
/// and metadata keys.
public enum Checkpoint {
    public static let firstMomentPrefix = "optimizer.exp_avg."
    public static let secondMomentPrefix = "optimizer.exp_avg_sq."

    public static func save(network: Network, info: ModelInfo, training: TrainingState? = nil,
                            metadata extra: [String: String] = [:], to path: String) throws {
        precondition(info.config == network.config)
        var w = SafeTensorsWriter()
        let params = network.readParameters(), stats = network.readBuffers()
        for t in network.parameterTable.entries {
            w.add(t.name, floats: params[t.offset..<(t.offset + t.count)], shape: t.shape)
        }
        for t in network.bufferTable.entries {
            w.add(t.name, floats: stats[t.offset..<(t.offset + t.count)], shape: t.shape)
        }
        for (prefix, n) in network.batchesTracked {
            w.add(prefix + ".num_batches_tracked", int64s: [Int64(n)], shape: [])
        }
        var meta = extra
        meta["format"] = "ifcn-checkpoint-1"
        meta["variant"] = info.config.variant.rawValue
        meta["channels"] = String(info.config.channels)
        meta["patch"] = String(info.config.patch)
        meta["spacing_mm"] = String(info.spacingMM)
        meta["intensity"] = info.intensity.json
        if let training {
            for t in network.parameterTable.entries {
                w.add(firstMomentPrefix + t.name, floats: training.firstMoment[t.offset..<(t.offset + t.count)], shape: t.shape)
                w.add(secondMomentPrefix + t.name, floats: training.secondMoment[t.offset..<(t.offset + t.count)], shape: t.shape)
            }
            meta["iteration"] = String(training.iteration)
            meta["adam_step"] = String(training.adamStep)
            for (k, v) in training.metadata { meta[k] = v }
        }
        w.metadata = meta
        try w.write(to: path)
    }

    /// Reads a checkpoint. A file without our metadata (a plain PyTorch export) needs `config`;
    /// when both exist they must agree.
    public static func load(path: String, config override: NetworkConfig? = nil,
                            spacingMM: Double? = nil, intensity: IntensityNormaliser? = nil) throws -> LoadedCheckpoint {
        let file = try SafeTensorsFile(path: path)
        let m = file.metadata
        func fail(_ s: String) -> EngineError { .checkpoint(path: path, message: s) }
        let info = try CheckpointMetadata.modelInfo(m, path: path, override: override, spacingMM: spacingMM, intensity: intensity)
        let config = info.config
        let layout = Graph.build(config)
        func gather(_ table: TensorTable, prefix: String) throws -> [Float] {
            // Every tensor present with its shape before anything is allocated: the buffer is then no larger
            // than the file, whatever the metadata claims.
            for t in table.entries {
                let name = prefix + t.name
                guard let info = file.tensors[name] else {
                    throw fail("missing tensor \(name): the file does not hold a \(config) network")
                }
                guard info.shape == t.shape else {
                    throw fail("tensor \(name) has shape \(info.shape), a \(config) network needs \(t.shape)")
                }
            }
            var out = [Float](repeating: 0, count: table.total)
            for t in table.entries {
                let name = prefix + t.name
                let values = try file.floats(name)
                if let bad = values.firstIndex(where: { !$0.isFinite }) {
                    throw fail("tensor \(name) holds \(values[bad]) at element \(bad): the weights are not finite")
                }
                if name.hasSuffix("running_var"), let bad = values.firstIndex(where: { $0 < 0 }) {
                    throw fail("tensor \(name) holds a negative variance \(values[bad]) at element \(bad)")
                }
                out.replaceSubrange(t.offset..<(t.offset + t.count), with: values)
            }
            return out
        }
        let params = try gather(layout.parameters, prefix: "")
        let stats = try gather(layout.buffers, prefix: "")
        var training: TrainingState?
        if let it = m["iteration"].flatMap(Int.init), file.has(firstMomentPrefix + layout.parameters.entries[0].name) {
            training = TrainingState(iteration: it, adamStep: m["adam_step"].flatMap(Int.init) ?? it,
                                     firstMoment: try gather(layout.parameters, prefix: firstMomentPrefix),
                                     secondMoment: try gather(layout.parameters, prefix: secondMomentPrefix),
                                     metadata: m)
        }
        return LoadedCheckpoint(path: path, info: info,
                                parameters: params, buffers: stats, training: training, metadata: m)
    }

    /// Puts loaded weights and running statistics into a network of the same configuration.
    public static func apply(_ c: LoadedCheckpoint, to network: Network) {
        precondition(c.info.config == network.config)
        network.loadParameters(c.parameters)
        network.loadBuffers(c.buffers)
    }
}

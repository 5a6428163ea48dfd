/// The two architectures of the reference: `paper` (independent blocks, conv -> BN -> ReLU)
/// and `seed` (the public PyTorch implementation: shared blocks, conv(bias) -> ReLU -> BN).
public enum Variant: String, Sendable, Codable, CaseIterable {
    case paper, seed
}

/// What fixes the network's shape.
public struct NetworkConfig: Hashable, Sendable, CustomStringConvertible {
    public var variant: Variant
    public var channels: Int
    public var patch: Int

    /// A configuration; channels in `channelRange`, patch a power of two in 16...`maxPatch`, and the network
    /// must fit in `MemoryLimit` (see NetworkSize.swift).
    public init(variant: Variant, channels: Int, patch: Int) throws {
        guard NetworkConfig.channelRange.contains(channels) else {
            throw EngineError.invalidConfig("channels must be in \(NetworkConfig.channelRange.lowerBound)..."
                                            + "\(NetworkConfig.channelRange.upperBound), got \(channels)")
        }
        guard patch >= 16, patch <= NetworkConfig.maxPatch, patch & (patch - 1) == 0 else {
            throw EngineError.invalidConfig("patch must be a power of two from 16 to \(NetworkConfig.maxPatch), got \(patch)")
        }
        self.variant = variant
        self.channels = channels
        self.patch = patch
        try checkMemory()
    }

    /// Number of maxpool -> block steps of the completeness head: log2(P) - 4.
    public var classificationBlocks: Int { patch.trailingZeroBitCount - 4 }
    public var voxels: Int { patch * patch * patch }
    public var description: String { "\(variant.rawValue) C=\(channels) P=\(patch)" }
}

public enum EngineError: Error, CustomStringConvertible {
    case invalidConfig(String)
    case safetensors(path: String, message: String)
    case checkpoint(path: String, message: String)

    public var description: String {
        switch self {
        case .invalidConfig(let m): return "invalid network configuration: \(m)"
        case .safetensors(let p, let m): return "\(p): \(m)"
        case .checkpoint(let p, let m): return "\(p): \(m)"
        }
    }
}

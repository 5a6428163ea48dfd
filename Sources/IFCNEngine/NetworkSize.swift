import IFCNSupport

/// Bounds on the numbers that fix a network's size, checked where a configuration is made (command line,
/// checkpoint metadata), so that no value can make `Network` ask for more memory than there is.
extension NetworkConfig {
    /// Channels C accepted (the paper uses 64).
    public static let channelRange = 1...4096
    /// Largest patch P accepted (the paper uses 128).
    public static let maxPatch = 1024

    /// Bytes of float32 storage a new `Network` of this configuration holds: the sum `Network.allocatedBytes`
    /// reports before training adds the gradient arena (parameters, statistics, activation arena, saved batch
    /// statistics, target and weight patches). Computed in Double, so no configuration can overflow it.
    public var networkBytes: Double {
        let g = Graph.build(self)
        return 4 * (3 * Double(g.parameters.total) + Double(g.buffers.total) + Double(g.arenaSize)
                    + Double(g.savedStatsSize) + 2 * Double(voxels))
    }

    /// Throws `EngineError.invalidConfig` when the network would need more than `MemoryLimit` allows.
    func checkMemory() throws {
        do {
            try MemoryLimit.check(networkBytes, "a \(self) network would need \(MemoryLimit.describe(count: networkBytes / 4)) floats")
        } catch let error as TooLarge {
            throw EngineError.invalidConfig(error.message)
        }
    }
}

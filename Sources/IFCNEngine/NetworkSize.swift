import IFCNSupport

/// Bounds on the numbers that fix a network's size, checked where a configuration is made (command line,
/// checkpoint metadata), so that no value can make `Network` ask for more memory than there is.
extension NetworkConfig {
    /// Channels C accepted (the paper uses 64).
    public static let channelRange = 1...4096
    /// Largest patch P accepted (the paper uses 128).
    public static let maxPatch = 1024

    /// Bytes of float32 storage a new training `Network` of this configuration holds, as `Network.allocatedBytes`
    /// reports them (parameters and their gradients, running statistics, the arena of activations and their
    /// gradients, saved batch statistics, target and weight patches), without allocating anything. Summed
    /// in Double, so no configuration can overflow it.
    public var networkBytes: Double {
        let g = Graph.build(self)
        let arena = TrainingArena(graph: g, plan: Network.planBackward(g))
        return 4 * (2 * Double(g.parameters.total) + Double(g.buffers.total) + Double(arena.size)
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

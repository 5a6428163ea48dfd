import IFCNCompute
import IFCNSupport

/// Bounds on the numbers that fix a network's size, checked where a configuration is made (command line,
/// checkpoint metadata), so that no value can make `Network` ask for more memory than there is.
extension NetworkConfig {
    /// Channels C accepted (the paper uses 64).
    public static let channelRange = 1...4096
    /// Largest patch P accepted (the paper uses 128).
    public static let maxPatch = 1024

    /// Bytes of storage a new training `Network` of this configuration holds with float32 activations, as
    /// `Network.allocatedBytes` reports them (parameters and their gradients, running statistics, the arena of
    /// activations and their gradients, saved batch statistics, target and weight patches), without allocating
    /// anything. Summed in Double, so no configuration can overflow it.
    public var networkBytes: Double { networkBytes(activations: .fp32) }

    /// The same with the arena in `activations` (`ComputeBackend.allocateActivations`); the rest is float32.
    public func networkBytes(activations: ElementFormat) -> Double {
        let g = Graph.build(self)
        let arena = TrainingArena(graph: g, plan: Network.planBackward(g))
        let float32Elements = 2 * g.parameters.total + g.buffers.total + g.savedStatsSize + 2 * voxels
        return 4 * Double(float32Elements) + Double(activations.bytes) * Double(arena.size)
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

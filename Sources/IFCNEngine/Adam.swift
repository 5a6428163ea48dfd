import IFCNCompute

/// Adam with PyTorch's semantics over the network's flat parameter buffer: one loop, one state.
public final class Adam {
    public var learningRate: Float
    public let beta1: Float, beta2: Float, epsilon: Float
    public private(set) var step = 0
    public let firstMoment: TensorRef
    public let secondMoment: TensorRef
    let network: Network

    public init(network: Network, learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999,
                epsilon: Float = 1e-8) {
        self.network = network
        self.learningRate = learningRate
        self.beta1 = beta1; self.beta2 = beta2; self.epsilon = epsilon
        let n = network.parameters.count
        firstMoment = TensorRef(buffer: network.backend.allocate(n))
        secondMoment = TensorRef(buffer: network.backend.allocate(n))
    }

    /// Applies one update with the network's current gradients.
    public func update() {
        step += 1
        network.backend.adamStep(parameters: network.parameters, gradients: network.gradients,
                                 firstMoment: firstMoment, secondMoment: secondMoment,
                                 learningRate: learningRate, beta1: beta1, beta2: beta2, epsilon: epsilon, step: step)
    }

    /// Restores saved state (checkpoint resume).
    public func restore(step: Int, firstMoment m: [Float], secondMoment v: [Float]) {
        self.step = step
        network.write(m, to: firstMoment)
        network.write(v, to: secondMoment)
    }

    public func readState() -> (step: Int, firstMoment: [Float], secondMoment: [Float]) {
        (step, network.read(firstMoment), network.read(secondMoment))
    }
}

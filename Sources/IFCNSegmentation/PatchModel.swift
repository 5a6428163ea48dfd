import IFCNEngine

/// What the segmenter asks of a model: one patch in, segmentation probabilities and a completeness out.
/// The network is the real implementation; tests use stand-ins that know the ground truth.
protocol PatchModel: AnyObject {
    /// Evaluates one P^3 patch. `image` holds normalised intensities, `memory` the instance memory (0/1),
    /// both x fastest; `origin` is the patch's first voxel as an index of the canonical image (it may be
    /// negative: the patch reaches into the padding). Writes P^3 probabilities; returns the completeness.
    func evaluate(image: UnsafePointer<Float>, memory: UnsafePointer<Float>, origin: SIMD3<Int>,
                  probabilities: UnsafeMutablePointer<Float>) -> Double
}

/// The network as a patch model (eval mode: running batch-norm statistics).
final class NetworkPatchModel: PatchModel {
    let network: Network

    init(network: Network) { self.network = network }

    func evaluate(image: UnsafePointer<Float>, memory: UnsafePointer<Float>, origin: SIMD3<Int>,
                  probabilities: UnsafeMutablePointer<Float>) -> Double {
        network.setInput(image: image, memory: memory)
        network.forward(training: false)
        network.readSegmentation(into: probabilities)
        return network.completeness
    }
}

import IFCNCompute
import IFCNEngine

/// What the instance walk asks of a model. It holds the scan and the instance memory for a walk (`begin`),
/// evaluates a patch against them, and learns each accepted instance (`remember`). Per evaluation only the
/// thresholded output (one bit a voxel) and the completeness come back.
protocol PatchModel: AnyObject {
    /// Starts a walk over `image` (normalised intensities of a scan of `size` voxels, x fastest); `fill` is the
    /// value outside the scan; the memory starts empty.
    func begin(image: [Float], size: SIMD3<Int>, fill: Float)
    /// Evaluates the P^3 patch at `origin` (its first voxel; it may reach outside the scan) against the memory.
    /// Writes which voxels have probability > 0.5 (bit i % 32 of word i / 32, patch index i, x fastest) and
    /// returns the completeness.
    func evaluate(origin: SIMD3<Int>, above: UnsafeMutablePointer<UInt32>) -> Double
    /// Adds the scan voxels `indices` (linear, x fastest) to the memory.
    func remember(_ indices: [Int])
    /// The probabilities of the last evaluation (P^3).
    func readProbabilities(into destination: UnsafeMutablePointer<Float>)
    /// Ends the walk (the scan and memory are released).
    func end()
}

/// The network as a patch model, on its own backend: the scan and the memory live there (on a GPU they never
/// cross to the host), each evaluation copies its two input channels out of them on the backend, runs the
/// network (eval mode: running batch-norm statistics) and brings back the thresholded output as bits.
final class NetworkPatchModel: PatchModel {
    let network: Network
    private var scan: (image: TensorRef, memory: TensorRef, size: SIMD3<Int>, fill: Float)?

    init(network: Network) { self.network = network }

    func begin(image: [Float], size: SIMD3<Int>, fill: Float) {
        let b = network.backend
        let voxels = size.x * size.y * size.z
        precondition(image.count == voxels, "image of \(image.count) voxels for a scan of \(voxels)")
        let imageTensor = TensorRef(buffer: b.allocate(voxels))
        image.withUnsafeBufferPointer { b.upload($0.baseAddress!, to: imageTensor) }
        // Fresh buffers are zero-initialised: an empty memory.
        scan = (imageTensor, TensorRef(buffer: b.allocate(PatchBox.maskElements(voxels: voxels))), size, fill)
    }

    func evaluate(origin: SIMD3<Int>, above: UnsafeMutablePointer<UInt32>) -> Double {
        guard let scan else { preconditionFailure("evaluate before begin") }
        let b = network.backend, input = network.inputChannels
        let box = PatchBox(scan: scan.size, origin: origin, side: network.config.patch)
        b.extractPatch(scan.image, box: box, fill: scan.fill, into: input.image)
        b.extractMaskPatch(scan.memory, box: box, into: input.memory)
        network.forward(training: false)
        b.thresholdBits(network.segmentationProbabilities, above: 0.5, into: above)
        return network.completeness
    }

    func remember(_ indices: [Int]) {
        guard let scan else { preconditionFailure("remember before begin") }
        indices.withUnsafeBufferPointer { network.backend.markVoxels(scan.memory, indices: $0) }
    }

    func readProbabilities(into destination: UnsafeMutablePointer<Float>) {
        network.readSegmentation(into: destination)
    }

    func end() { scan = nil }
}

/// A model that computes on host patches: it is given the image and memory patches (P^3, x fastest) and
/// writes P^3 probabilities. The tests' ground-truth stand-ins are such models; `HostPatchAdapter` walks them.
protocol HostPatchModel: AnyObject {
    /// `origin` is the patch's first voxel as an index of the canonical image (it may be negative: the patch
    /// reaches into the padding). Returns the completeness.
    func evaluate(image: UnsafePointer<Float>, memory: UnsafePointer<Float>, origin: SIMD3<Int>,
                  probabilities: UnsafeMutablePointer<Float>) -> Double
}

/// A `HostPatchModel` as a `PatchModel`: the scan and memory on the host, patches copied out by the CPU
/// backend's own loops.
final class HostPatchAdapter: PatchModel {
    let model: HostPatchModel
    let patch: Int
    private let host = CPUBackend(threads: 1)
    private var scan: (image: TensorRef, memory: TensorRef, size: SIMD3<Int>, fill: Float)?
    private let imagePatch: TensorRef, memoryPatch: TensorRef, probabilities: TensorRef

    init(_ model: HostPatchModel, patch: Int) {
        self.model = model
        self.patch = patch
        let v = patch * patch * patch
        imagePatch = TensorRef(buffer: host.allocate(v))
        memoryPatch = TensorRef(buffer: host.allocate(v))
        probabilities = TensorRef(buffer: host.allocate(v))
    }

    func begin(image: [Float], size: SIMD3<Int>, fill: Float) {
        let voxels = size.x * size.y * size.z
        let imageTensor = TensorRef(buffer: host.allocate(voxels))
        image.withUnsafeBufferPointer { host.upload($0.baseAddress!, to: imageTensor) }
        scan = (imageTensor, TensorRef(buffer: host.allocate(PatchBox.maskElements(voxels: voxels))), size, fill)
    }

    func evaluate(origin: SIMD3<Int>, above: UnsafeMutablePointer<UInt32>) -> Double {
        guard let scan else { preconditionFailure("evaluate before begin") }
        let box = PatchBox(scan: scan.size, origin: origin, side: patch)
        host.extractPatch(scan.image, box: box, fill: scan.fill, into: imagePatch)
        host.extractMaskPatch(scan.memory, box: box, into: memoryPatch)
        let completeness = model.evaluate(image: imagePatch.host, memory: memoryPatch.host, origin: origin,
                                          probabilities: probabilities.host)
        host.thresholdBits(probabilities, above: 0.5, into: above)
        return completeness
    }

    func remember(_ indices: [Int]) {
        guard let scan else { preconditionFailure("remember before begin") }
        indices.withUnsafeBufferPointer { host.markVoxels(scan.memory, indices: $0) }
    }

    func readProbabilities(into destination: UnsafeMutablePointer<Float>) {
        destination.update(from: probabilities.host, count: probabilities.count)
    }

    func end() { scan = nil }
}

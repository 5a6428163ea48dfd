import IFCNCompute
import IFCNEngine

/// What the instance walk asks of a model. For a walk (`begin` ... `end`) it holds the scan, the instance
/// memory and the labels; it evaluates a patch against them and accepts what it found. Per evaluation only
/// scalars come back: the memory's hash under the patch, the voxels above 0.5 (count and coordinate sums)
/// and the completeness.
protocol PatchModel: AnyObject {
    /// Starts a walk over `image` (normalised intensities of a scan of `size` voxels, x fastest); `fill` is the
    /// value outside the scan; memory and labels start empty.
    func begin(image: [Float], size: SIMD3<Int>, fill: Float)
    /// A hash of the memory under the P^3 patch at `origin` (its first voxel; the patch may reach outside the scan).
    func memoryHash(origin: SIMD3<Int>) -> UInt64
    /// Evaluates the patch at `origin` against the memory: its voxels inside the scan with probability > 0.5
    /// (the fragment), and the completeness.
    func evaluate(origin: SIMD3<Int>) -> (fragment: VoxelSums, completeness: Double)
    /// From now until `end`, normalise with (1 - `weight`) x the model's batch-norm statistics + `weight` x the
    /// scan's own, measured on the patches at `origins` with an empty memory (`SegmentationOptions.scanStatistics`).
    func adaptStatistics(origins: [SIMD3<Int>], weight: Double)
    /// The last evaluation's fragment voxels that have no label yet.
    func unlabelled() -> VoxelSums
    /// Gives the last evaluation's unlabelled fragment voxels `label` and adds the whole fragment to the memory.
    func accept(label: Int32)
    /// The probabilities of the last evaluation (P^3).
    func readProbabilities(into destination: UnsafeMutablePointer<Float>)
    /// The labels (0 = none), x fastest.
    func readLabels() -> [Int32]
    /// Ends the walk (scan, memory and labels are released).
    func end()
}

/// The scan, memory and labels of one walk on a backend, and the patch evaluated last: the state behind both
/// patch models.
struct ScanOnBackend {
    let backend: any ComputeBackend
    let image: TensorRef, memory: TensorRef, labels: TensorRef
    let size: SIMD3<Int>, fill: Float, patch: Int
    var last: PatchBox?

    init(backend: any ComputeBackend, image: [Float], size: SIMD3<Int>, fill: Float, patch: Int) {
        let voxels = size.x * size.y * size.z
        precondition(image.count == voxels, "image of \(image.count) voxels for a scan of \(voxels)")
        self.backend = backend
        let scan = TensorRef(buffer: backend.allocate(voxels))
        image.withUnsafeBufferPointer { backend.upload($0.baseAddress!, to: scan) }
        self.image = scan
        // Fresh buffers are zero-initialised: an empty memory and no labels.
        memory = TensorRef(buffer: backend.allocate(PatchBox.maskElements(voxels: voxels)))
        labels = TensorRef(buffer: backend.allocate(voxels))
        self.size = size
        self.fill = fill
        self.patch = patch
    }

    func box(_ origin: SIMD3<Int>) -> PatchBox { PatchBox(scan: size, origin: origin, side: patch) }

    /// Copies the patch at `box`'s two input channels out of the scan and the memory.
    func extract(_ box: PatchBox, image: TensorRef, memory: TensorRef) {
        backend.extractPatch(self.image, box: box, fill: fill, into: image)
        backend.extractMaskPatch(self.memory, box: box, into: memory)
    }

    func readLabels() -> [Int32] {
        var out = [Int32](repeating: 0, count: labels.count)
        out.withUnsafeMutableBytes { backend.download(labels, to: $0.baseAddress!.assumingMemoryBound(to: Float.self)) }
        return out
    }
}

/// The network as a patch model, on its own backend: the scan, the memory and the labels live there (on a GPU
/// they never cross to the host); each evaluation copies its two input channels out of them on the backend and
/// runs the network (eval mode: running batch-norm statistics).
final class NetworkPatchModel: PatchModel {
    let network: Network
    private var scan: ScanOnBackend?
    /// The model's own running statistics while a walk uses adapted ones (restored by `end`).
    private var modelStatistics: [Float]?

    init(network: Network) { self.network = network }

    private var current: (ScanOnBackend, PatchBox) {
        guard let scan, let box = scan.last else { preconditionFailure("no evaluation in this walk yet") }
        return (scan, box)
    }

    func begin(image: [Float], size: SIMD3<Int>, fill: Float) {
        scan = ScanOnBackend(backend: network.backend, image: image, size: size, fill: fill, patch: network.config.patch)
    }

    func memoryHash(origin: SIMD3<Int>) -> UInt64 {
        guard let scan else { preconditionFailure("memoryHash before begin") }
        return network.backend.maskHash(scan.memory, box: scan.box(origin))
    }

    func evaluate(origin: SIMD3<Int>) -> (fragment: VoxelSums, completeness: Double) {
        guard scan != nil else { preconditionFailure("evaluate before begin") }
        let box = scan!.box(origin), input = network.inputChannels
        scan!.extract(box, image: input.image, memory: input.memory)
        network.forward(training: false)
        scan!.last = box
        return (network.backend.fragmentSums(network.segmentationProbabilities, box: box, unlabelledIn: nil), network.completeness)
    }

    func adaptStatistics(origins: [SIMD3<Int>], weight: Double) {
        guard scan != nil else { preconditionFailure("adaptStatistics before begin") }
        precondition((0...1).contains(weight), "statistics weight \(weight)")
        guard weight > 0, !origins.isEmpty else { return }
        let model = modelStatistics ?? network.readBuffers()
        modelStatistics = model
        let input = network.inputChannels
        for (index, origin) in origins.enumerated() {
            scan!.extract(scan!.box(origin), image: input.image, memory: input.memory)
            network.measureBatchNormStatistics(index: index)
        }
        let w = Float(weight)
        network.loadBuffers(zip(model, network.readBuffers()).map { (1 - w) * $0 + w * $1 })
    }

    func unlabelled() -> VoxelSums {
        let (scan, box) = current
        return network.backend.fragmentSums(network.segmentationProbabilities, box: box, unlabelledIn: scan.labels)
    }

    func accept(label: Int32) {
        let (scan, box) = current
        network.backend.acceptFragment(network.segmentationProbabilities, box: box, mask: scan.memory, labels: scan.labels, label: label)
    }

    func readProbabilities(into destination: UnsafeMutablePointer<Float>) { network.readSegmentation(into: destination) }

    func readLabels() -> [Int32] { scan?.readLabels() ?? [] }

    func end() {
        scan = nil
        if let m = modelStatistics { network.loadBuffers(m) }
        modelStatistics = nil
    }
}

/// A model that computes on host patches: it is given the image and memory patches (P^3, x fastest) and
/// writes P^3 probabilities. The tests' ground-truth stand-ins are such models; `HostPatchAdapter` walks them.
protocol HostPatchModel: AnyObject {
    /// `origin` is the patch's first voxel as an index of the canonical image (it may be negative: the patch
    /// reaches into the padding). Returns the completeness.
    func evaluate(image: UnsafePointer<Float>, memory: UnsafePointer<Float>, origin: SIMD3<Int>,
                  probabilities: UnsafeMutablePointer<Float>) -> Double
}

/// A `HostPatchModel` as a `PatchModel`: the scan, memory and labels in host memory, handled by the CPU
/// backend's own loops.
final class HostPatchAdapter: PatchModel {
    let model: HostPatchModel
    let patch: Int
    private let host = CPUBackend(threads: 1)
    private var scan: ScanOnBackend?
    private let imagePatch: TensorRef, memoryPatch: TensorRef, probabilities: TensorRef

    init(_ model: HostPatchModel, patch: Int) {
        self.model = model
        self.patch = patch
        let v = patch * patch * patch
        imagePatch = TensorRef(buffer: host.allocate(v))
        memoryPatch = TensorRef(buffer: host.allocate(v))
        probabilities = TensorRef(buffer: host.allocate(v))
    }

    private var current: (ScanOnBackend, PatchBox) {
        guard let scan, let box = scan.last else { preconditionFailure("no evaluation in this walk yet") }
        return (scan, box)
    }

    func begin(image: [Float], size: SIMD3<Int>, fill: Float) {
        scan = ScanOnBackend(backend: host, image: image, size: size, fill: fill, patch: patch)
    }

    func memoryHash(origin: SIMD3<Int>) -> UInt64 {
        guard let scan else { preconditionFailure("memoryHash before begin") }
        return host.maskHash(scan.memory, box: scan.box(origin))
    }

    func evaluate(origin: SIMD3<Int>) -> (fragment: VoxelSums, completeness: Double) {
        guard scan != nil else { preconditionFailure("evaluate before begin") }
        let box = scan!.box(origin)
        scan!.extract(box, image: imagePatch, memory: memoryPatch)
        let completeness = model.evaluate(image: imagePatch.host, memory: memoryPatch.host, origin: origin,
                                          probabilities: probabilities.host)
        scan!.last = box
        return (host.fragmentSums(probabilities, box: box, unlabelledIn: nil), completeness)
    }

    func adaptStatistics(origins: [SIMD3<Int>], weight: Double) {
        precondition(weight == 0, "a host patch model has no batch-norm statistics to adapt")
    }

    func unlabelled() -> VoxelSums {
        let (scan, box) = current
        return host.fragmentSums(probabilities, box: box, unlabelledIn: scan.labels)
    }

    func accept(label: Int32) {
        let (scan, box) = current
        host.acceptFragment(probabilities, box: box, mask: scan.memory, labels: scan.labels, label: label)
    }

    func readProbabilities(into destination: UnsafeMutablePointer<Float>) {
        destination.update(from: probabilities.host, count: probabilities.count)
    }

    func readLabels() -> [Int32] { scan?.readLabels() ?? [] }

    func end() { scan = nil }
}

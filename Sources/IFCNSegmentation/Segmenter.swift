import Foundation
import IFCNEngine
import IFCNSupport
import IFCNVolume

/// Iterative instance segmentation of whole scans with a trained network: vertebrae are found one at a
/// time, superior to inferior, and labelled 1...K.
public final class Segmenter {
    public let info: ModelInfo
    public var options: SegmentationOptions
    /// Receives one line per decision of the instance walk (why each position did or did not add an instance).
    public var explain: ((String) -> Void)?
    let model: PatchModel

    /// A segmenter running `network` (whose configuration must be `info.config`).
    public init(network: Network, info: ModelInfo, options: SegmentationOptions = .init()) {
        precondition(network.config == info.config, "network \(network.config) does not match model \(info.config)")
        self.info = info
        self.options = options
        model = NetworkPatchModel(network: network)
    }

    /// A segmenter over a model of host patches (tests use ground-truth stand-ins).
    init(model: HostPatchModel, info: ModelInfo, options: SegmentationOptions = .init()) {
        self.info = info
        self.options = options
        self.model = HostPatchAdapter(model, patch: info.config.patch)
    }

    /// Segments `image` (HU) that is already on a canonical grid (identity direction) at `info.spacingMM`.
    /// Labels and reports refer to that grid.
    public func segmentCanonical(_ image: Volume, progress: ((String) -> Void)? = nil) -> SegmentationResult {
        walkCanonical(image, keepProbabilities: false, progress: progress).result
    }

    /// `segmentCanonical`, also returning each output label's probabilities when `keepProbabilities`.
    func walkCanonical(_ image: Volume, keepProbabilities: Bool, progress: ((String) -> Void)?)
        -> (result: SegmentationResult, probabilities: [(label: Int32, probability: InstanceProbability)]) {
        let start = DispatchTime.now().uptimeNanoseconds
        return walkCanonical(normalised: normalise(image.voxels), grid: image.grid, keepProbabilities: keepProbabilities,
                             since: start, progress: progress)
    }

    /// The walk over network input `normalised` (channel 0, see `normalise`) on the canonical grid `g`; the
    /// result's seconds count from `start` (a `DispatchTime` uptime in nanoseconds).
    func walkCanonical(normalised: [Float], grid g: Grid, keepProbabilities: Bool, since start: UInt64,
                       progress: ((String) -> Void)?)
        -> (result: SegmentationResult, probabilities: [(label: Int32, probability: InstanceProbability)]) {
        let walk = InstanceWalk(image: normalised, size: g.size, patch: info.config.patch, model: model,
                                options: options, minVoxels: options.minVoxels(spacing: g.spacing),
                                paddingValue: info.intensity.apply(-1000))
        walk.keepProbabilities = keepProbabilities
        walk.explain = explain
        walk.run(progress: progress)

        // Superior to inferior (high z first), optionally without incomplete instances.
        var kept = walk.found
        if options.dropIncomplete {
            let before = kept.count
            kept = kept.filter { $0.completeness >= 0.5 }
            if kept.count < before { progress?("dropped \(before - kept.count) incomplete instances") }
        }
        kept.sort { a, b in a.centroid.z != b.centroid.z ? a.centroid.z > b.centroid.z : a.label < b.label }
        var newLabel = [Int32](repeating: 0, count: walk.found.count + 1)
        for (i, f) in kept.enumerated() { newLabel[f.label] = Int32(i + 1) }
        var labels = LabelVolume(grid: g)
        walk.readLabels().withUnsafeBufferPointer { src in
            labels.voxels.withUnsafeMutableBufferPointer { dst in
                let s = src.baseAddress!, d = dst.baseAddress!
                newLabel.withUnsafeBufferPointer { map in
                    parallelChunks(count: src.count, parts: voxelChunks(src.count)) { r in
                        for i in r { d[i] = map[Int(s[i])] }
                    }
                }
            }
        }
        let instances = kept.enumerated().map { i, f in
            let c = g.world(f.centroid)
            return InstanceReport(label: i + 1, voxels: f.voxels, centroidMM: [c.x, c.y, c.z],
                                  completeness: f.completeness, evaluations: f.evaluations, moves: f.moves)
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        progress?("\(instances.count) instances, \(walk.evaluations) evaluations, " + String(format: "%.1f s", seconds))
        let probabilities = kept.enumerated().compactMap { i, f in f.probability.map { (label: Int32(i + 1), probability: $0) } }
        return (SegmentationResult(labels: labels, instances: instances, evaluations: walk.evaluations, seconds: seconds),
                probabilities)
    }

    /// Segments a scan on any grid: resamples it to canonical at `info.spacingMM` (`options.downsampling`
    /// first, then linear, -1000 HU outside),
    /// segments, and brings the labels back onto the scan's own grid (`options.labelResampling`: each
    /// instance's probabilities trilinear, or the labels nearest). The result has exactly the input's size,
    /// spacing, origin and direction; voxel counts and centroids refer to that grid. Throws
    /// `TooLarge` when the canonical grid at the model's spacing would exceed the voxel or memory limits.
    /// The same as `segment(prepare(image))`.
    public func segmentScan(_ image: Volume, progress: ((String) -> Void)? = nil) throws -> SegmentationResult {
        segment(try prepare(image, progress: progress), progress: progress)
    }

    /// The part of `segmentScan` that needs no network: resamples `image` to the canonical grid at
    /// `info.spacingMM` and normalises its intensities. Reads only `info` and `options`, so it may run on
    /// another thread while `segment` works on another scan. Throws `TooLarge` when the canonical grid would
    /// exceed the voxel or memory limits.
    public func prepare(_ image: Volume, progress: ((String) -> Void)? = nil) throws -> PreparedScan {
        let start = DispatchTime.now().uptimeNanoseconds
        let canonical = try resampleToCanonical(image, spacing: info.spacingMM, interpolation: .linear, fill: -1000,
                                                filter: options.downsampling)
        let c = canonical.grid.size
        progress?("canonical grid \(c.x)x\(c.y)x\(c.z) at \(info.spacingMM) mm")
        let normalised = normalise(canonical.voxels)
        return PreparedScan(scanGrid: image.grid, canonicalGrid: canonical.grid, normalised: normalised,
                            seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }

    /// The network part of `segmentScan`: walks `scan` on its canonical grid and brings the labels back onto
    /// the scan's own grid. The result's seconds include the preparation's.
    public func segment(_ scan: PreparedScan, progress: ((String) -> Void)? = nil) -> SegmentationResult {
        let start = DispatchTime.now().uptimeNanoseconds
        let byProbability = options.labelResampling == .probability
        let (inner, probabilities) = walkCanonical(normalised: scan.normalised, grid: scan.canonicalGrid,
                                                   keepProbabilities: byProbability, since: start, progress: progress)
        let labels = byProbability
            ? IFCNSegmentation.labels(from: probabilities, canonical: scan.canonicalGrid, onto: scan.scanGrid)
            : resample(inner.labels, onto: scan.scanGrid)
        let stats = Dictionary(uniqueKeysWithValues: VertebraInfo.collect(from: labels).map { ($0.label, $0) })
        let instances = inner.instances.map { r -> InstanceReport in
            var r = r
            r.voxels = stats[r.label]?.voxels ?? 0
            if let c = stats[r.label]?.centroidMM { r.centroidMM = [c.x, c.y, c.z] }
            return r
        }
        let seconds = scan.seconds + Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return SegmentationResult(labels: labels, instances: instances, evaluations: inner.evaluations, seconds: seconds)
    }

    /// Network input channel 0 for the whole image.
    func normalise(_ hu: [Float]) -> [Float] {
        let norm = info.intensity
        return [Float](unsafeUninitializedCapacity: hu.count) { out, n in
            let o = out.baseAddress!
            hu.withUnsafeBufferPointer { src in
                let s = src.baseAddress!
                parallelChunks(count: hu.count, parts: voxelChunks(hu.count)) { r in
                    for i in r { (o + i).initialize(to: norm.apply(s[i])) }
                }
            }
            n = hu.count
        }
    }
}

/// Parts for a voxel-wise pass over `n` voxels: one (inline) below 64 Ki voxels, else four per core.
func voxelChunks(_ n: Int) -> Int { n < 1 << 16 ? min(n, 1) : chunkCount(for: n) }

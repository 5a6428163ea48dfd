import Foundation
import IFCNVolume

/// Parameters of the iterative instance segmentation (docs/METHOD.md, "Inference").
public struct SegmentationOptions: Sendable {
    /// Smallest vertebra volume (mm^3) a segmentation must add to be accepted (n_min).
    public var minVolumeMM3: Double = 1000
    /// Convergence: the patch stops when its centre would move by at most this many voxels in every axis.
    public var sigma: Double = 2
    /// Most patch moves while following one fragment (then the mean of the last two centres is used).
    public var maxMoves: Int = 20
    /// Drop instances whose completeness probability is below 0.5 (and renumber the rest).
    public var dropIncomplete: Bool = false
    /// Most instances found in one scan; the walk stops when reached.
    public var maxInstances: Int = 64
    /// How `segmentScan` brings the labels back onto the scan's grid.
    public var labelResampling: LabelResampling = .probability
    /// Filter of the scan before it is resampled to the model's spacing: the one the model's training data had.
    public var downsampling: DownsamplingFilter = .gaussian
    /// Batch norm normalises with (1 - w) x the model's running statistics + w x the scan's own, measured on the
    /// grid positions' patches before the walk (0: the model's, as PyTorch's eval mode; docs/ACCURACY.md).
    public var scanStatistics: Double = 0

    public init() {}

    /// n_min in voxels for voxels of `spacing` mm (at least 1; at most 2^40, more than any image holds, so a
    /// tiny spacing cannot overflow the conversion).
    public func minVoxels(spacing: SIMD3<Double>) -> Int {
        let voxelVolume = spacing.x * spacing.y * spacing.z
        let n = (minVolumeMM3 / voxelVolume).rounded()
        guard n.isFinite, n < Double(1 << 40) else { return n.isNaN ? 1 : 1 << 40 }
        return max(1, Int(n))
    }
}

extension DownsamplingFilter {
    /// Checkpoint metadata key of the filter the model's training data was resampled with.
    public static let metadataKey = "downsampling"

    /// The filter a checkpoint's model was trained with: its `downsampling` metadata, or `.none` for a
    /// checkpoint without it (trained before the filter existed, or a plain PyTorch export).
    public static func ofCheckpoint(_ metadata: [String: String], path: String) throws -> DownsamplingFilter {
        guard let text = metadata[metadataKey] else { return .none }
        guard let filter = DownsamplingFilter(rawValue: text) else {
            throw VolumeError(path: path, message: "checkpoint metadata \(metadataKey) \"\(text)\" is not one of "
                              + DownsamplingFilter.allCases.map(\.rawValue).joined(separator: ", "))
        }
        return filter
    }
}

/// One segmented vertebra.
public struct InstanceReport: Codable, Sendable, Equatable {
    /// Label in the output, 1...K superior to inferior.
    public var label: Int
    /// Voxels carrying the label in the output grid.
    public var voxels: Int
    /// Centroid in world coordinates (LPS mm) of the output grid's voxels.
    public var centroidMM: [Double]
    /// Completeness probability the network gave when the instance was accepted.
    public var completeness: Double
    /// Network evaluations spent finding this instance (from the first look at the position to acceptance).
    public var evaluations: Int
    /// Patch moves while following the fragment.
    public var moves: Int

    public init(label: Int, voxels: Int, centroidMM: [Double], completeness: Double, evaluations: Int, moves: Int) {
        self.label = label
        self.voxels = voxels
        self.centroidMM = centroidMM
        self.completeness = completeness
        self.evaluations = evaluations
        self.moves = moves
    }
}

/// Output of segmenting one scan.
public struct SegmentationResult: Sendable {
    /// Instance labels 1...K, superior to inferior; 0 background.
    public var labels: LabelVolume
    /// One report per label, in label order.
    public var instances: [InstanceReport]
    /// Network evaluations in total.
    public var evaluations: Int
    /// Wall time in seconds.
    public var seconds: Double

    public init(labels: LabelVolume, instances: [InstanceReport], evaluations: Int, seconds: Double) {
        self.labels = labels
        self.instances = instances
        self.evaluations = evaluations
        self.seconds = seconds
    }
}

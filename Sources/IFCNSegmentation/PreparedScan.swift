import IFCNVolume

/// A scan made ready for the network by `Segmenter.prepare`: resampled to the model's canonical grid and
/// normalised. It holds no network state, so one scan can be prepared on another thread while the network
/// works on the previous one (`ifcn segment` over a folder).
public struct PreparedScan: Sendable {
    /// The scan's own grid, which `Segmenter.segment` brings the labels back onto.
    public let scanGrid: Grid
    /// The canonical grid (identity direction, the model's spacing) that the walk runs on.
    public let canonicalGrid: Grid
    /// Network input channel 0 over `canonicalGrid`, x fastest (`Segmenter.normalise` of the resampled HU).
    let normalised: [Float]
    /// Seconds the preparation took (counted into the segmentation's seconds).
    public let seconds: Double
}

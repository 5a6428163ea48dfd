/// One 3x3x3 convolution shape: channels in and out over a volume of `extent` (padding 1, stride 1).
public struct ConvolutionShape: Hashable, Sendable, CustomStringConvertible {
    public let inChannels: Int, outChannels: Int, extent: Extent3
    public init(inChannels: Int, outChannels: Int, extent: Extent3) {
        self.inChannels = inChannels; self.outChannels = outChannels; self.extent = extent
    }
    public var description: String { "\(inChannels)->\(outChannels) at \(extent)" }
    /// Multiply-adds of one pass in any direction, times two.
    public var flops: Double { 2 * 27 * Double(inChannels) * Double(outChannels) * Double(extent.voxels) }
}

/// Which pass of a convolution (the raw values are the CUDA shim's direction codes).
public enum ConvolutionDirection: Int32, CaseIterable, Sendable, CustomStringConvertible {
    case forward = 0, backwardData = 1, backwardFilter = 2
    public var description: String {
        switch self {
        case .forward: return "forward"
        case .backwardData: return "backward data"
        case .backwardFilter: return "backward filter"
        }
    }
}

/// One convolution a span of work runs: its shape and pass (`KernelProfile.convolutions` counts them).
public struct ConvolutionCall: Hashable, Sendable, CustomStringConvertible {
    public let shape: ConvolutionShape
    public let direction: ConvolutionDirection
    public init(_ shape: ConvolutionShape, _ direction: ConvolutionDirection) { self.shape = shape; self.direction = direction }
    public var description: String { "\(shape) \(direction)" }
}

/// How a buffer holds its elements: float32, or bfloat16 (a training network's activations and their gradients on
/// the GPU with `--gpu-activations bf16`, as PyTorch's bf16 autocast keeps them). Every backend call reads and
/// writes values as float32; a bfloat16 buffer holds each rounded to nearest even.
public enum ElementFormat: String, CaseIterable, Sendable {
    case fp32, bf16
    /// Bytes of one element.
    public var bytes: Int { self == .bf16 ? 2 : 4 }
}

/// Storage owned by a compute backend. On the CPU it is host memory; a GPU backend
/// holds device memory behind the same interface.
public protocol DeviceBuffer: AnyObject {
    /// Number of elements.
    var count: Int { get }
    /// Their format (float32 but where the backend's `allocateActivations` stores activations narrower).
    var format: ElementFormat { get }
}

/// A contiguous range of elements inside a device buffer.
public struct TensorRef {
    public let buffer: any DeviceBuffer
    public let offset: Int
    public let count: Int

    public init(buffer: any DeviceBuffer, offset: Int = 0, count: Int? = nil) {
        precondition(offset >= 0, "negative offset")
        let n = count ?? (buffer.count - offset)
        precondition(offset + n <= buffer.count, "tensor range outside its buffer")
        self.buffer = buffer
        self.offset = offset
        self.count = n
    }

    /// A sub-range, relative to this one.
    public func slice(_ start: Int, _ length: Int) -> TensorRef {
        precondition(start >= 0 && start + length <= count, "slice outside tensor")
        return TensorRef(buffer: buffer, offset: offset + start, count: length)
    }
}

/// Spatial extent of a single-sample, channel-first volume tensor [C, D, H, W].
public struct Extent3: Hashable, Sendable, CustomStringConvertible {
    public var d: Int, h: Int, w: Int
    public init(_ d: Int, _ h: Int, _ w: Int) { self.d = d; self.h = h; self.w = w }
    public init(cube n: Int) { self.init(n, n, n) }
    public var voxels: Int { d * h * w }
    public var halved: Extent3 { Extent3(d / 2, h / 2, w / 2) }
    public var doubled: Extent3 { Extent3(d * 2, h * 2, w * 2) }
    public var description: String { "\(d)x\(h)x\(w)" }
}

import Foundation

/// 64-byte aligned, zero-initialised host memory.
public final class CPUBuffer: DeviceBuffer {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>

    public init(count: Int) {
        self.count = count
        var raw: UnsafeMutableRawPointer?
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        guard posix_memalign(&raw, 64, bytes) == 0, let raw else {
            fatalError("out of memory allocating \(bytes) bytes")
        }
        memset(raw, 0, bytes)
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    deinit { free(pointer) }
}

extension TensorRef {
    /// Host pointer of a tensor owned by the CPU backend.
    @inline(__always)
    var host: UnsafeMutablePointer<Float> {
        unsafeDowncast(buffer, to: CPUBuffer.self).pointer + offset
    }
}

/// Per-thread scratch memory that grows on demand and is reused across calls.
final class ScratchPool {
    private var buffers: [CPUBuffer?]
    /// The buffers' pointers, rebuilt only when a buffer grows: `reserve` allocates nothing once the pool is large
    /// enough (the training step makes no allocation).
    private var pointers: [UnsafeMutablePointer<Float>] = []
    init(threads: Int) { buffers = Array(repeating: nil, count: threads) }

    /// Called before a parallel region, from one thread.
    func reserve(_ count: Int) -> [UnsafeMutablePointer<Float>] {
        var grew = pointers.isEmpty
        for t in buffers.indices where (buffers[t]?.count ?? 0) < count {
            buffers[t] = CPUBuffer(count: count)
            grew = true
        }
        if grew { pointers = buffers.map { $0!.pointer } }
        return pointers
    }
}

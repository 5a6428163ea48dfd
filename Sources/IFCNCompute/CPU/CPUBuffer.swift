import Foundation

/// 64-byte aligned, zero-initialised host memory. Buffers of 1 MiB and more are mapped straight from the
/// system (zero pages, given back when freed); through malloc, freeing a large block raises glibc's mmap
/// threshold, and the next large blocks then stay in the heap after they are freed (peak RSS of a C=64, P=64
/// training step: 1050 MiB through malloc, 1012 MiB mapped, docs/BENCHMARKS.md).
public final class CPUBuffer: DeviceBuffer {
    public let count: Int
    /// float32; bfloat16 where the backend emulates the CUDA backend's bfloat16 activations (the values are still
    /// float32 numbers, each one a bfloat16 value).
    public let format: ElementFormat
    public let pointer: UnsafeMutablePointer<Float>
    private let mappedBytes: Int?

    static let mappingThreshold = 1 << 20

    public init(count: Int, format: ElementFormat = .fp32) {
        self.count = count
        self.format = format
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        if bytes >= CPUBuffer.mappingThreshold {
            let raw = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            guard let raw, raw != MAP_FAILED else { fatalError("out of memory mapping \(bytes) bytes") }
            mappedBytes = bytes
            pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        } else {
            var raw: UnsafeMutableRawPointer?
            guard posix_memalign(&raw, 64, bytes) == 0, let raw else {
                fatalError("out of memory allocating \(bytes) bytes")
            }
            memset(raw, 0, bytes)
            mappedBytes = nil
            pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        }
    }

    deinit {
        if let mappedBytes { munmap(pointer, mappedBytes) } else { free(pointer) }
    }
}

extension TensorRef {
    /// Host pointer of a tensor owned by the CPU backend.
    @inline(__always)
    public var host: UnsafeMutablePointer<Float> {
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

import Foundation
import IFCNSupport

extension Communicator {
    /// Replaces `count` gradients at `buf` with their mean over all ranks (allreduce-sum, then 1/size).
    public func averageGradients(_ buf: UnsafeMutablePointer<Float>, count: Int) throws {
        guard size > 1 else { return }
        try allreduceSum(buf, count: count)
        let scale = 1 / Float(size)
        parallelBlocks(count: count, blockSize: 1 << 16) { _, range in  // each block scales its own range
            for i in range { buf[i] *= scale }
        }
    }

    /// True when the `count` floats at `buf` are bit-for-bit identical on every rank (and every rank
    /// passed the same count). Cheap enough to run every epoch on the full weight vector: it reduces two
    /// differently position-weighted 64-bit hashes of the bit patterns (exact, NaN-safe, order-sensitive)
    /// plus the count, and compares their max and min over all ranks. Collective: all ranks must call it.
    public func checkIdentical(_ buf: UnsafePointer<Float>, count: Int) throws -> Bool {
        let (first, second) = WeightFingerprint.hashes(buf, count: count)
        // Split each hash in 32-bit halves: every value is then exactly representable as a Double.
        var highest: [Double] = [
            Double(first >> 32), Double(first & 0xFFFF_FFFF),
            Double(second >> 32), Double(second & 0xFFFF_FFFF),
            Double(count),
        ]
        var lowest = highest
        allreduceMax(&highest)
        allreduceMin(&lowest)
        return highest == lowest
    }
}

/// Position-dependent hashes of a float vector's bit patterns, used by `checkIdentical`.
enum WeightFingerprint {
    static let chunk = 1 << 16

    /// Two independent wrapping sums of mixed (bits, index) words. Wrapping addition is commutative,
    /// so the result does not depend on how the work is split across threads.
    static func hashes(_ buf: UnsafePointer<Float>, count: Int) -> (UInt64, UInt64) {
        guard count > 0 else { return (0, 0) }
        var partial = [(UInt64, UInt64)](repeating: (0, 0), count: (count + chunk - 1) / chunk)
        partial.withUnsafeMutableBufferPointer { out in
            parallelBlocks(count: count, blockSize: chunk) { c, range in  // each block writes its own slot
                var a: UInt64 = 0, b: UInt64 = 0
                for i in range {
                    let bits = UInt64(buf[i].bitPattern)
                    let index = UInt64(i)
                    a &+= mix64(bits ^ (index &* SplitMix64.golden))
                    b &+= mix64((bits &+ 0x632B_E59B_D9B4_E019) &* (index | 1) ^ (index << 32 | index >> 32))
                }
                out[c] = (a, b)
            }
        }
        return partial.reduce((0, 0)) { ($0.0 &+ $1.0, $0.1 &+ $1.1) }
    }
}

import Foundation

/// Elements of a chunk of voxels per sgemm in conv1Backward's weight gradient.
let conv1WeightChunk = 2048
/// Columns (voxels) that conv3BackwardWeight sums in float32 before adding into float64: adding
/// the float32 tile after every 128-256-column chunk cost 26-36% of the C=64 P=64 backward (bench,
/// two interleaved rounds) on this 2-core AVX2 machine; grouping chunks to ~1024 columns is within noise.
let wideSumColumns = 1024

/// Per-thread float64 sums of float32 tiles, for reductions over a whole patch (weight
/// gradients): chunks are reduced by sgemm into the thread's float32 tile, the tile is added
/// into the thread's float64 sums, and the thread sums are added in thread order, so
/// the float32 error is that of one chunk, not of the whole patch, and the bits depend only on
/// how the work was split over threads, never on scheduling.
struct WideSums {
    let count: Int
    private let storage: [UnsafeMutablePointer<Float>]

    /// Per thread: `count` doubles (the first 2 x count floats, 64-byte aligned), then the tile.
    init(pool: ScratchPool, count: Int) {
        self.count = count
        storage = pool.reserve(3 * count)
    }

    /// The float32 tile of thread `t`, `count` floats.
    func tile(_ t: Int) -> UnsafeMutablePointer<Float> { storage[t] + 2 * count }

    /// Zeroes thread `t`'s sums.
    func clear(_ t: Int) { memset(storage[t], 0, count * MemoryLayout<Double>.stride) }

    /// Thread `t`'s sums += its tile, in float64.
    func addTile(_ t: Int) {
        let tile = self.tile(t), n = count
        storage[t].withMemoryRebound(to: Double.self, capacity: n) { s in
            for i in 0..<n { s[i] += Double(tile[i]) }
        }
    }

    /// out += the sum over threads 0..<parts (in that order, float64), rounded once to float32.
    /// Overwrites thread 0's sums.
    func addTotal(parts: Int, into out: UnsafeMutablePointer<Float>) {
        let n = count
        storage[0].withMemoryRebound(to: Double.self, capacity: n) { total in
            for t in 1..<max(parts, 1) {
                storage[t].withMemoryRebound(to: Double.self, capacity: n) { s in
                    for i in 0..<n { total[i] += s[i] }
                }
            }
            for i in 0..<n { out[i] += Float(total[i]) }
        }
    }
}

/// Memory shared by liveness: blocks whose lifetimes (inclusive step ranges) do not overlap share
/// memory, placed first fit in order of first use. The training arena (TrainingArena) and the
/// inference arena (Graph.packedForInference) are laid out this way.
enum ArenaPacking {
    /// Offsets of the blocks (-1 for a block never used: last < 0) and the packed size, in floats.
    /// Offsets are multiples of `alignment` floats.
    static func firstFit(sizes: [Int], first: [Int], last: [Int], alignment: Int = 1) -> (offsets: [Int], size: Int) {
        var offsets = [Int](repeating: -1, count: sizes.count)
        var live: [(start: Int, end: Int, last: Int)] = []
        var size = 0
        for b in sizes.indices.sorted(by: { (first[$0], $0) < (first[$1], $1) }) where last[b] >= 0 {
            live.removeAll { $0.last < first[b] }
            live.sort { $0.start < $1.start }
            var candidate = 0
            for r in live {
                if candidate + sizes[b] <= r.start { break }
                candidate = max(candidate, (r.end + alignment - 1) / alignment * alignment)
            }
            offsets[b] = candidate
            live.append((candidate, candidate + sizes[b], last[b]))
            size = max(size, candidate + sizes[b])
        }
        return (offsets, size)
    }

    /// Index of the block holding `offset`, for block `starts` in ascending order.
    static func block(in starts: [Int], containing offset: Int) -> Int {
        var lo = 0, hi = starts.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if starts[mid] <= offset { lo = mid } else { hi = mid - 1 }
        }
        return lo
    }
}

extension Graph {
    /// Index of the activation block holding `offset` (views lie inside one block).
    func block(containing offset: Int) -> Int { ArenaPacking.block(in: blockStarts, containing: offset) }

    /// Floats of each activation block.
    var blockSizes: [Int] {
        blockStarts.indices.map { i in (i + 1 < blockStarts.count ? blockStarts[i + 1] : arenaSize) - blockStarts[i] }
    }
}

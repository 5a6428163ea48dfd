import Foundation
import IFCNSupport

/// The iterative instance segmentation of one canonical image (docs/METHOD.md, "Inference"): a grid walk from
/// the superior end; at each position the fragment the model finds is followed to convergence, accepted
/// when it adds enough unlabelled voxels, written with the next label and added to the memory, and the
/// same patch is analysed again. Bounded by grid positions, moves and instances, so it always ends.
final class InstanceWalk {
    /// An accepted instance, before the final superior-to-inferior renumbering.
    struct Found {
        var label: Int
        var voxels: Int
        /// Mean continuous image index of the written voxels.
        var centroid: SIMD3<Double>
        var completeness: Double
        var evaluations: Int
        var moves: Int
    }

    let grid: PatchGrid
    let model: PatchModel
    let options: SegmentationOptions
    let minVoxels: Int
    /// Normalised value of the padding outside the image (-1000 HU normalised).
    let paddingValue: Float

    /// Normalised image, instance memory (0/1) and output labels (0 = none yet), x fastest.
    let image: [Float]
    private(set) var memory: [UInt8]
    private(set) var labels: [Int32]
    private(set) var found: [Found] = []
    private(set) var evaluations = 0

    private let imagePatch: UnsafeMutablePointer<Float>
    private let memoryPatch: UnsafeMutablePointer<Float>
    private let probabilities: UnsafeMutablePointer<Float>
    /// Results by (centre, memory under the patch), so an input the model has seen is not evaluated again
    /// (cleared when it grows past `cacheLimit`, which bounds its size on huge scans).
    private var cache: [CacheKey: Fragment] = [:]
    private static let cacheLimit = 256

    private struct CacheKey: Hashable {
        var centre: SIMD3<Int>
        var memoryHash: UInt64
    }

    init(image: [Float], size: SIMD3<Int>, patch: Int, model: PatchModel, options: SegmentationOptions,
         minVoxels: Int, paddingValue: Float) {
        precondition(image.count == size.x * size.y * size.z)
        grid = PatchGrid(size: size, patch: patch)
        self.model = model
        self.options = options
        self.minVoxels = minVoxels
        self.paddingValue = paddingValue
        self.image = image
        memory = [UInt8](repeating: 0, count: image.count)
        labels = [Int32](repeating: 0, count: image.count)
        let v = patch * patch * patch
        imagePatch = .allocate(capacity: v)
        memoryPatch = .allocate(capacity: v)
        probabilities = .allocate(capacity: v)
    }

    deinit {
        imagePatch.deallocate()
        memoryPatch.deallocate()
        probabilities.deallocate()
    }

    /// Runs the whole walk.
    func run(progress: ((String) -> Void)?) {
        let positions = grid.walk
        progress?("grid walk: \(positions.count) patch positions, n_min \(minVoxels) voxels")
        for position in positions {
            if found.count >= options.maxInstances { break }
            // Look from the grid position; after each accepted instance look again from where it was found
            // (the next vertebra is usually in view there), then once more from the grid position with the
            // new memory. Leave the position when it shows nothing new. Every pass either adds an instance
            // or ends, so this is bounded by maxInstances.
            var centre = position
            while found.count < options.maxInstances {
                if let (converged, fragment, moves, spent) = follow(from: centre),
                   accept(fragment, moves: moves, evaluations: spent) {
                    if let f = found.last {
                        progress?("found instance \(found.count): \(f.voxels) voxels, completeness "
                                  + String(format: "%.2f", f.completeness) + ", \(spent) evaluations, \(moves) moves")
                    }
                    centre = converged
                } else if centre != position {
                    centre = position
                } else {
                    break
                }
            }
        }
    }

    /// Evaluates the patch centred at `centre` against the current memory (cached).
    func evaluate(_ centre: SIMD3<Int>) -> Fragment {
        let origin = grid.origin(of: centre)
        let v = grid.patch * grid.patch * grid.patch
        memory.withUnsafeBufferPointer { grid.extract($0.baseAddress!, origin: origin, fill: 0, into: memoryPatch) }
        let key = CacheKey(centre: centre, memoryHash: InstanceWalk.hash(memoryPatch, count: v))
        if let hit = cache[key] { return hit }
        image.withUnsafeBufferPointer {
            grid.extract($0.baseAddress!, origin: origin, fill: paddingValue, into: imagePatch)
        }
        let completeness = model.evaluate(image: imagePatch, memory: memoryPatch, origin: origin,
                                          probabilities: probabilities)
        evaluations += 1
        let fragment = grid.fragment(probabilities, origin: origin, completeness: completeness)
        if cache.count >= InstanceWalk.cacheLimit { cache.removeAll(keepingCapacity: true) }
        cache[key] = fragment
        return fragment
    }

    /// Follows the fragment seen from `start` until the patch centre settles (or `maxMoves` moves, then the
    /// mean of the last two centres). Nil when there is no fragment of at least n_min voxels, or it is lost.
    func follow(from start: SIMD3<Int>) -> (centre: SIMD3<Int>, fragment: Fragment, moves: Int, evaluations: Int)? {
        let before = evaluations
        var centre = grid.clampedCentre(SIMD3<Double>(start))
        var fragment = evaluate(centre)
        guard fragment.count >= minVoxels else { return nil }
        var previous: SIMD3<Int>?
        var moves = 0
        while true {
            let target = fragment.centroid
            let shift = target - SIMD3<Double>(centre)
            if max(abs(shift.x), abs(shift.y), abs(shift.z)) <= options.sigma { break }
            if moves >= options.maxMoves {
                if let previous {
                    let mean = grid.clampedCentre((SIMD3<Double>(centre) + SIMD3<Double>(previous)) / 2)
                    if mean != centre {
                        centre = mean
                        fragment = evaluate(centre)
                        guard fragment.count >= minVoxels else { return nil }
                    }
                }
                break
            }
            let next = grid.clampedCentre(target)
            if next == centre { break }  // clamped at the border: cannot move closer
            previous = centre
            centre = next
            moves += 1
            fragment = evaluate(centre)
            guard fragment.count >= minVoxels else { return nil }
        }
        return (centre, fragment, moves, evaluations - before)
    }

    /// Writes the fragment's unlabelled voxels with the next label and adds the fragment to the memory,
    /// when it adds at least n_min voxels; otherwise changes nothing and returns false.
    func accept(_ fragment: Fragment, moves: Int, evaluations spent: Int) -> Bool {
        let label = Int32(found.count + 1)
        let nx = grid.size.x, nxy = grid.size.x * grid.size.y
        var added = 0
        var sum = SIMD3<Double>()
        labels.withUnsafeMutableBufferPointer { lab in
            for i in fragment.indices where lab[i] == 0 { added += 1 }
            guard added >= minVoxels else { return }
            for i in fragment.indices where lab[i] == 0 {
                lab[i] = label
                sum += SIMD3(Double(i % nx), Double((i % nxy) / nx), Double(i / nxy))
            }
        }
        guard added >= minVoxels else { return false }
        memory.withUnsafeMutableBufferPointer { mem in
            for i in fragment.indices { mem[i] = 1 }
        }
        found.append(Found(label: Int(label), voxels: added, centroid: sum / Double(added),
                           completeness: fragment.completeness, evaluations: spent, moves: moves))
        return true
    }

    /// 64-bit hash of the set voxels of a 0/1 patch.
    static func hash(_ p: UnsafePointer<Float>, count: Int) -> UInt64 {
        var h = SplitMix64.golden
        for i in 0..<count where p[i] != 0 { h = mix64(h ^ UInt64(i)) }
        return h
    }
}

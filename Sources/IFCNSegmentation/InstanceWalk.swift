import Foundation
import IFCNCompute
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
        /// The network's probabilities it was accepted from (when the walk keeps them).
        var probability: InstanceProbability?
    }

    /// What following the fragment seen from a position came to.
    enum Outcome {
        /// No fragment of n_min voxels in the first patch (the largest had `voxels`).
        case nothing(voxels: Int)
        /// The fragment shrank below n_min after `moves` moves (to `voxels`).
        case lost(moves: Int, voxels: Int)
        /// Settled (or stopped after maxMoves, `capped`) on `fragment` at `centre`.
        case converged(centre: SIMD3<Int>, fragment: Fragment, moves: Int, evaluations: Int, capped: Bool)
    }

    let grid: PatchGrid
    let model: PatchModel
    let options: SegmentationOptions
    let minVoxels: Int
    /// Normalised value of the padding outside the image (-1000 HU normalised).
    let paddingValue: Float
    /// Keep each accepted instance's probabilities (for resampling them onto the scan's grid).
    var keepProbabilities = false
    /// Receives one line per decision of the walk (`ifcn segment --explain`).
    var explain: ((String) -> Void)?

    private(set) var found: [Found] = []
    private(set) var evaluations = 0

    /// The input whose output the model holds: patch origin and the number of instances accepted then
    /// (the memory only changes on acceptance).
    private var modelInput: (origin: SIMD3<Int>, accepted: Int)?
    /// Results by (centre, memory under the patch), so an input the model has seen is not evaluated again
    /// (cleared when it grows past `cacheLimit`, which bounds its size on huge scans), and the unlabelled part
    /// of the fragments judged for acceptance (labels inside a patch change only with the memory under it).
    private var cache: [CacheKey: Fragment] = [:]
    private var judged: [CacheKey: VoxelSums] = [:]
    private static let cacheLimit = 256
    /// Unlabelled voxels of the last fragment judged (for `--explain`).
    private var lastJudged = 0

    private struct CacheKey: Hashable {
        var centre: SIMD3<Int>
        var memoryHash: UInt64
    }

    /// A walk over `image` (normalised intensities, x fastest), handed to the model (`PatchModel.begin`).
    init(image: [Float], size: SIMD3<Int>, patch: Int, model: PatchModel, options: SegmentationOptions,
         minVoxels: Int, paddingValue: Float) {
        precondition(image.count == size.x * size.y * size.z)
        grid = PatchGrid(size: size, patch: patch)
        self.model = model
        self.options = options
        self.minVoxels = minVoxels
        self.paddingValue = paddingValue
        model.begin(image: image, size: size, fill: paddingValue)
    }

    deinit { model.end() }

    /// The labels written so far (0 = none), x fastest.
    func readLabels() -> [Int32] { model.readLabels() }

    /// Runs the whole walk.
    func run(progress: ((String) -> Void)?) {
        let positions = grid.walk
        progress?("grid walk: \(positions.count) patch positions, n_min \(minVoxels) voxels")
        if options.scanStatistics > 0 {
            model.adaptStatistics(origins: positions.map(grid.origin(of:)), weight: options.scanStatistics)
            progress?("batch norm: the scan's statistics (\(positions.count) patches) weighted "
                      + String(format: "%g", options.scanStatistics) + ", the model's " + String(format: "%g", 1 - options.scanStatistics))
        }
        for (number, position) in positions.enumerated() {
            if found.count >= options.maxInstances {
                explain?("position \(number + 1)/\(positions.count) \(show(position)) and after: not visited, "
                         + "walk bound reached (\(options.maxInstances) instances)")
                break
            }
            // Look from the grid position; after each accepted instance look again from where it was found
            // (the next vertebra is usually in view there), then once more from the grid position with the
            // new memory. Leave the position when it shows nothing new. Every pass either adds an instance
            // or ends, so this is bounded by maxInstances.
            var centre = position
            while found.count < options.maxInstances {
                let from = centre
                let outcome = follow(from: centre)
                let accepted: Bool
                if case let .converged(converged, fragment, moves, spent, _) = outcome {
                    accepted = accept(fragment, at: converged, moves: moves, evaluations: spent)
                    if accepted {
                        centre = converged
                        if let f = found.last {
                            progress?("found instance \(found.count): \(f.voxels) voxels, completeness "
                                      + String(format: "%.2f", f.completeness) + ", \(spent) evaluations, \(moves) moves")
                        }
                    }
                } else {
                    accepted = false
                }
                explain?("position \(number + 1)/\(positions.count) \(show(position)), looking from \(show(from)): "
                         + describe(outcome, accepted: accepted))
                if accepted { continue }
                if centre != position { centre = position } else { break }
            }
        }
    }

    func show(_ c: SIMD3<Int>) -> String { "(\(c.x),\(c.y),\(c.z))" }

    /// One line for `--explain`: why the walk accepted or did not accept what it saw.
    func describe(_ outcome: Outcome, accepted: Bool) -> String {
        switch outcome {
        case .nothing(let voxels):
            return "nothing accepted: no fragment of n_min \(minVoxels) voxels (largest seen: \(voxels))"
        case .lost(let moves, let voxels):
            return "nothing accepted: fragment lost while following, after \(moves) move(s) it had \(voxels) voxels "
                + "(< n_min \(minVoxels))"
        case .converged(let centre, let fragment, let moves, _, let capped):
            let how = capped ? "stopped after the move bound (\(options.maxMoves)) at \(show(centre))"
                : "converged at \(show(centre)) after \(moves) move(s)"
            if accepted, let f = found.last {
                return "\(how); accepted instance \(f.label): \(f.voxels) new voxels, completeness "
                    + String(format: "%.2f", f.completeness)
            }
            return "\(how); nothing accepted: fragment of \(fragment.count) voxels adds only \(lastJudged) unlabelled "
                + "(< n_min \(minVoxels)), already segmented"
        }
    }

    /// Evaluates the patch centred at `centre` against the current memory (cached).
    func evaluate(_ centre: SIMD3<Int>) -> Fragment {
        let origin = grid.origin(of: centre)
        let key = CacheKey(centre: centre, memoryHash: model.memoryHash(origin: origin))
        if let hit = cache[key] { return hit }
        let (sums, completeness) = model.evaluate(origin: origin)
        modelInput = (origin, found.count)
        evaluations += 1
        let fragment = Fragment(count: sums.count, centroid: sums.centroid, completeness: completeness, origin: origin,
                                memoryHash: key.memoryHash)
        if cache.count >= InstanceWalk.cacheLimit {
            cache.removeAll(keepingCapacity: true)
            judged.removeAll(keepingCapacity: true)
        }
        cache[key] = fragment
        return fragment
    }

    /// Makes the model hold the output `fragment` came from (it runs again when the fragment came from the cache).
    func makeCurrent(_ fragment: Fragment) {
        guard modelInput?.origin != fragment.origin || modelInput?.accepted != found.count else { return }
        _ = model.evaluate(origin: fragment.origin)
        modelInput = (fragment.origin, found.count)
        evaluations += 1
    }

    /// Follows the fragment seen from `start` until the patch centre settles (or `maxMoves` moves, then the
    /// mean of the last two centres). Nothing when there is no fragment of at least n_min voxels, or it is lost.
    func follow(from start: SIMD3<Int>) -> Outcome {
        let before = evaluations
        var centre = grid.clampedCentre(SIMD3<Double>(start))
        var fragment = evaluate(centre)
        guard fragment.count >= minVoxels else { return .nothing(voxels: fragment.count) }
        var previous: SIMD3<Int>?
        var moves = 0
        var capped = false
        while true {
            let target = fragment.centroid
            let shift = target - SIMD3<Double>(centre)
            if max(abs(shift.x), abs(shift.y), abs(shift.z)) <= options.sigma { break }
            if moves >= options.maxMoves {
                capped = true
                if let previous {
                    let mean = grid.clampedCentre((SIMD3<Double>(centre) + SIMD3<Double>(previous)) / 2)
                    if mean != centre {
                        centre = mean
                        fragment = evaluate(centre)
                        guard fragment.count >= minVoxels else { return .lost(moves: moves, voxels: fragment.count) }
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
            guard fragment.count >= minVoxels else { return .lost(moves: moves, voxels: fragment.count) }
        }
        return .converged(centre: centre, fragment: fragment, moves: moves, evaluations: evaluations - before, capped: capped)
    }

    /// Writes the fragment's unlabelled voxels with the next label and adds the fragment to the memory,
    /// when it adds at least n_min voxels; otherwise changes nothing and returns false. `centre` is the patch
    /// centre it was seen from.
    func accept(_ fragment: Fragment, at centre: SIMD3<Int>, moves: Int, evaluations spent: Int) -> Bool {
        let key = CacheKey(centre: centre, memoryHash: fragment.memoryHash)
        let new: VoxelSums
        if let known = judged[key] {
            new = known
        } else {
            makeCurrent(fragment)
            new = model.unlabelled()
            judged[key] = new
        }
        lastJudged = new.count
        guard new.count >= minVoxels else { return false }
        makeCurrent(fragment)
        var probability: InstanceProbability?
        if keepProbabilities {
            let v = grid.patch * grid.patch * grid.patch
            let values = UnsafeMutablePointer<Float>.allocate(capacity: v)
            defer { values.deallocate() }
            model.readProbabilities(into: values)
            probability = InstanceProbability(values, origin: fragment.origin, patch: grid.patch)
        }
        let label = found.count + 1
        model.accept(label: Int32(label))
        found.append(Found(label: label, voxels: new.count, centroid: new.centroid, completeness: fragment.completeness,
                           evaluations: spent, moves: moves, probability: probability))
        return true
    }
}

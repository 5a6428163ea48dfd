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

    /// Instance memory (0/1; the model keeps its own copy) and output labels (0 = none yet), x fastest.
    private(set) var memory: [UInt8]
    private(set) var labels: [Int32]
    private(set) var found: [Found] = []
    private(set) var evaluations = 0

    /// The model's output above 0.5 of the last evaluation, one bit a patch voxel.
    private let above: UnsafeMutablePointer<UInt32>
    private let aboveWords: Int
    /// The input whose output the model holds: patch origin and the number of instances accepted then
    /// (the memory only changes on acceptance).
    private var modelInput: (origin: SIMD3<Int>, accepted: Int)?
    /// Results by (centre, memory under the patch), so an input the model has seen is not evaluated again
    /// (cleared when it grows past `cacheLimit`, which bounds its size on huge scans).
    private var cache: [CacheKey: Fragment] = [:]
    private static let cacheLimit = 256

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
        memory = [UInt8](repeating: 0, count: image.count)
        labels = [Int32](repeating: 0, count: image.count)
        aboveWords = (patch * patch * patch + 31) / 32
        above = .allocate(capacity: aboveWords)
        model.begin(image: image, size: size, fill: paddingValue)
    }

    deinit {
        above.deallocate()
        model.end()
    }

    /// Runs the whole walk.
    func run(progress: ((String) -> Void)?) {
        let positions = grid.walk
        progress?("grid walk: \(positions.count) patch positions, n_min \(minVoxels) voxels")
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
                    accepted = accept(fragment, moves: moves, evaluations: spent)
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
            let new = labels.withUnsafeBufferPointer { lab in fragment.indices.reduce(0) { $0 + (lab[$1] == 0 ? 1 : 0) } }
            return "\(how); nothing accepted: fragment of \(fragment.count) voxels adds only \(new) unlabelled "
                + "(< n_min \(minVoxels)), already segmented"
        }
    }

    /// Evaluates the patch centred at `centre` against the current memory (cached).
    func evaluate(_ centre: SIMD3<Int>) -> Fragment {
        let origin = grid.origin(of: centre)
        let key = CacheKey(centre: centre, memoryHash: memory.withUnsafeBufferPointer { grid.hash($0.baseAddress!, origin: origin) })
        if let hit = cache[key] { return hit }
        let completeness = model.evaluate(origin: origin, above: above)
        modelInput = (origin, found.count)
        evaluations += 1
        let fragment = grid.fragment(above, origin: origin, completeness: completeness)
        if cache.count >= InstanceWalk.cacheLimit { cache.removeAll(keepingCapacity: true) }
        cache[key] = fragment
        return fragment
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
        let probability = keepProbabilities ? probabilities(of: fragment) : nil
        memory.withUnsafeMutableBufferPointer { mem in
            for i in fragment.indices { mem[i] = 1 }
        }
        model.remember(fragment.indices)
        found.append(Found(label: Int(label), voxels: added, centroid: sum / Double(added),
                           completeness: fragment.completeness, evaluations: spent, moves: moves,
                           probability: probability))
        return true
    }

    /// The network's probabilities for the input `fragment` came from (its patch with the current memory):
    /// the model's last output when it still is that input's, else the model runs again (the fragment came
    /// from the cache).
    func probabilities(of fragment: Fragment) -> InstanceProbability {
        if modelInput?.origin != fragment.origin || modelInput?.accepted != found.count {
            _ = model.evaluate(origin: fragment.origin, above: above)
            modelInput = (fragment.origin, found.count)
            evaluations += 1
        }
        let v = grid.patch * grid.patch * grid.patch
        let values = UnsafeMutablePointer<Float>.allocate(capacity: v)
        defer { values.deallocate() }
        model.readProbabilities(into: values)
        return InstanceProbability(values, origin: fragment.origin, patch: grid.patch)
    }
}

import Foundation
import IFCNEngine
import IFCNVolume

/// One training example: network input channels and the targets, each [P, P, P], x fastest.
public struct TrainingSample: Sendable {
    public var image: [Float]          // normalised intensities
    public var memory: [Float]         // 0/1
    public var target: [Float]         // 0/1
    public var weight: [Float]
    public var completeness: Float     // 0/1
    public var isEmptyExample: Bool
    public var caseName: String
    public var targetLabel: Int?
    /// Voxel index of the patch's first voxel in its case (before augmentation).
    public var patchOrigin: SIMD3<Int>
}

/// Draws the training samples of docs/METHOD.md. Sample `iteration` of `rank` depends only on
/// (seed, rank, iteration): a counter-based stream, so a resumed run draws the same samples.
public struct PatchSampler: Sendable {
    public let cases: [TrainingCase]
    public let patch: Int
    public let intensity: IntensityNormaliser
    public let seed: UInt64
    public let rank: Int
    public var augmentations: Set<Augmentation> = Augmentation.defaults
    public static let paddingHU: Float = -1000
    public static let completeFraction = 0.98
    /// Seed offset of the stream the site augmentations (intensity, affine, flip, thick slices) draw from, so
    /// that METHOD.md's augmentations draw exactly what they drew before those existed.
    static let siteStream: UInt64 = 0x5173_A06D_E11C_0001
    /// Seed offset of the `context` augmentation's stream.
    static let contextStream: UInt64 = 0xC0_47E7_7B10_0002

    public init(cases: [TrainingCase], patch: Int, intensity: IntensityNormaliser, seed: UInt64, rank: Int,
                augmentations: Set<Augmentation> = Augmentation.defaults) {
        precondition(cases.allSatisfy(\.readsPatches), "the sampler reads cases in memory or mapped")
        self.cases = cases; self.patch = patch; self.intensity = intensity; self.seed = seed; self.rank = rank
        self.augmentations = augmentations
    }

    /// Iterations count from 1; every 5th (divisible by 5) is an empty example.
    public func sample(iteration: Int) -> TrainingSample {
        var rng = SeededGenerator(seed: seed, stream: UInt64(rank) << 40 | UInt64(iteration))
        let c = cases[rng.int(below: cases.count)]
        let g = c.grid
        let empty = iteration % 5 == 0
        var centre: SIMD3<Int>
        var targetIndex: Int? = nil
        if empty {
            centre = SIMD3(rng.int(below: g.size.x), rng.int(below: g.size.y), rng.int(below: g.size.z))
        } else {
            let k = rng.int(below: c.vertebrae.count)
            targetIndex = k
            let v = c.vertebrae[k]
            centre = SIMD3(v.bboxMin.x + rng.int(below: v.bboxMax.x - v.bboxMin.x + 1),
                           v.bboxMin.y + rng.int(below: v.bboxMax.y - v.bboxMin.y + 1),
                           v.bboxMin.z + rng.int(below: v.bboxMax.z - v.bboxMin.z + 1))
        }
        let start = PatchSampler.patchStart(centre: centre, size: g.size, patch: patch)
        let targetLabel = targetIndex.map { Int32(c.vertebrae[$0].label) }
        let memoryLabels = Set(targetIndex.map { k in c.vertebrae[..<k].map { Int32($0.label) } } ?? [])
        var p = extract(c, start: start, targetLabel: targetLabel, memoryLabels: memoryLabels, empty: empty)
        var targetVoxelsInPatch = p.target.reduce(0, +)
        if !augmentations.isEmpty {
            let extra = SeededGenerator(seed: seed ^ PatchSampler.siteStream, stream: UInt64(rank) << 40 | UInt64(iteration))
            var a = Augmenter(patch: patch, spacing: g.spacing.x, rng: rng, extra: extra)
            a.enabled = augmentations
            var context = SeededGenerator(seed: seed ^ PatchSampler.contextStream, stream: UInt64(rank) << 40 | UInt64(iteration))
            let inside = (lo: pointwiseMax(.zero, SIMD3.zero &- start), hi: pointwiseMin(SIMD3(repeating: patch), g.size &- start))
            a.fillBeyondImage(&p.image, inside: inside, stream: &context)
            targetVoxelsInPatch = a.apply(image: &p.image, weight: &p.weight, target: &p.target, memory: &p.memory)
            rng = a.rng
        }
        var complete: Float = 0
        if let k = targetIndex {
            complete = Double(targetVoxelsInPatch) >= PatchSampler.completeFraction * Double(c.vertebrae[k].voxels) ? 1 : 0
        }
        let image = p.image.map { intensity.apply($0) }
        return TrainingSample(image: image, memory: p.memory, target: p.target, weight: p.weight, completeness: complete,
                              isEmptyExample: empty, caseName: c.name, targetLabel: targetIndex.map { c.vertebrae[$0].label },
                              patchOrigin: start)
    }

    /// Patch origin (voxel index) for a centre: shifted to lie inside the image, centred on the
    /// image along axes where the image is smaller than the patch.
    public static func patchStart(centre: SIMD3<Int>, size: SIMD3<Int>, patch: Int) -> SIMD3<Int> {
        var s = SIMD3<Int>()
        for a in 0..<3 {
            if size[a] >= patch {
                s[a] = min(max(centre[a] - patch / 2, 0), size[a] - patch)
            } else {
                s[a] = -((patch - size[a]) / 2)
            }
        }
        return s
    }

    struct RawPatch { var image: [Float]; var memory: [Float]; var target: [Float]; var weight: [Float] }

    func extract(_ c: TrainingCase, start: SIMD3<Int>, targetLabel: Int32?, memoryLabels: Set<Int32>, empty: Bool) -> RawPatch {
        let P = patch, n = P * P * P, g = c.grid
        var r = RawPatch(image: [Float](repeating: PatchSampler.paddingHU, count: n), memory: [Float](repeating: 0, count: n),
                         target: [Float](repeating: 0, count: n), weight: [Float](repeating: 1, count: n))
        // One row of the case at a time (from memory or the mapped store), then into the patch.
        var im = [Float](repeating: 0, count: P), wt = [Float](repeating: 0, count: P), lb = [Int32](repeating: 0, count: P)
        for z in 0..<P {
            let sz = start.z + z
            guard sz >= 0 && sz < g.size.z else { continue }
            for y in 0..<P {
                let sy = start.y + y
                guard sy >= 0 && sy < g.size.y else { continue }
                let x0 = max(0, -start.x), x1 = min(P, g.size.x - start.x)
                guard x0 < x1 else { continue }
                let src = (sz * g.size.y + sy) * g.size.x + start.x + x0
                let dst = (z * P + y) * P
                c.imageRow(src, x1 - x0, into: &im)
                c.labelRow(src, x1 - x0, into: &lb)
                if !empty { c.weightRow(src, x1 - x0, into: &wt) }
                for x in x0..<x1 {
                    let l = lb[x - x0]
                    r.image[dst + x] = im[x - x0]
                    if empty {
                        r.memory[dst + x] = l > 0 ? 1 : 0
                    } else {
                        r.weight[dst + x] = wt[x - x0]
                        if l > 0 {
                            if l == targetLabel { r.target[dst + x] = 1 }
                            else if memoryLabels.contains(l) { r.memory[dst + x] = 1 }
                        }
                    }
                }
            }
        }
        return r
    }
}

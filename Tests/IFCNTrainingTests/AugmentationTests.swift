import IFCNEngine
@testable import IFCNTraining
import XCTest

/// Every augmentation that moves voxels moves image, weights, target and memory together, voxel for voxel;
/// parameters mean the same in millimetres at any spacing.
final class AugmentationTests: XCTestCase {
    let patch = 16

    /// A label per voxel in blocks of 3, so a shift of one voxel changes it often.
    func label(_ x: Int, _ y: Int, _ z: Int) -> Int { 1 + (x / 3 + 2 * (y / 3) + 3 * (z / 3)) % 4 }

    /// Runs `augmentation` alone with the seed's draws on a patch whose image holds one coordinate axis (so the
    /// interpolated image says where each output voxel was sampled), weights = image + 1000, target = label 2,
    /// memory = label 3. Returns the four channels per axis.
    func augmented(_ augmentation: Augmentation, seed: UInt64, spacing: Double)
        -> (source: [SIMD3<Float>], weights: [[Float]], images: [[Float]], target: [Float], memory: [Float], changed: Bool) {
        let P = patch, n = P * P * P
        var sources = [SIMD3<Float>](repeating: .zero, count: n)
        var weights: [[Float]] = [], images: [[Float]] = []
        var target0 = [Float](repeating: 0, count: n), memory0 = target0
        for i in 0..<n {
            let l = label(i % P, (i / P) % P, i / (P * P))
            target0[i] = l == 2 ? 1 : 0
            memory0[i] = l == 3 ? 1 : 0
        }
        var target = target0, memory = memory0
        var changed = false
        for axis in 0..<3 {
            var image = (0..<n).map { i in Float([i % P, (i / P) % P, i / (P * P)][axis]) }
            let original = image
            var weight = image.map { $0 + 1000 }
            var t = target0, m = memory0
            var a = Augmenter(patch: P, spacing: spacing, rng: SeededGenerator(seed: seed), extra: SeededGenerator(seed: seed, stream: 1))
            a.enabled = [augmentation]
            _ = a.apply(image: &image, weight: &weight, target: &t, memory: &m)
            changed = changed || image != original
            for i in 0..<n { sources[i][axis] = image[i] }
            images.append(image); weights.append(weight)
            target = t; memory = m
        }
        return (sources, weights, images, target, memory, changed)
    }

    func testGeometricAugmentationsKeepChannelsAligned() {
        for augmentation in [Augmentation.elastic, .crop, .affine, .flip] {
            for spacing in [1.0, 4.0] {
                var fired = 0
                for seed in UInt64(1)...12 {
                    let r = augmented(augmentation, seed: seed, spacing: spacing)
                    guard r.changed else { continue }
                    fired += 1
                    var checked = 0
                    for i in 0..<r.target.count {
                        for axis in 0..<3 {
                            XCTAssertEqual(r.weights[axis][i] - 1000, r.images[axis][i], accuracy: 1e-3,
                                           "\(augmentation) weights moved apart from the image")
                        }
                        let s = r.source[i]
                        // Only where the sample point is inside the patch (no border clamping).
                        guard (0..<3).allSatisfy({ s[$0] >= 0.01 && s[$0] <= Float(patch - 1) - 0.01 }) else { continue }
                        let l = label(Int(s.x.rounded()), Int(s.y.rounded()), Int(s.z.rounded()))
                        // A point exactly between two voxels may round either way.
                        let tie = (0..<3).contains { abs(s[$0] - s[$0].rounded(.down) - 0.5) < 1e-3 }
                        if tie { continue }
                        XCTAssertEqual(r.target[i], l == 2 ? 1 : 0, "\(augmentation) at \(spacing) mm: target off the image at voxel \(i)")
                        XCTAssertEqual(r.memory[i], l == 3 ? 1 : 0, "\(augmentation) at \(spacing) mm: memory off the image at voxel \(i)")
                        checked += 1
                    }
                    XCTAssertGreaterThan(checked, r.target.count / 2, "\(augmentation): too few voxels checked")
                }
                XCTAssertGreaterThan(fired, 2, "\(augmentation) at \(spacing) mm never fired")
            }
        }
    }

    /// The elastic field's displacement in millimetres has the same spread at 1 mm and at 4 mm.
    func testElasticDisplacementIsDefinedInMillimetres() {
        func displacementMM(spacing: Double, patch P: Int) -> Double {
            var sum = 0.0, count = 0.0
            for seed in UInt64(1)...6 {
                var a = Augmenter(patch: P, spacing: spacing, rng: SeededGenerator(seed: seed), extra: SeededGenerator(seed: seed))
                let n = P * P * P
                var image = (0..<n).map { Float($0 % P) }, weight = image
                var t = [Float](repeating: 0, count: n), m = t
                a.elastic(&image, &weight, &t, &m)
                // interior voxels: the field is not clamped there
                for i in 0..<n {
                    let x = i % P, y = (i / P) % P, z = i / (P * P)
                    guard [x, y, z].allSatisfy({ $0 >= P / 4 && $0 < P - P / 4 }) else { continue }
                    let d = Double(image[i]) - Double(x)
                    sum += d * d * spacing * spacing
                    count += 1
                }
            }
            return (sum / count).squareRoot()
        }
        // The same 128 mm of patch at both spacings.
        let at1 = displacementMM(spacing: 1, patch: 64), at4 = displacementMM(spacing: 4, patch: 16)
        XCTAssertGreaterThan(at1, 0.01)
        XCTAssertEqual(at4 / at1, 1, accuracy: 0.25, "elastic spread \(at1) mm at 1 mm, \(at4) mm at 4 mm")
        XCTAssertEqual(Augmenter.elasticGain(spacing: 1), 1, accuracy: 1e-12)
    }

    /// The completeness count is in voxels of the original volume: a scaled vertebra still counts as whole.
    func testAffineCountsTheVertebraInOriginalVoxels() {
        let P = 32, n = P * P * P
        var target = [Float](repeating: 0, count: n)
        for i in 0..<n {
            let d = SIMD3(Double(i % P), Double((i / P) % P), Double(i / (P * P))) - 15.5
            if (d * d).sum() <= 36 { target[i] = 1 }
        }
        let voxels = target.reduce(0, +)
        var checked = 0
        for seed in UInt64(1)...10 {
            var image = [Float](repeating: 0, count: n), weight = image, t = target, m = image
            var a = Augmenter(patch: P, spacing: 4, rng: SeededGenerator(seed: seed), extra: SeededGenerator(seed: seed, stream: 7))
            a.enabled = [.affine]
            let kept = a.apply(image: &image, weight: &weight, target: &t, memory: &m)
            guard a.volumeFactor != 1 else { continue }
            checked += 1
            XCTAssertEqual(kept / voxels, 1, accuracy: 0.06, "scale^3 \(a.volumeFactor): \(t.reduce(0, +)) voxels after, \(voxels) before")
        }
        XCTAssertGreaterThan(checked, 2)
    }

    /// Thick slices average along one axis only and keep a constant image constant.
    func testThickSlices() {
        let P = patch, n = P * P * P
        let a = Augmenter(patch: P, spacing: 1, rng: SeededGenerator(seed: 1), extra: SeededGenerator(seed: 1))
        XCTAssertEqual(a.thickSlices([Float](repeating: 7, count: n), axis: 2, factor: 3).map { abs($0 - 7) }.max() ?? 1, 0,
                       accuracy: 1e-4)
        // x-ramp, thick along z: unchanged (no variation along z).
        let ramp = (0..<n).map { Float($0 % P) }
        XCTAssertEqual(zip(a.thickSlices(ramp, axis: 2, factor: 4), ramp).map { abs($0 - $1) }.max() ?? 1, 0, accuracy: 1e-4)
        // Alternating slices along z are averaged out.
        let stripes = (0..<n).map { Float(($0 / (P * P)) % 2) }
        let thick = a.thickSlices(stripes, axis: 2, factor: 4)
        let spread = (thick.max() ?? 0) - (thick.min() ?? 0)
        XCTAssertLessThan(spread, 0.5)
    }
}

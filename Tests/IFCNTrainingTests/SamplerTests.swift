import IFCNEngine
import IFCNTraining
import IFCNVolume
import XCTest

/// The training samples of docs/METHOD.md, drawn from a synthetic spine at 2 mm.
final class SamplerTests: XCTestCase {
    static let trainingCase: TrainingCase = {
        let s = SyntheticSpine.generate(seed: 4)
        let image = try! resampleToCanonical(s.image, spacing: 2, interpolation: .linear, fill: -1000)
        let labels = try! resampleToCanonical(s.labels, spacing: 2)
        return TrainingCase(name: "synth", image: image, labels: labels, weights: distanceWeights(labels: labels),
                            vertebrae: VertebraInfo.collect(from: labels))
    }()

    func sampler(_ augmentations: Set<Augmentation> = [], rank: Int = 0) -> PatchSampler {
        PatchSampler(cases: [Self.trainingCase], patch: 16, intensity: .paper, seed: 9, rank: rank, augmentations: augmentations)
    }

    func testSamplesAreAFunctionOfSeedRankAndIteration() {
        let a = sampler(Set(Augmentation.allCases)).sample(iteration: 7)
        let b = sampler(Set(Augmentation.allCases)).sample(iteration: 7)
        XCTAssertEqual(a.image, b.image); XCTAssertEqual(a.target, b.target); XCTAssertEqual(a.memory, b.memory)
        XCTAssertEqual(a.weight, b.weight); XCTAssertEqual(a.completeness, b.completeness)
        XCTAssertNotEqual(sampler(rank: 1).sample(iteration: 7).image, sampler(rank: 0).sample(iteration: 7).image)
        XCTAssertNotEqual(sampler().sample(iteration: 8).image, sampler().sample(iteration: 7).image)
    }

    func testEveryFifthIterationIsAnEmptyExample() {
        let c = Self.trainingCase
        for it in [5, 10, 15] {
            let s = sampler().sample(iteration: it)
            XCTAssertTrue(s.isEmptyExample)
            XCTAssertEqual(s.target.reduce(0, +), 0)
            XCTAssertEqual(s.completeness, 0)
            XCTAssertTrue(s.weight.allSatisfy { $0 == 1 })
            XCTAssertNil(s.targetLabel)
            // memory = every vertebra voxel of the patch
            let g = c.grid, o = s.patchOrigin
            var labelled = 0
            for z in 0..<16 { for y in 0..<16 { for x in 0..<16 {
                let p = SIMD3(o.x + x, o.y + y, o.z + z)
                if p.x >= 0, p.y >= 0, p.z >= 0, p.x < g.size.x, p.y < g.size.y, p.z < g.size.z,
                   c.labels.voxels[p.x + g.size.x * (p.y + g.size.y * p.z)] > 0 { labelled += 1 }
            } } }
            XCTAssertEqual(Int(s.memory.reduce(0, +)), labelled)
        }
        XCTAssertFalse(sampler().sample(iteration: 4).isEmptyExample)
    }

    /// Ground truth = the target vertebra alone; memory = exactly the vertebrae above it.
    func testTargetAndMemoryFollowTheVertebraOrder() throws {
        let c = Self.trainingCase
        var checked = 0
        for it in 1...40 where it % 5 != 0 {
            let s = sampler().sample(iteration: it)
            let label = try XCTUnwrap(s.targetLabel)
            let k = try XCTUnwrap(c.vertebrae.firstIndex { $0.label == label })
            let above = Set(c.vertebrae[..<k].map { Int32($0.label) })
            XCTAssertGreaterThan(s.target.reduce(0, +), 0)
            let g = c.grid, o = s.patchOrigin
            var mismatches = 0
            for z in 0..<16 { for y in 0..<16 { for x in 0..<16 {
                let p = SIMD3(o.x + x, o.y + y, o.z + z)
                let inside = p.x >= 0 && p.y >= 0 && p.z >= 0 && p.x < g.size.x && p.y < g.size.y && p.z < g.size.z
                let l: Int32 = inside ? c.labels.voxels[p.x + g.size.x * (p.y + g.size.y * p.z)] : 0
                let i = x + 16 * (y + 16 * z)
                if s.target[i] != (l == Int32(label) ? 1 : 0) || s.memory[i] != (above.contains(l) ? 1 : 0) { mismatches += 1 }
            } } }
            XCTAssertEqual(mismatches, 0, "iteration \(it): target must be vertebra \(label) alone, memory the vertebrae above it")
            if !above.isEmpty { checked += 1 }
            // completeness label agrees with the share of the vertebra the patch holds
            let inPatch = Double(s.target.reduce(0, +)), total = Double(c.vertebrae[k].voxels)
            XCTAssertEqual(s.completeness == 1, inPatch >= 0.98 * total, "iteration \(it)")
        }
        XCTAssertGreaterThan(checked, 5)
    }

    func testPatchPlacement() {
        // inside the image where it is long enough, centred where it is shorter
        let size = SIMD3(40, 10, 100)
        XCTAssertEqual(PatchSampler.patchStart(centre: SIMD3(0, 5, 99), size: size, patch: 16), SIMD3(0, -3, 84))
        XCTAssertEqual(PatchSampler.patchStart(centre: SIMD3(20, 5, 50), size: size, patch: 16), SIMD3(12, -3, 42))
    }

    func testAugmentationKeepsMasksBinaryAndSelectionIsRespected() {
        for it in 1...12 {
            let s = sampler(Set(Augmentation.allCases)).sample(iteration: it)
            XCTAssertEqual(s.image.count, 16 * 16 * 16)
            XCTAssertTrue(s.target.allSatisfy { $0 == 0 || $0 == 1 })
            XCTAssertTrue(s.memory.allSatisfy { $0 == 0 || $0 == 1 })
            XCTAssertTrue(s.image.allSatisfy { $0.isFinite })
        }
        // noise only: masks and weights are those of the unaugmented sample, the image differs
        for it in 1...6 where it % 5 != 0 {
            let plain = sampler().sample(iteration: it), noisy = sampler([.noise]).sample(iteration: it)
            XCTAssertEqual(plain.target, noisy.target)
            XCTAssertEqual(plain.weight, noisy.weight)
        }
    }

    func testLearningRateSchedule() {
        var o = TrainingOptions(dataDir: "d", outputDir: "o")
        o.learningRate = 1e-3
        o.learningRateSteps = [10, 20]
        XCTAssertEqual(o.learningRate(at: 10), 1e-3)
        XCTAssertEqual(o.learningRate(at: 11), 1e-4, accuracy: 1e-9)
        XCTAssertEqual(o.learningRate(at: 21), 1e-5, accuracy: 1e-10)
    }
}

import Foundation
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

    func testEveryFifthIterationIsAnEmptyExample() throws {
        let c = Self.trainingCase
        for it in [5, 10, 15] {
            let s = sampler().sample(iteration: it)
            XCTAssertTrue(s.isEmptyExample)
            XCTAssertEqual(s.target.reduce(0, +), 0)
            XCTAssertEqual(s.completeness, 0)
            XCTAssertTrue(s.weight.allSatisfy { $0 == 1 })
            XCTAssertNil(s.targetLabel)
            // memory = every vertebra voxel of the patch
            let g = c.grid, o = s.patchOrigin, labels = try c.volumes().labels
            var labelled = 0
            for z in 0..<16 { for y in 0..<16 { for x in 0..<16 {
                let p = SIMD3(o.x + x, o.y + y, o.z + z)
                if p.x >= 0, p.y >= 0, p.z >= 0, p.x < g.size.x, p.y < g.size.y, p.z < g.size.z,
                   labels.voxels[p.x + g.size.x * (p.y + g.size.y * p.z)] > 0 { labelled += 1 }
            } } }
            XCTAssertEqual(Int(s.memory.reduce(0, +)), labelled)
        }
        XCTAssertFalse(sampler().sample(iteration: 4).isEmptyExample)
    }

    /// Ground truth = the target vertebra alone; memory = exactly the vertebrae above it.
    func testTargetAndMemoryFollowTheVertebraOrder() throws {
        let c = Self.trainingCase, labels = try c.volumes().labels
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
                let l: Int32 = inside ? labels.voxels[p.x + g.size.x * (p.y + g.size.y * p.z)] : 0
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

    /// The same samples from the memory-mapped training store as from memory: same seed, same patches, same bits.
    func testMappedStoreGivesTheSamplesOfTheInMemoryPath() throws {
        let c = Self.trainingCase
        guard case .memory(let image, let labels, let weights) = c.storage else { return XCTFail("expected an in-memory case") }
        let path = NSTemporaryDirectory() + "ifcn-sampler-\(UUID().uuidString).ifcs"
        defer { unlink(path) }
        for type in [VoxelType.float32, .int16] {
            // int16 rounds the image the way `preprocess --image-type int16` writes it (and reads back +0, never -0)
            let rounded = TrainingCase(name: c.name, image: type == .int16 ? Volume(grid: c.grid, voxels: image.voxels.map { Float(Int32($0.rounded())) }) : image,
                                       labels: labels, weights: weights, vertebrae: c.vertebrae)
            let entry = try CaseStore.write(image: image, labels: labels, weights: weights, imageType: type, to: path, relativePath: "c.ifcs")
            let mapped = TrainingCase(name: c.name, grid: c.grid, vertebrae: c.vertebrae,
                                      storage: .mapped(try MappedCaseStore(path: path, entry: entry, grid: c.grid)))
            for augmentations in [Set<Augmentation>(), Set(Augmentation.allCases)] {
                for rank in 0..<2 {
                    let a = PatchSampler(cases: [rounded, c], patch: 16, intensity: .paper, seed: 3, rank: rank, augmentations: augmentations)
                    let b = PatchSampler(cases: [mapped, c], patch: 16, intensity: .paper, seed: 3, rank: rank, augmentations: augmentations)
                    for it in 1...25 {
                        let x = a.sample(iteration: it), y = b.sample(iteration: it)
                        let what = "\(type), \(augmentations.count) augmentations, rank \(rank), iteration \(it)"
                        XCTAssertTrue(x.image.map(\.bitPattern) == y.image.map(\.bitPattern), "image differs: \(what)")
                        XCTAssertTrue(x.weight.map(\.bitPattern) == y.weight.map(\.bitPattern), "weights differ: \(what)")
                        XCTAssertTrue(x.target == y.target && x.memory == y.memory, "target or memory differs: \(what)")
                        XCTAssertEqual(x.completeness, y.completeness); XCTAssertEqual(x.patchOrigin, y.patchOrigin)
                    }
                }
            }
        }
    }

    /// `context` (docs/ACCURACY.md, "Field of view") fills exactly the patch voxels beyond the image, in about half
    /// the samples, with soft tissue instead of air, and leaves every voxel of the image as it was.
    func testContextFillsOnlyThePaddingBeyondTheImage() {
        let g = Self.trainingCase.grid
        let patch = (g.size.max() + 15) / 8 * 8  // larger than the case along every axis: padding on every side
        func draw(_ a: Set<Augmentation>, _ it: Int) -> TrainingSample {
            PatchSampler(cases: [Self.trainingCase], patch: patch, intensity: .paper, seed: 9, rank: 0, augmentations: a).sample(iteration: it)
        }
        var filled = 0, plain = 0
        for it in 1...12 {
            let with = draw([.context], it), without = draw([], it)
            let o = with.patchOrigin
            var outside: [Float] = []
            for z in 0..<patch { for y in 0..<patch { for x in 0..<patch {
                let i = x + patch * (y + patch * z), p = SIMD3(x, y, z) &+ o
                if all(p .>= .zero) && all(p .< g.size) {
                    XCTAssertEqual(with.image[i].bitPattern, without.image[i].bitPattern, "image voxel changed at iteration \(it)")
                } else {
                    XCTAssertEqual(without.image[i], -1, "padding is air (-1000 HU) without context")
                    outside.append(with.image[i])
                }
            } } }
            XCTAssertFalse(outside.isEmpty)
            if outside.allSatisfy({ $0 == -1 }) { plain += 1; continue }
            filled += 1
            let meanHU = 1000 * outside.reduce(0, +) / Float(outside.count)
            XCTAssertTrue(meanHU > -155 && meanHU < 65, "filled with \(meanHU) HU at iteration \(it)")
            XCTAssertEqual(with.target, without.target); XCTAssertEqual(with.memory, without.memory)
        }
        XCTAssertGreaterThan(filled, 2); XCTAssertGreaterThan(plain, 2)
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

import XCTest
import IFCNEngine
import IFCNVolume
@testable import IFCNSegmentation

/// The iterative instance segmentation with perfect and broken stand-ins for the network.
final class WalkTests: XCTestCase {
    let patch = 32
    let spacing = 2.0

    /// Every vertebra of n_min or more is found exactly, labels run superior to inferior, no input is
    /// evaluated twice, and the walk covers a scan several patches tall.
    func testOracleFindsEveryVertebraSuperiorToInferior() throws {
        let (image, truthVolume) = Fixture.canonicalSpine(seed: 11, size: SIMD3(96, 96, 150), spacing: spacing)
        let truth = CanonicalTruth(truthVolume)
        let options = SegmentationOptions()
        let nMin = options.minVoxels(spacing: image.grid.spacing)
        XCTAssertEqual(nMin, 125)
        let expected = truth.labels(atLeast: nMin)
        XCTAssertGreaterThanOrEqual(expected.count, 15, "the synthetic scan should hold a long column")
        XCTAssertGreaterThan(image.grid.size.z, 4 * patch)

        let oracle = OracleModel(truth: truth, patch: patch, ignoreBelow: nMin)
        let segmenter = Segmenter(model: oracle, info: try Fixture.info(patch: patch, spacing: spacing), options: options)
        var lines: [String] = []
        let result = segmenter.segmentCanonical(image) { lines.append($0) }

        XCTAssertEqual(result.instances.count, expected.count)
        XCTAssertEqual(result.labels.grid, image.grid)
        for (i, gt) in expected.enumerated() where i < result.instances.count {
            let d = Fixture.dice(result.labels.voxels, Int32(i + 1), truthVolume.voxels, Int32(gt))
            XCTAssertEqual(d, 1, accuracy: 1e-12, "instance \(i + 1) vs vertebra \(gt)")
            let r = result.instances[i]
            XCTAssertEqual(r.label, i + 1)
            XCTAssertEqual(r.voxels, truth.voxels[gt])
            XCTAssertEqual(r.completeness, truth.cut.contains(gt) ? 0.1 : 0.9)
            XCTAssertGreaterThanOrEqual(r.evaluations, 1)
            XCTAssertLessThanOrEqual(r.moves, options.maxMoves)
            XCTAssertLessThanOrEqual(r.evaluations, r.moves + 2)
        }
        // Superior to inferior: centroids descend in z.
        let zs = result.instances.map { $0.centroidMM[2] }
        XCTAssertEqual(zs, zs.sorted(by: >))
        // Nothing outside the found vertebrae is labelled.
        let labelled = result.labels.voxels.filter { $0 > 0 }.count
        XCTAssertEqual(labelled, expected.reduce(0) { $0 + truth.voxels[$1] })

        XCTAssertEqual(result.evaluations, oracle.origins.count)
        XCTAssertEqual(oracle.repeatedInputs, 0, "an input (position and memory) was evaluated twice")
        // A few evaluations per vertebra plus one per grid position that shows nothing new.
        let positions = PatchGrid(size: image.grid.size, patch: patch).walk.count
        XCTAssertLessThanOrEqual(result.evaluations, positions + 4 * expected.count)
        XCTAssertTrue(lines.contains { $0.hasPrefix("found instance 1:") })
        XCTAssertTrue(lines.last?.hasPrefix("\(expected.count) instances, \(result.evaluations) evaluations") ?? false)
    }

    /// Patches stay inside the image padded by P/2 on every axis, and their centres inside the image.
    func testPatchesStayInsidePaddedImage() throws {
        let (image, truthVolume) = Fixture.canonicalSpine(seed: 5, spacing: spacing)
        let oracle = OracleModel(truth: CanonicalTruth(truthVolume), patch: patch, ignoreBelow: 125)
        _ = Segmenter(model: oracle, info: try Fixture.info(patch: patch, spacing: spacing)).segmentCanonical(image)
        XCTAssertFalse(oracle.origins.isEmpty)
        let s = image.grid.size
        for o in oracle.origins {
            for a in 0..<3 {
                XCTAssertGreaterThanOrEqual(o[a], -patch / 2)
                XCTAssertLessThanOrEqual(o[a] + patch, s[a] + patch / 2)
                XCTAssertTrue((0..<s[a]).contains(o[a] + patch / 2), "centre outside the image: \(o)")
            }
        }
    }

    /// A scan smaller than a patch on every axis is padded and still segmented completely.
    func testScanSmallerThanPatch() throws {
        let (image, truthVolume) = Fixture.canonicalSpine(seed: 3, size: SIMD3(28, 28, 24),
                                                          scanSpacing: SIMD3(2, 2, 2), spacing: spacing)
        let s = image.grid.size
        XCTAssertTrue(s.x < patch && s.y < patch && s.z < patch, "\(s)")
        var options = SegmentationOptions()
        options.minVolumeMM3 = 200
        let nMin = options.minVoxels(spacing: image.grid.spacing)
        let truth = CanonicalTruth(truthVolume)
        let expected = truth.labels(atLeast: nMin)
        XCTAssertGreaterThanOrEqual(expected.count, 2)
        let oracle = OracleModel(truth: truth, patch: patch, ignoreBelow: nMin)
        let result = Segmenter(model: oracle, info: try Fixture.info(patch: patch, spacing: spacing), options: options)
            .segmentCanonical(image)
        XCTAssertEqual(result.instances.count, expected.count)
        for (i, gt) in expected.enumerated() where i < result.instances.count {
            XCTAssertEqual(Fixture.dice(result.labels.voxels, Int32(i + 1), truthVolume.voxels, Int32(gt)), 1, accuracy: 1e-12)
        }
        XCTAssertEqual(oracle.origins.first, SIMD3(s.x / 2 - patch / 2, s.y / 2 - patch / 2, s.z / 2 - patch / 2))
    }

    /// No bone: one evaluation per grid position, no instance.
    func testScanWithoutBone() throws {
        let grid = Grid.canonical(size: SIMD3(70, 50, 90), spacing: SIMD3(repeating: spacing), origin: .zero)
        let image = Volume(grid: grid, fill: 40)
        let model = EmptyModel(patch: patch)
        let result = Segmenter(model: model, info: try Fixture.info(patch: patch, spacing: spacing)).segmentCanonical(image)
        XCTAssertTrue(result.instances.isEmpty)
        XCTAssertTrue(result.labels.voxels.allSatisfy { $0 == 0 })
        let walk = PatchGrid(size: grid.size, patch: patch).walk
        XCTAssertEqual(result.evaluations, walk.count)
        XCTAssertEqual(model.origins, walk.map { $0 &- patch / 2 })
        XCTAssertEqual(model.repeatedInputs, 0)
        // z from the superior end (high index) downwards.
        XCTAssertEqual(model.origins.first?.z, grid.size.z - patch)
        XCTAssertEqual(model.origins.last?.z, 0)
    }

    /// A network that keeps returning an already segmented vertebra must not make the walk loop.
    func testStuckModelTerminates() throws {
        let (image, truthVolume) = Fixture.canonicalSpine(seed: 7, spacing: spacing)
        let truth = CanonicalTruth(truthVolume)
        let target = truth.labels(atLeast: 125)[1]
        let model = StuckModel(truth: truth, patch: patch, label: target)
        let result = Segmenter(model: model, info: try Fixture.info(patch: patch, spacing: spacing)).segmentCanonical(image)
        XCTAssertEqual(result.instances.count, 1)
        XCTAssertEqual(Fixture.dice(result.labels.voxels, 1, truthVolume.voxels, Int32(target)), 1, accuracy: 1e-12)
        let positions = PatchGrid(size: image.grid.size, patch: patch).walk.count
        XCTAssertLessThanOrEqual(result.evaluations, positions * (SegmentationOptions().maxMoves + 2))
        XCTAssertEqual(model.repeatedInputs, 0)
    }

    /// The walk stops at maxInstances; those found are the most superior ones.
    func testMaxInstances() throws {
        let (image, truthVolume) = Fixture.canonicalSpine(seed: 11, size: SIMD3(96, 96, 150), spacing: spacing)
        let truth = CanonicalTruth(truthVolume)
        var options = SegmentationOptions()
        options.maxInstances = 3
        let oracle = OracleModel(truth: truth, patch: patch, ignoreBelow: 125)
        let result = Segmenter(model: oracle, info: try Fixture.info(patch: patch, spacing: spacing), options: options)
            .segmentCanonical(image)
        XCTAssertEqual(result.instances.count, 3)
        XCTAssertEqual(Set(result.labels.voxels), [0, 1, 2, 3])
        let zs = result.instances.map { $0.centroidMM[2] }
        XCTAssertEqual(zs, zs.sorted(by: >))
    }

    /// dropIncomplete removes instances with completeness below 0.5 and renumbers the rest 1...K.
    func testDropIncomplete() throws {
        let (image, truthVolume) = Fixture.canonicalSpine(seed: 11, size: SIMD3(96, 96, 150), spacing: spacing)
        let truth = CanonicalTruth(truthVolume)
        let expected = truth.labels(atLeast: 125).filter { !truth.cut.contains($0) }
        XCTAssertFalse(truth.cut.isEmpty, "the synthetic column runs past both ends")
        var options = SegmentationOptions()
        options.dropIncomplete = true
        let oracle = OracleModel(truth: truth, patch: patch, ignoreBelow: 125)
        let result = Segmenter(model: oracle, info: try Fixture.info(patch: patch, spacing: spacing), options: options)
            .segmentCanonical(image)
        XCTAssertEqual(result.instances.map(\.label), Array(1...expected.count))
        XCTAssertTrue(result.instances.allSatisfy { $0.completeness >= 0.5 })
        for (i, gt) in expected.enumerated() {
            XCTAssertEqual(Fixture.dice(result.labels.voxels, Int32(i + 1), truthVolume.voxels, Int32(gt)), 1, accuracy: 1e-12)
        }
        XCTAssertEqual(Set(result.labels.voxels), Set((0...expected.count).map { Int32($0) }))
    }

    /// `--explain` says, for every position, what was accepted or why nothing was.
    func testExplainNamesEveryDecision() throws {
        let (image, truthVolume) = Fixture.canonicalSpine(seed: 11, size: SIMD3(96, 96, 150), spacing: spacing)
        let truth = CanonicalTruth(truthVolume)
        let info = try Fixture.info(patch: patch, spacing: spacing)
        let positions = PatchGrid(size: image.grid.size, patch: patch).walk.count

        func explained(_ model: HostPatchModel, _ options: SegmentationOptions = .init()) -> [String] {
            let segmenter = Segmenter(model: model, info: info, options: options)
            var lines: [String] = []
            segmenter.explain = { lines.append($0) }
            _ = segmenter.segmentCanonical(image)
            return lines
        }
        // Nothing anywhere: one line per position, each saying no fragment reached n_min.
        let empty = explained(EmptyModel(patch: patch))
        XCTAssertEqual(empty.count, positions)
        XCTAssertTrue(empty.allSatisfy { $0.contains("no fragment of n_min 125 voxels (largest seen: 0)") })
        XCTAssertTrue(empty.first?.hasPrefix("position 1/\(positions) ") ?? false)

        // A model stuck on one vertebra: one acceptance, then "already segmented" everywhere it shows it.
        let target = try XCTUnwrap(truth.labels(atLeast: 125).dropFirst(3).first)
        let stuck = explained(StuckModel(truth: truth, patch: patch, label: target))
        XCTAssertEqual(stuck.filter { $0.contains("accepted instance 1") }.count, 1)
        XCTAssertTrue(stuck.contains { $0.contains("already segmented") })

        // The bound on instances is named.
        var options = SegmentationOptions()
        options.maxInstances = 2
        let bounded = explained(OracleModel(truth: truth, patch: patch, ignoreBelow: 125), options)
        XCTAssertEqual(bounded.filter { $0.contains("accepted instance") }.count, 2)
        XCTAssertTrue(bounded.last?.contains("walk bound reached (2 instances)") ?? false)
    }

    /// Following stops after maxMoves at the mean of the last two centres when the fragment keeps jumping.
    func testFollowIsBoundedByMaxMoves() throws {
        let grid = Grid.canonical(size: SIMD3(80, 80, 80), spacing: SIMD3(repeating: spacing), origin: .zero)
        let model = JumpingModel(patch: patch, size: grid.size)
        var options = SegmentationOptions()
        options.maxMoves = 5
        options.maxInstances = 1
        let result = Segmenter(model: model, info: try Fixture.info(patch: patch, spacing: spacing), options: options)
            .segmentCanonical(Volume(grid: grid, fill: 0))
        XCTAssertEqual(result.instances.count, 1)
        XCTAssertEqual(result.instances.first?.moves, 5)
        // Centres x = 16, 22, 28, 34, 28, 34, then the mean of the last two, 31: the second visits to 28
        // and 34 come from the cache.
        XCTAssertEqual(result.instances.first?.evaluations, 5)
        XCTAssertEqual(model.origins.map(\.x), [16, 22, 28, 34, 31].map { $0 - patch / 2 })
        XCTAssertEqual(model.repeatedInputs, 0)
        let last = model.origins[model.origins.count - 1], a = model.origins[model.origins.count - 2],
            b = model.origins[model.origins.count - 3]
        XCTAssertEqual(SIMD3<Double>(last), (SIMD3<Double>(a) + SIMD3<Double>(b)) / 2)

        let segmenter = Segmenter(model: JumpingModel(patch: patch, size: grid.size), info: try Fixture.info(patch: patch, spacing: spacing),
                                  options: options)
        var lines: [String] = []
        segmenter.explain = { lines.append($0) }
        _ = segmenter.segmentCanonical(Volume(grid: grid, fill: 0))
        XCTAssertTrue(lines.first?.contains("stopped after the move bound (5)") ?? false, lines.first ?? "")
    }
}

/// A model whose fragment (a 7^3 cube) sits 6 voxels along x from the patch centre: ahead while the
/// centre is at x <= 30, behind otherwise, so the patch ends up jumping between x = 28 and 34.
final class JumpingModel: RecordingModel {
    let size: SIMD3<Int>

    init(patch: Int, size: SIMD3<Int>) {
        self.size = size
        super.init(patch: patch)
    }

    override func respond(memory: UnsafePointer<Float>, origin: SIMD3<Int>, probabilities: UnsafeMutablePointer<Float>) -> Double {
        let h = patch / 2
        let cx = origin.x + h <= 30 ? h + 6 : h - 6
        for z in (h - 3)...(h + 3) {
            for y in (h - 3)...(h + 3) {
                for x in (cx - 3)...(cx + 3) { probabilities[x + patch * (y + patch * z)] = 1 }
            }
        }
        return 1
    }
}

import XCTest
@testable import IFCNVolume

final class PreprocessTests: XCTestCase {
    /// The synthetic generator is deterministic, labels 1...K superior to inferior, with bone, discs and air.
    func testSyntheticSpine() {
        let a = SyntheticSpine.generate(seed: 7), b = SyntheticSpine.generate(seed: 7)
        XCTAssertEqual(a.image.voxels, b.image.voxels)
        XCTAssertEqual(a.labels.voxels, b.labels.voxels)
        XCTAssertNotEqual(SyntheticSpine.generate(seed: 8).labels.voxels, a.labels.voxels)
        XCTAssertEqual(a.image.grid.size, SyntheticSpine.defaultSize)
        XCTAssertTrue((6...10).contains(a.vertebraCount), "\(a.vertebraCount) vertebrae")
        let vertebrae = VertebraInfo.collect(from: a.labels)
        XCTAssertEqual(vertebrae.map(\.label), Array(1...a.vertebraCount))
        // Partly visible vertebrae at both ends touch the first/last slice.
        XCTAssertEqual(vertebrae.first!.bboxMax.z, a.image.grid.size.z - 1)
        XCTAssertEqual(vertebrae.last!.bboxMin.z, 0)
        let bone = zip(a.image.voxels, a.labels.voxels).filter { $0.1 > 0 }.map { Double($0.0) }
        let air = zip(a.image.voxels, a.labels.voxels).filter { $0.0 < -500 }.count
        XCTAssertGreaterThan(bone.reduce(0, +) / Double(bone.count), 250)
        XCTAssertGreaterThan(air, a.image.voxels.count / 10)
    }

    /// End to end on synthetic cases: files, manifest, grid, vertebra order, weights, deterministic split.
    func testPreprocessSynthetic() throws {
        let dir = try TestSupport.tempDir(self)
        let input = dir + "/in", output = dir + "/out"
        let size = SIMD3(48, 48, 30), spacing = SIMD3(1.6, 1.6, 4.0)
        try SyntheticSpine.writeCases(to: input, count: 3, seed: 11, size: size, spacing: spacing)
        // A MetaImage case with _seg naming in the same folder.
        let c = SyntheticSpine.generate(seed: 99, size: size, spacing: spacing)
        try VolumeIO.writeMetaImage(c.image, to: input + "/meta.mha", as: .int16, compressed: true)
        try VolumeIO.writeMetaImage(c.labels, to: input + "/meta_seg.mhd", as: .uint8, compressed: false)
        var options = PreprocessOptions()
        options.spacing = 2
        options.crop = .mid
        options.seed = 5
        let manifest = try Preprocessor.run(input: input, output: output, options: options)
        XCTAssertEqual(manifest.cases.map(\.name), ["meta", "synth000", "synth001", "synth002"])
        XCTAssertEqual(manifest.cases(in: .validation).count, 1)
        let loaded = try DatasetManifest.load(from: output)
        XCTAssertEqual(loaded.cases.map(\.split), manifest.cases.map(\.split))
        XCTAssertEqual(loaded.spacing, 2)
        XCTAssertEqual(loaded.crop, .mid)
        for entry in loaded.cases {
            let image = try VolumeIO.read(output + "/" + entry.image)
            let labels = try VolumeIO.readLabels(output + "/" + entry.label)
            let weights = try VolumeIO.read(output + "/" + entry.weight)
            TestSupport.assertGrid(image.grid, entry.grid, accuracy: 1e-5)
            XCTAssertEqual(labels.grid.size, image.grid.size)
            XCTAssertEqual(entry.grid.spacing, SIMD3(repeating: 2))
            XCTAssertEqual(entry.grid.direction, Grid.identity)
            // Superior to inferior: centroid z descending.
            let zs = entry.vertebrae.map(\.centroidMM.z)
            XCTAssertEqual(zs, zs.sorted(by: >))
            // The manifest matches the written label map (world positions up to NIfTI's float32 geometry).
            let recomputed = VertebraInfo.collect(from: labels)
            XCTAssertEqual(entry.vertebrae.map(\.label), recomputed.map(\.label))
            XCTAssertEqual(entry.vertebrae.map(\.voxels), recomputed.map(\.voxels))
            XCTAssertEqual(entry.vertebrae.map(\.bboxMin), recomputed.map(\.bboxMin))
            XCTAssertEqual(entry.vertebrae.map(\.bboxMax), recomputed.map(\.bboxMax))
            XCTAssertEqual(entry.vertebrae.map(\.centroidIndex), recomputed.map(\.centroidIndex))
            for (a, b) in zip(entry.vertebrae, recomputed) {
                XCTAssertLessThan(((a.centroidMM - b.centroidMM) * (a.centroidMM - b.centroidMM)).sum(), 1e-8)
            }
            // Mid crop: first and last slices lie at the centroid planes of the extreme vertebrae of the uncropped scan.
            XCTAssertNotNil(entry.cropZ)
            XCTAssertTrue(weights.voxels.allSatisfy { $0 >= 1 && $0 <= 9 })
            XCTAssertGreaterThan(weights.voxels.max()!, 8)
            XCTAssertEqual(labels.voxels.filter { $0 > 0 }.count, entry.vertebrae.reduce(0) { $0 + $1.voxels })
        }
        // Split is deterministic for a seed.
        XCTAssertEqual(Preprocessor.split(names: ["a", "b", "c", "d", "e"], fraction: 0.4, seed: 3),
                       Preprocessor.split(names: ["e", "d", "c", "b", "a"], fraction: 0.4, seed: 3))
        XCTAssertEqual(Preprocessor.split(names: ["a", "b"], fraction: 0.2, seed: 0).values.filter { $0 == .validation }.count, 1)
        XCTAssertEqual(Preprocessor.split(names: ["a"], fraction: 0.2, seed: 0), ["a": .train])
        // No staging folder left behind.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: output).sorted(),
                       ["dataset.json", "images", "labels", "store", "weights"])
    }

    /// The VerSe pair naming (_ct + _seg-vert_msk) at a coarse spacing; superior vertebrae have lower labels.
    func testPreprocessVerse() throws {
        let verse = try TestSupport.verse()
        let dir = try TestSupport.tempDir(self)
        let pairs = try Preprocessor.findPairs(in: verse)
        XCTAssertEqual(pairs.map(\.name), ["sub-verse005", "sub-verse008", "sub-verse012"])
        var options = PreprocessOptions()
        options.spacing = 4
        let manifest = try Preprocessor.run(input: verse, output: dir + "/out", options: options)
        XCTAssertEqual(manifest.cases.count, 3)
        XCTAssertEqual(manifest.cases(in: .validation).count, 1)
        for entry in manifest.cases {
            XCTAssertEqual(entry.vertebrae.map(\.label), entry.vertebrae.map(\.label).sorted())
            XCTAssertGreaterThanOrEqual(entry.vertebrae.count, 5)
        }
        XCTAssertEqual(manifest.downsampling, .gaussian)
        // Fields of view (docs/ACCURACY.md): 005 and 008 end at their labels, 012 shows 40 mm of tissue in front
        // of and behind the spine. A model trained on the first two failed on 012 in every cross-validation run.
        XCTAssertEqual(manifest.cases.filter(\.isCroppedToLabels).map(\.name), ["sub-verse005", "sub-verse008"])
        var allTraining = manifest
        for i in allTraining.cases.indices { allTraining.cases[i].split = .train }
        XCTAssertEqual(allTraining.fieldOfViewNotes.count, 1)
        XCTAssertTrue(allTraining.fieldOfViewNotes[0].contains("training scans differ in field of view: cropped to the labelled vertebrae (under 10 mm of tissue around them in the axial plane): sub-verse005, sub-verse008; with the tissue around the spine: sub-verse012"),
                      allTraining.fieldOfViewNotes[0])
        var cropped = allTraining, wide = allTraining
        cropped.cases.removeAll { $0.name == "sub-verse012" }
        XCTAssertTrue(cropped.fieldOfViewNotes.first?.contains("every training scan is cropped to the labelled vertebrae") == true,
                      "\(cropped.fieldOfViewNotes)")
        wide.cases.removeAll { $0.isCroppedToLabels }
        XCTAssertEqual(wide.fieldOfViewNotes, [])
        XCTAssertGreaterThan(wide.cases[0].contextMarginsMM[2], 30)
    }

    /// dataset.json round trip; a damaged manifest gives an error naming it.
    func testManifestCoding() throws {
        let dir = try TestSupport.tempDir(self)
        let entry = CaseEntry(name: "a", image: "images/a.nii.gz", label: "labels/a.nii.gz", weight: "weights/a.nii.gz",
                              split: .train, grid: TestSupport.obliqueGrid,
                              vertebrae: [VertebraInfo(label: 3, voxels: 10, centroidMM: SIMD3(1, 2, 3), centroidIndex: SIMD3(0.5, 1, 2),
                                                       bboxMin: SIMD3(0, 0, 0), bboxMax: SIMD3(1, 2, 3))])
        let m = DatasetManifest(spacing: 1.5, intensityOffset: -1024, seed: 9, validationFraction: 0.2, crop: CropMode.none, cases: [entry])
        try m.save(to: dir)
        let back = try DatasetManifest.load(from: dir)
        XCTAssertEqual(back.cases.first?.grid, entry.grid)
        XCTAssertEqual(back.cases.first?.vertebrae, entry.vertebrae)
        XCTAssertEqual(back.intensityOffset, -1024)
        XCTAssertEqual(back.seed, 9)
        let text = try String(contentsOfFile: dir + "/dataset.json", encoding: .utf8)
        // the split and the crop stay plain strings in the file
        XCTAssertTrue(text.contains("\"split\" : \"train\""), text)
        XCTAssertTrue(text.contains("\"crop\" : \"none\""), text)
        try text.replacingOccurrences(of: "\"direction\" : [", with: "\"direction\" : [7, ")
            .write(toFile: dir + "/dataset.json", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try DatasetManifest.load(from: dir)) { error in
            XCTAssertTrue("\(error)".contains("dataset.json"), "\(error)")
        }
        XCTAssertThrowsError(try DatasetManifest.load(from: dir + "/nowhere"))
    }

    /// Bad inputs give errors naming the file and leave no output behind.
    func testErrors() throws {
        let dir = try TestSupport.tempDir(self)
        let size = SIMD3(32, 32, 16), spacing = SIMD3(2.0, 2.0, 5.0)
        let c = SyntheticSpine.generate(seed: 1, size: size, spacing: spacing)
        func expectFailure(_ name: String, mentioning needle: String, setup: (String) throws -> Void) throws {
            let input = dir + "/" + name, output = dir + "/" + name + "-out"
            try FileManager.default.createDirectory(atPath: input, withIntermediateDirectories: true)
            try setup(input)
            XCTAssertThrowsError(try Preprocessor.run(input: input, output: output, options: PreprocessOptions()), name) { error in
                XCTAssertTrue("\(error)".contains(needle), "\(name): \(error)")
            }
            let left = (try? FileManager.default.contentsOfDirectory(atPath: output)) ?? []
            XCTAssertEqual(left.filter { !["images", "labels", "weights", "store"].contains($0) }, [], name)
            for sub in ["images", "labels", "weights", "store"] {
                XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: output + "/" + sub)) ?? [], [], name)
            }
        }
        try expectFailure("orphan", mentioning: "lonely_label.nii.gz") { input in
            try VolumeIO.write(c.labels, to: input + "/lonely_label.nii.gz", as: .uint8)
        }
        try expectFailure("empty-labels", mentioning: "a_label.nii.gz") { input in
            try VolumeIO.write(c.image, to: input + "/a.nii.gz", as: .int16)
            try VolumeIO.write(Volume(grid: c.image.grid, fill: 0), to: input + "/a_label.nii.gz", as: .uint8)
        }
        try expectFailure("nan", mentioning: "b.nii") { input in
            var image = c.image
            image.voxels[100] = .nan
            try VolumeIO.write(image, to: input + "/b.nii", as: .float32)
            try VolumeIO.write(c.labels, to: input + "/b_label.nii", as: .uint8)
        }
        try expectFailure("grid-mismatch", mentioning: "differs from the image") { input in
            try VolumeIO.write(c.image, to: input + "/g.nii.gz", as: .int16)
            var labels = c.labels
            labels.grid.origin.x += 3
            try VolumeIO.write(labels, to: input + "/g_label.nii.gz", as: .uint8)
        }
        try expectFailure("one-good-one-bad", mentioning: "z_label.mhd") { input in
            try VolumeIO.write(c.image, to: input + "/ok.nii.gz", as: .int16)
            try VolumeIO.write(c.labels, to: input + "/ok_label.nii.gz", as: .uint8)
            try VolumeIO.write(c.image, to: input + "/z.nii.gz", as: .int16)
            try Data("NDims = 2\nElementDataFile = z.raw\n".utf8).write(to: URL(fileURLWithPath: input + "/z_label.mhd"))
        }
        try expectFailure("nothing", mentioning: "no image/label pairs") { _ in }
    }
}

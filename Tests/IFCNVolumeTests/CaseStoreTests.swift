import Foundation
import XCTest
@testable import IFCNVolume

/// The training store (store/<case>.ifcs): exact round trip against the NIfTI volumes, clear
/// errors for damaged or foreign files, conversion of folders written without a store.
final class CaseStoreTests: XCTestCase {
    /// Preprocesses three synthetic cases at 4 mm into `dir/out`.
    func preprocessed(_ dir: String, imageType: VoxelType) throws -> DatasetManifest {
        try SyntheticSpine.writeCases(to: dir + "/in", count: 3, seed: 21, size: SIMD3(48, 48, 30), spacing: SIMD3(1.6, 1.6, 4.0))
        var options = PreprocessOptions()
        options.spacing = 4
        options.imageType = imageType
        return try Preprocessor.run(input: dir + "/in", output: dir + "/out", options: options)
    }

    func testEveryVoxelEqualsTheNIfTIVolumes() throws {
        for type in [VoxelType.float32, .int16] {
            let dir = try TestSupport.tempDir(self)
            let manifest = try preprocessed(dir, imageType: type)
            XCTAssertEqual(try DatasetManifest.load(from: dir + "/out").storeVersion, Int(CaseStore.version))
            for e in manifest.cases {
                let s = try XCTUnwrap(e.store)
                XCTAssertEqual(s.image, type); XCTAssertEqual(s.labels, .uint8); XCTAssertEqual(s.weights, .float32)
                XCTAssertEqual(CaseStore.fileSize(dir + "/out/" + s.file), s.bytes)
                let m = try MappedCaseStore(path: dir + "/out/" + s.file, entry: s, grid: e.grid)
                let image = try VolumeIO.read(dir + "/out/" + e.image)
                let labels = try VolumeIO.readLabels(dir + "/out/" + e.label)
                let weights = try VolumeIO.read(dir + "/out/" + e.weight)
                XCTAssertEqual(m.image(grid: e.grid).voxels.map(\.bitPattern), image.voxels.map(\.bitPattern), "\(e.name) image")
                XCTAssertEqual(m.labels(grid: e.grid).voxels, labels.voxels, "\(e.name) labels")
                XCTAssertEqual(m.weights(grid: e.grid).voxels.map(\.bitPattern), weights.voxels.map(\.bitPattern), "\(e.name) weights")
                XCTAssertTrue(weights.voxels.contains { $0 > 1 })
                // a row from the middle, as the sampler reads it
                var row = [Float](repeating: 0, count: 7)
                let at = e.grid.linearIndex(3, 5, 7)
                m.imageRow(at, 7, into: &row)
                XCTAssertEqual(row, Array(image.voxels[at..<(at + 7)]))
            }
        }
    }

    func testLabelTypeFollowsTheLargestLabel() {
        let g = Grid.canonical(size: SIMD3(2, 2, 1), spacing: SIMD3(1, 1, 1), origin: SIMD3(0, 0, 0))
        XCTAssertEqual(CaseStore.labelType(of: LabelVolume(grid: g, voxels: [0, 1, 255, 3])), .uint8)
        XCTAssertEqual(CaseStore.labelType(of: LabelVolume(grid: g, voxels: [0, 1, 256, 3])), .uint16)
        XCTAssertEqual(CaseStore.labelType(of: LabelVolume(grid: g, voxels: [0, 70000, 2, 3])), .int32)
        // and wide labels come back exactly
        let dir = NSTemporaryDirectory() + "ifcn-store-label-\(UUID().uuidString).ifcs"
        defer { unlink(dir) }
        let labels = LabelVolume(grid: g, voxels: [0, 70000, 2, 16_000_000])
        let entry = try? CaseStore.write(image: Volume(grid: g, fill: -1000), labels: labels, weights: Volume(grid: g, fill: 1),
                                         imageType: .int16, to: dir, relativePath: "x")
        XCTAssertEqual(entry.flatMap { try? MappedCaseStore(path: dir, entry: $0, grid: g) }?.labels(grid: g), labels)
    }

    func assertError(_ path: String, _ entry: CaseStoreEntry, _ grid: Grid, contains text: String,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try MappedCaseStore(path: path, entry: entry, grid: grid), file: file, line: line) { error in
            let message = "\(error)"
            XCTAssertTrue(message.hasPrefix(path + ":"), "error does not name the file: \(message)", file: file, line: line)
            XCTAssertTrue(message.contains(text), "expected '\(text)' in: \(message)", file: file, line: line)
        }
    }

    func testTruncatedMissingOrForeignStoresAreClearErrors() throws {
        let dir = try TestSupport.tempDir(self)
        let g1 = Grid.canonical(size: SIMD3(20, 20, 30), spacing: SIMD3(4, 4, 4), origin: SIMD3(0, 0, 0))
        let g2 = Grid.canonical(size: SIMD3(30, 20, 20), spacing: SIMD3(4, 4, 4), origin: SIMD3(0, 0, 0))
        func write(_ g: Grid, _ name: String) throws -> CaseStoreEntry {
            let labels = LabelVolume(grid: g, voxels: (0..<g.count).map { Int32($0 % 3) })
            return try CaseStore.write(image: Volume(grid: g, voxels: TestSupport.pattern(g)), labels: labels,
                                       weights: distanceWeights(labels: labels), imageType: .int16, to: dir + "/" + name, relativePath: name)
        }
        let a = try write(g1, "a.ifcs"), b = try write(g2, "b.ifcs")
        XCTAssertEqual(a.bytes, b.bytes)
        XCTAssertNoThrow(try MappedCaseStore(path: dir + "/a.ifcs", entry: a, grid: g1))
        // another case's file of the same size: the header's grid differs
        assertError(dir + "/b.ifcs", a, g1, contains: "belongs to another case")
        // the index and the grid disagree
        var g3 = g1; g3.size.z = 31
        assertError(dir + "/a.ifcs", a, g3, contains: "needs")
        var wrongType = a; wrongType.image = .float32
        assertError(dir + "/a.ifcs", wrongType, g1, contains: "needs")
        // missing and truncated
        assertError(dir + "/none.ifcs", a, g1, contains: "not found")
        try FileManager.default.copyItem(atPath: dir + "/a.ifcs", toPath: dir + "/t.ifcs")
        XCTAssertEqual(truncate(dir + "/t.ifcs", off_t(a.bytes - 4096)), 0)
        assertError(dir + "/t.ifcs", a, g1, contains: "truncated")
        // a damaged header
        let h = try FileHandle(forUpdating: URL(fileURLWithPath: dir + "/a.ifcs"))
        try h.write(contentsOf: Data("XXXX".utf8))
        try h.close()
        assertError(dir + "/a.ifcs", a, g1, contains: "bad magic")
    }

    /// A folder written before the store existed gets the same store files from `CaseStore.build`.
    func testBuildConvertsAFolderWithoutAStore() throws {
        let dir = try TestSupport.tempDir(self)
        let manifest = try preprocessed(dir, imageType: .int16)
        let out = dir + "/out"
        let originals = try manifest.cases.map { try Data(contentsOf: URL(fileURLWithPath: out + "/" + $0.store!.file)) }
        var old = manifest
        for i in old.cases.indices { old.cases[i].store = nil }
        old.storeVersion = nil
        try old.save(to: out)
        try FileManager.default.removeItem(atPath: out + "/store")
        XCTAssertFalse(try String(contentsOfFile: out + "/dataset.json", encoding: .utf8).contains("\"store"))
        let built = try CaseStore.build(dataset: out)
        XCTAssertEqual(built.storeVersion, Int(CaseStore.version))
        XCTAssertEqual(built.cases.map(\.store), manifest.cases.map(\.store))
        for (e, data) in zip(built.cases, originals) {
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out + "/" + e.store!.file)), data, e.name)
        }
    }
}

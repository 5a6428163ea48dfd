import Foundation
import IFCNSupport
import XCTest
@testable import IFCNVolume

/// Files and values built to mislead or exhaust the readers (issue 14): each is refused with an error naming
/// the file, before anything large is allocated.
final class HostileInputTests: XCTestCase {
    /// A small int16 .nii (8x8x8, vox_offset 352) as bytes.
    func smallNIfTI(_ dir: String) throws -> Data {
        let grid = Grid.canonical(size: SIMD3(8, 8, 8), spacing: SIMD3(1, 1, 1), origin: .zero)
        try VolumeIO.write(Volume(grid: grid, voxels: TestSupport.pattern(grid)), to: dir + "/ok.nii", as: .int16)
        return try Data(contentsOf: URL(fileURLWithPath: dir + "/ok.nii"))
    }

    func assertRefused(_ path: String, containing text: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try VolumeIO.read(path), file: file, line: line) { error in
            XCTAssertEqual((error as? VolumeError)?.path, path, "\(error)", file: file, line: line)
            XCTAssertTrue("\(error)".contains(text), "\(error)", file: file, line: line)
        }
    }

    /// nifticlib reads a vox_offset below 352 (or NaN) from byte 348, shifting the image; ifcn refuses it, and a
    /// .nii whose magic puts the voxels in a separate .img file.
    func testVoxOffsetBelowTheHeaderOrNaNIsRefused() throws {
        let dir = try TestSupport.tempDir(self)
        let good = try smallNIfTI(dir)
        XCTAssertEqual(try VolumeIO.read(dir + "/ok.nii").voxels, TestSupport.pattern(Grid.canonical(size: SIMD3(8, 8, 8), spacing: SIMD3(1, 1, 1), origin: .zero)))
        for (name, value) in [("348", Float(348)), ("0", 0), ("nan", .nan), ("inf", .infinity), ("half", 352.5), ("neg", -352)] {
            var bytes = good
            withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.replaceSubrange(108..<112, with: $0) }
            let path = dir + "/vox_\(name).nii"
            try bytes.write(to: URL(fileURLWithPath: path))
            assertRefused(path, containing: "vox_offset")
        }
        var pair = good
        pair.replaceSubrange(344..<348, with: Array("ni1\0".utf8))
        try pair.write(to: URL(fileURLWithPath: dir + "/pair.nii"))
        assertRefused(dir + "/pair.nii", containing: "two-file")
        var analyze = good
        analyze.replaceSubrange(344..<348, with: [0, 0, 0, 0])
        try analyze.write(to: URL(fileURLWithPath: dir + "/analyze.nii"))
        XCTAssertThrowsError(try VolumeIO.read(dir + "/analyze.nii"))
    }

    /// A .nii.gz of a few hundred bytes whose header claims 1024x1024x256 int16 voxels (512 MiB) is refused from
    /// the header: deflate cannot expand that much.
    func testCompressedFileClaimingMoreThanItCanHoldIsRefusedFromTheHeader() throws {
        let dir = try TestSupport.tempDir(self)
        var bytes = try smallNIfTI(dir)
        for (offset, value) in [(42, 1024), (44, 1024), (46, 256)] {
            withUnsafeBytes(of: Int16(value).littleEndian) { bytes.replaceSubrange(offset..<(offset + 2), with: $0) }
        }
        let plain = dir + "/claim.nii"
        try bytes.write(to: URL(fileURLWithPath: plain))
        guard let gzip = ["/bin/gzip", "/usr/bin/gzip"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw XCTSkip("gzip is not installed")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: gzip)
        p.arguments = ["-f", plain]
        try p.run()
        p.waitUntilExit()
        let path = plain + ".gz"
        let start = Date()
        XCTAssertThrowsError(try VolumeIO.readGrid(path)) { error in
            XCTAssertTrue("\(error)".contains("deflate expands at most"), "\(error)")
        }
        assertRefused(path, containing: "deflate expands at most")
        XCTAssertLessThan(Date().timeIntervalSince(start), 2)
    }

    /// A label map on another grid is refused from the headers, before any voxel is read: the image here holds
    /// a NaN, which reading its voxels would report first.
    func testLabelGridIsComparedBeforeAnyVoxelIsRead() throws {
        let dir = try TestSupport.tempDir(self)
        let input = dir + "/in"
        try FileManager.default.createDirectory(atPath: input, withIntermediateDirectories: true)
        let c = SyntheticSpine.generate(seed: 3, size: SIMD3(24, 24, 16), spacing: SIMD3(2, 2, 4))
        var image = c.image
        image.voxels[5] = .nan
        try VolumeIO.write(image, to: input + "/c.nii.gz", as: .float32)
        var shifted = c.labels
        shifted.grid.origin.z += 10
        try VolumeIO.write(shifted, to: input + "/c_label.nii.gz", as: .uint8)
        var options = PreprocessOptions()
        options.spacing = 4
        XCTAssertThrowsError(try Preprocessor.run(input: input, output: dir + "/out", options: options)) { error in
            XCTAssertTrue("\(error)".contains("differs from the image"), "\(error)")
            XCTAssertEqual((error as? VolumeError)?.path, input + "/c_label.nii.gz")
        }
        // With the label map on the image's grid, the NaN is what is reported.
        try VolumeIO.write(c.labels, to: input + "/c_label.nii.gz", as: .uint8)
        XCTAssertThrowsError(try Preprocessor.run(input: input, output: dir + "/out", options: options)) { error in
            XCTAssertTrue("\(error)".contains("non-finite"), "\(error)")
        }
    }

    /// NaN or infinity in a CT: `readScan` refuses it naming the voxel (preprocess and segment both read scans
    /// with it); a plain `read` keeps the values.
    func testNonFiniteVoxelsAreRefusedInScans() throws {
        let dir = try TestSupport.tempDir(self)
        let grid = Grid.canonical(size: SIMD3(4, 3, 2), spacing: SIMD3(1, 1, 1), origin: .zero)
        for bad in [Float.nan, .infinity, -.infinity] {
            var v = Volume(grid: grid, fill: -1000)
            v[1, 2, 1] = bad
            for ext in [".nii.gz", ".mha"] {
                let path = dir + "/bad" + ext
                try VolumeIO.write(v, to: path, as: .float32)
                XCTAssertEqual(try VolumeIO.read(path).voxels.filter { !$0.isFinite }.count, 1)
                XCTAssertThrowsError(try VolumeIO.readScan(path)) { error in
                    XCTAssertEqual((error as? VolumeError)?.path, path)
                    XCTAssertTrue("\(error)".contains("non-finite") && "\(error)".contains("(1, 2, 1)"), "\(error)")
                }
            }
        }
    }

    /// ElementDataFile may name only a file beside the header, unless external data is allowed.
    func testMetaImageDataFileMustLieBesideTheHeader() throws {
        let dir = try TestSupport.tempDir(self)
        let other = try TestSupport.tempDir(self)
        let grid = Grid.canonical(size: SIMD3(2, 2, 2), spacing: SIMD3(1, 1, 1), origin: .zero)
        try VolumeIO.write(Volume(grid: grid, fill: 7), to: other + "/secret.mhd", as: .uint8)
        try FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: other + "/secret.raw", toPath: dir + "/sub/inner.raw")
        try FileManager.default.copyItem(atPath: other + "/secret.raw", toPath: dir + "/beside.raw")
        func header(_ dataFile: String) -> String {
            "ObjectType = Image\nNDims = 3\nDimSize = 2 2 2\nElementType = MET_UCHAR\nElementDataFile = \(dataFile)\n"
        }
        let cases = ["abs": other + "/secret.raw", "sub": "sub/inner.raw", "up": "../" + URL(fileURLWithPath: other).lastPathComponent + "/secret.raw"]
        for (name, dataFile) in cases {
            let path = dir + "/\(name).mhd"
            try header(dataFile).write(toFile: path, atomically: true, encoding: .utf8)
            assertRefused(path, containing: "--allow-external-data")
            XCTAssertThrowsError(try VolumeIO.readGrid(path))
            let allowed = try VolumeIO.read(path, options: VolumeReadOptions(allowExternalData: true))
            XCTAssertEqual(allowed.voxels, [Float](repeating: 7, count: 8), name)
        }
        try header("beside.raw").write(toFile: dir + "/ok.mhd", atomically: true, encoding: .utf8)
        XCTAssertEqual(try VolumeIO.read(dir + "/ok.mhd").voxels, [Float](repeating: 7, count: 8))
        // A folder is not a data file.
        try header("sub").write(toFile: dir + "/dir.mhd", atomically: true, encoding: .utf8)
        assertRefused(dir + "/dir.mhd", containing: "not a regular file")
    }

    /// Header values reach messages quoted, with escape codes escaped and long values cut.
    func testHeaderBytesInMessagesAreQuotedAndTruncated() throws {
        let dir = try TestSupport.tempDir(self)
        let evil = "\u{1B}[2J\u{1B}[31mowned" + String(repeating: "A", count: 5000)
        let lines = [
            ("type", "ObjectType = Image\nNDims = 3\nDimSize = 2 2 2\nElementType = \(evil)\nElementDataFile = LOCAL\n"),
            ("ndims", "ObjectType = Image\nNDims = \(evil)\nDimSize = 2 2 2\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n"),
            ("line", "ObjectType = Image\n\(evil)\nElementDataFile = LOCAL\n"),
            ("spacing", "NDims = 3\nDimSize = 2 2 2\nElementSpacing = 1 \(evil) 1\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n"),
        ]
        for (name, text) in lines {
            let path = dir + "/\(name).mha"
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try VolumeIO.read(path), name) { error in
                let message = "\(error)"
                XCTAssertFalse(message.unicodeScalars.contains { $0.value < 0x20 }, "\(name): \(message.debugDescription)")
                XCTAssertTrue(message.contains("\\u{1B}[2J"), "\(name): \(message)")
                XCTAssertLessThan(message.count, path.count + 300, "\(name): \(message)")
            }
        }
    }

    /// The one grid-size helper: a tiny spacing, a bad spacing or a huge extent gives an error saying what the
    /// grid would need; preprocess at 0.01 mm fails with it (naming the scan), before reading any voxel.
    func testDerivedGridsAreBounded() throws {
        XCTAssertEqual(try GridSize.isotropic(extent: SIMD3(10, 20, 0), spacing: 2), SIMD3(6, 11, 1))
        XCTAssertThrowsError(try GridSize.isotropic(extent: SIMD3(300, 300, 300), spacing: 0.001)) { error in
            XCTAssertTrue(error is TooLarge)
            XCTAssertTrue("\(error)".contains("a 0.001 mm grid over 300 x 300 x 300 mm would need 2.7e+16 voxels (108 PB)"), "\(error)")
        }
        for spacing in [0, -1, Double.nan, .infinity, 1e-300, Double.leastNonzeroMagnitude] {
            XCTAssertThrowsError(try GridSize.isotropic(extent: SIMD3(100, 100, 100), spacing: spacing), "\(spacing)")
        }
        XCTAssertThrowsError(try GridSize.isotropic(extent: SIMD3(.infinity, 1, 1), spacing: 1))
        XCTAssertThrowsError(try GridSize.isotropic(extent: SIMD3(.nan, 1, 1), spacing: 1))
        XCTAssertThrowsError(try GridSize.isotropic(extent: SIMD3(100, 100, 100), spacing: 1, maxVoxels: 1000)) { error in
            XCTAssertTrue("\(error)".contains("more than the limit of 1000 voxels"), "\(error)")
        }

        let dir = try TestSupport.tempDir(self)
        try SyntheticSpine.writeCases(to: dir + "/in", count: 1, seed: 3, size: SIMD3(24, 24, 16), spacing: SIMD3(2, 2, 4))
        var options = PreprocessOptions()
        options.spacing = 0.01
        XCTAssertThrowsError(try Preprocessor.run(input: dir + "/in", output: dir + "/out", options: options)) { error in
            XCTAssertEqual((error as? VolumeError)?.path, dir + "/in/synth000.nii.gz")
            XCTAssertTrue("\(error)".contains("would need") && "\(error)".contains("voxels"), "\(error)")
        }
    }

    /// The memory limit (IFCN_MEMORY_LIMIT_GB) bounds derived grids and images read from files.
    func testMemoryLimitOverride() throws {
        setenv(MemoryLimit.environmentVariable, "0.000001", 1)  // 1 kB
        defer { unsetenv(MemoryLimit.environmentVariable) }
        XCTAssertEqual(MemoryLimit.bytes, 1000, accuracy: 1e-6)
        XCTAssertNoThrow(try GridSize.isotropic(extent: SIMD3(5, 5, 5), spacing: 1))  // 216 voxels, 864 bytes
        XCTAssertThrowsError(try GridSize.isotropic(extent: SIMD3(6, 6, 6), spacing: 1)) { error in
            XCTAssertTrue("\(error)".contains("IFCN_MEMORY_LIMIT_GB"), "\(error)")
        }
        let dir = try TestSupport.tempDir(self)
        unsetenv(MemoryLimit.environmentVariable)
        let grid = Grid.canonical(size: SIMD3(20, 20, 20), spacing: SIMD3(1, 1, 1), origin: .zero)
        try VolumeIO.write(Volume(grid: grid, fill: 0), to: dir + "/v.nii", as: .uint8)
        setenv(MemoryLimit.environmentVariable, "0.000001", 1)
        assertRefused(dir + "/v.nii", containing: "more than the limit")
    }
}

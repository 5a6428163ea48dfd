import XCTest
@testable import IFCNVolume

final class MetaImageTests: XCTestCase {
    /// Every voxel type survives .mhd+.raw, .mha, and zlib-compressed .mhd/.mha round trips with oblique geometry.
    func testRoundTripAllTypes() throws {
        let dir = try TestSupport.tempDir(self)
        let grid = TestSupport.obliqueGrid
        let volume = Volume(grid: grid, voxels: TestSupport.pattern(grid))
        for compressed in [false, true] {
            for ext in [".mhd", ".mha"] {
                for type in VoxelType.allCases {
                    let path = dir + "/rt_\(type.rawValue)_\(compressed)" + ext
                    try VolumeIO.writeMetaImage(volume, to: path, as: type, compressed: compressed)
                    let back = try VolumeIO.read(path)
                    XCTAssertEqual(back.voxels, volume.voxels, "\(type) \(ext) compressed=\(compressed)")
                    TestSupport.assertGrid(back.grid, grid, accuracy: 1e-12)
                }
            }
        }
        // The default writer (VolumeIO.write) produces uncompressed .mhd + .raw.
        try VolumeIO.write(volume, to: dir + "/plain.mhd", as: .int16)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/plain.raw"))
    }

    /// Big-endian data, HeaderSize, key synonyms (Position, Orientation, ElementByteOrderMSB), unknown keys.
    func testHeaderVariants() throws {
        let dir = try TestSupport.tempDir(self)
        let values: [Int16] = [1, -2, 300, -400, 5, 6, 7, 8]
        var payload = Data([0xAB, 0xCD, 0xEF])  // 3 bytes skipped by HeaderSize
        for v in values { withUnsafeBytes(of: v.bigEndian) { payload.append(contentsOf: $0) } }
        try payload.write(to: URL(fileURLWithPath: dir + "/be.dat"))
        let header = """
            ObjectType = Image
            NDims = 3
            DimSize = 2 2 2
            ElementSpacing = 0.5 0.5 3
            Position = 1 2 3
            Orientation = 0 1 0 -1 0 0 0 0 1
            AnatomicalOrientation = RAI
            ITK_InputFilterName = NiftiImageIO
            ElementByteOrderMSB = True
            HeaderSize = 3
            ElementType = MET_SHORT
            ElementDataFile = be.dat
            """
        try header.write(toFile: dir + "/be.mhd", atomically: true, encoding: .utf8)
        let v = try VolumeIO.read(dir + "/be.mhd")
        XCTAssertEqual(v.voxels, values.map(Float.init))
        XCTAssertEqual(v.grid.origin, SIMD3(1, 2, 3))
        XCTAssertEqual(v.grid.spacing, SIMD3(0.5, 0.5, 3))
        // Triple j is column j: column 0 = (0, 1, 0), column 1 = (-1, 0, 0).
        XCTAssertEqual(v.grid.direction, [0, -1, 0, 1, 0, 0, 0, 0, 1])
        XCTAssertEqual(v.grid.world(SIMD3(1, 0, 0)), SIMD3(1, 2.5, 3))
    }

    /// The VerSe scan 008 written by SimpleITK as MetaImage equals the NIfTI original (voxels and geometry),
    /// and its direction equals SimpleITK's GetDirection().
    func testVerseMetaImageMatchesNIfTI() throws {
        let dir = try TestSupport.verse()
        let mhd = try VolumeIO.read(dir + "/metaimage/case008.mhd")
        let nii = try VolumeIO.read(dir + "/sub-verse008_ct.nii.gz")
        TestSupport.assertGrid(mhd.grid, nii.grid, accuracy: 1e-5)
        XCTAssertEqual(mhd.grid.direction[3], 1.0, accuracy: 1e-12)  // sitk GetDirection()[3] == 1
        XCTAssertEqual(mhd.grid.direction[2], -0.9999368406335811, accuracy: 1e-12)
        XCTAssertEqual(mhd.voxels.count, nii.voxels.count)
        var maxDiff: Float = 0
        // The NIfTI holds float HU with .5 fractions; SimpleITK rounded them to int16 for the MetaImage.
        for i in 0..<mhd.voxels.count { maxDiff = max(maxDiff, abs(mhd.voxels[i] - nii.voxels[i])) }
        XCTAssertLessThanOrEqual(maxDiff, 0.5)
        let mlab = try VolumeIO.read(dir + "/metaimage/case008_label.mhd")
        let nlab = try VolumeIO.read(dir + "/sub-verse008_seg-vert_msk.nii.gz")
        XCTAssertEqual(mlab.voxels, nlab.voxels)
    }

    /// A corpus of mangled headers: every one gives a VolumeError naming a file, none crashes or allocates
    /// from unchecked sizes.
    func testMangledHeaders() throws {
        let dir = try TestSupport.tempDir(self)
        let grid = Grid.canonical(size: SIMD3(6, 5, 4), spacing: SIMD3(1, 1, 2), origin: SIMD3(0, 0, 0))
        let volume = Volume(grid: grid, voxels: TestSupport.pattern(grid))
        try VolumeIO.writeMetaImage(volume, to: dir + "/good.mha", as: .int16, compressed: false)
        try VolumeIO.writeMetaImage(volume, to: dir + "/goodz.mha", as: .int16, compressed: true)
        try VolumeIO.writeMetaImage(volume, to: dir + "/good.mhd", as: .int16, compressed: false)
        let mha = try Data(contentsOf: URL(fileURLWithPath: dir + "/good.mha"))
        let mhaZ = try Data(contentsOf: URL(fileURLWithPath: dir + "/goodz.mha"))
        let mhd = try String(contentsOfFile: dir + "/good.mhd", encoding: .utf8)
        XCTAssertNoThrow(try VolumeIO.read(dir + "/good.mha"))

        var corpus: [(String, Data)] = []
        // Truncations of the inline files at many points (header and data).
        for cut in stride(from: 0, to: mha.count, by: 17) { corpus.append(("trunc\(cut).mha", mha.prefix(cut))) }
        for cut in stride(from: 0, to: mhaZ.count, by: 13) { corpus.append(("ztrunc\(cut).mha", mhaZ.prefix(cut))) }
        func edited(_ key: String, _ value: String?) -> Data {
            var lines = mhd.split(separator: "\n").map(String.init)
            if let i = lines.firstIndex(where: { $0.hasPrefix(key + " ") }) {
                if let value { lines[i] = key + " = " + value } else { lines.remove(at: i) }
            } else if let value {
                lines.insert(key + " = " + value, at: 2)
            }
            return Data((lines.joined(separator: "\n") + "\n").utf8)
        }
        let edits: [(String, String?)] = [
            ("NDims", "2"), ("NDims", "4"), ("NDims", "x"), ("NDims", nil),
            ("DimSize", "100000 100000 100000"), ("DimSize", "10000 10000 10000"), ("DimSize", "6 5"),
            ("DimSize", "6 5 -4"), ("DimSize", "6 5 0"), ("DimSize", "6 5 4.5"), ("DimSize", "6 5 400"), ("DimSize", nil),
            ("ElementType", "MET_FANCY"), ("ElementType", "MET_LONG_LONG"), ("ElementType", nil),
            ("ElementSpacing", "1 1"), ("ElementSpacing", "1 0 1"), ("ElementSpacing", "1 nan 1"),
            ("Offset", "a b c"), ("TransformMatrix", "1 0 0 0 1 0 0 0"), ("TransformMatrix", "0 0 0 0 0 0 0 0 0"),
            ("ElementDataFile", "missing.raw"), ("ElementDataFile", "LIST"), ("ElementDataFile", "slice%03d.raw 1 4 1"),
            ("ElementDataFile", nil), ("ElementNumberOfChannels", "3"), ("ObjectType", "Mesh"),
            ("CompressedData", "True"), ("HeaderSize", "100000"),
        ]
        for (i, (key, value)) in edits.enumerated() { corpus.append(("edit\(i).mhd", edited(key, value))) }
        corpus.append(("garbage.mhd", Data((0..<2000).map { UInt8(truncatingIfNeeded: $0 &* 7919) })))
        corpus.append(("noequals.mhd", Data("ObjectType Image\nNDims 3\n".utf8)))
        var zbad = mhaZ
        if zbad.count > 40 { zbad[zbad.count - 20] ^= 0xFF }
        corpus.append(("zcorrupt.mha", zbad))

        for (name, data) in corpus {
            let path = dir + "/" + name
            try data.write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try VolumeIO.read(path), name) { error in
                guard let e = error as? VolumeError else { return XCTFail("\(name): \(error)") }
                XCTAssertTrue(e.path.hasPrefix(dir), name)
                XCTAssertFalse(e.message.isEmpty, name)
            }
        }
    }
}

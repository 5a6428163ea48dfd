import XCTest
@testable import IFCNVolume

final class NIfTITests: XCTestCase {
    /// Every voxel type survives a write/read round trip as .nii and .nii.gz, with the oblique geometry intact.
    func testRoundTripAllTypes() throws {
        let dir = try TestSupport.tempDir(self)
        let grid = TestSupport.obliqueGrid
        let volume = Volume(grid: grid, voxels: TestSupport.pattern(grid))
        for ext in [".nii", ".nii.gz"] {
            for type in VoxelType.allCases {
                let path = dir + "/rt_\(type.rawValue)" + ext
                try VolumeIO.write(volume, to: path, as: type)
                let back = try VolumeIO.read(path)
                XCTAssertEqual(back.voxels, volume.voxels, "\(type) \(ext)")
                // NIfTI stores the affine as float32.
                TestSupport.assertGrid(back.grid, grid, accuracy: 1e-5)
            }
        }
        // No temporary files left behind.
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix(".") }
        XCTAssertEqual(leftovers, [])
    }

    /// With both x.nii and x.nii.gz present, each name reads its own file (nifticlib alone would pick x.nii).
    func testSiblingFiles() throws {
        let dir = try TestSupport.tempDir(self)
        let small = Grid.canonical(size: SIMD3(2, 2, 2), spacing: SIMD3(1, 1, 1), origin: .zero)
        let large = Grid.canonical(size: SIMD3(3, 3, 3), spacing: SIMD3(2, 2, 2), origin: SIMD3(1, 2, 3))
        try VolumeIO.write(Volume(grid: small, fill: 5), to: dir + "/x.nii", as: .float32)
        try VolumeIO.write(Volume(grid: large, fill: 7), to: dir + "/x.nii.gz", as: .int16)
        let a = try VolumeIO.read(dir + "/x.nii"), b = try VolumeIO.read(dir + "/x.nii.gz")
        XCTAssertEqual(a.grid.size, small.size)
        XCTAssertEqual(a.voxels, [Float](repeating: 5, count: 8))
        XCTAssertEqual(b.grid.size, large.size)
        XCTAssertEqual(b.voxels, [Float](repeating: 7, count: 27))
    }

    /// A scan given through a symbolic link (a common way to gather a data set) reads as its target: the size
    /// checks follow the link (they once measured the link itself and called the file truncated).
    func testSymbolicLinksReadAsTheirTargets() throws {
        let dir = try TestSupport.tempDir(self)
        let grid = Grid.canonical(size: SIMD3(16, 16, 16), spacing: SIMD3(1, 1, 1), origin: .zero)
        let volume = Volume(grid: grid, voxels: (0..<4096).map { Float($0 % 97) })
        for name in ["a.nii.gz", "a.nii", "a.mhd"] {
            let target = dir + "/target-" + name, link = dir + "/link-" + name
            if name.hasSuffix(".mhd") {
                try VolumeIO.writeMetaImage(volume, to: target, as: .int16, compressed: false)
            } else {
                try VolumeIO.write(volume, to: target, as: .int16)
            }
            try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
            XCTAssertEqual(try VolumeIO.read(link).voxels, volume.voxels, name)
        }
        // The data file of a MetaImage header may be a link too.
        let raw = try FileManager.default.contentsOfDirectory(atPath: dir).first { $0.hasPrefix("target-a") && !$0.hasSuffix(".mhd") && !$0.contains(".nii") }
        let data = try XCTUnwrap(raw)
        try FileManager.default.createSymbolicLink(atPath: dir + "/linked.raw", withDestinationPath: dir + "/" + data)
        let header = try String(contentsOfFile: dir + "/target-a.mhd", encoding: .utf8)
            .replacingOccurrences(of: "ElementDataFile = \(data)", with: "ElementDataFile = linked.raw")
        try header.write(toFile: dir + "/via-link.mhd", atomically: true, encoding: .utf8)
        XCTAssertEqual(try VolumeIO.read(dir + "/via-link.mhd").voxels, volume.voxels)
    }

    /// Non-integral values, negative values and integer clamping.
    func testValueConversion() throws {
        let dir = try TestSupport.tempDir(self)
        let grid = Grid.canonical(size: SIMD3(4, 1, 1), spacing: SIMD3(1, 1, 1), origin: .zero)
        let v = Volume(grid: grid, voxels: [-1000.25, 0.5, 3.75, 40000])
        try VolumeIO.write(v, to: dir + "/f.nii.gz", as: .float32)
        XCTAssertEqual(try VolumeIO.read(dir + "/f.nii.gz").voxels, v.voxels)
        try VolumeIO.write(v, to: dir + "/i.nii.gz", as: .int16)
        XCTAssertEqual(try VolumeIO.read(dir + "/i.nii.gz").voxels, [-1000, 1, 4, 32767])
        try VolumeIO.write(v, to: dir + "/u.nii", as: .uint8)
        XCTAssertEqual(try VolumeIO.read(dir + "/u.nii").voxels, [0, 1, 4, 255])
    }

    /// Files written by nibabel: sform preferred over qform, scl_slope/inter applied, qform-only (qfac -1),
    /// NIfTI-2, and no transform at all (pixdim scaling).
    func testNibabelFixtures() throws {
        let expected = try TestSupport.json("nib.json")
        XCTAssertEqual(expected.count, 4)
        for (name, value) in expected {
            let e = try XCTUnwrap(value as? [String: Any])
            let v = try VolumeIO.read(TestSupport.fixture(name))
            let size = try XCTUnwrap(e["size"] as? [Int])
            let grid = Grid(size: SIMD3(size[0], size[1], size[2]),
                            spacing: SIMD3((e["spacing"] as! [Double])[0], (e["spacing"] as! [Double])[1], (e["spacing"] as! [Double])[2]),
                            origin: SIMD3((e["origin"] as! [Double])[0], (e["origin"] as! [Double])[1], (e["origin"] as! [Double])[2]),
                            direction: e["direction"] as! [Double])
            TestSupport.assertGrid(v.grid, grid, accuracy: 1e-5)
            let values = try XCTUnwrap(e["values"] as? [Double])
            XCTAssertEqual(v.voxels.count, values.count, name)
            for (a, b) in zip(v.voxels, values) { XCTAssertEqual(Double(a), b, accuracy: 1e-4 * max(1, abs(b)), name) }
        }
    }

    /// The VerSe scans (stored P-I-R): after reading, the LPS grid matches SimpleITK, and after canonical
    /// resampling the spine runs along z with superior vertebrae (lower VerSe labels) at higher z.
    func testVerseOrientation() throws {
        let dir = try TestSupport.verse()
        let ct = try VolumeIO.read(dir + "/sub-verse008_ct.nii.gz")
        // SimpleITK: origin (67.585, 85.540, -109.971), direction rows as below.
        let sitkGrid = Grid(size: SIMD3(95, 221, 51), spacing: SIMD3(1, 1, 1.9965007305145264),
                            origin: SIMD3(67.58544921875, 85.54017639160156, -109.97074127197266),
                            direction: [-1.0470891709246644e-08, 0.011238983143280881, -0.9999368406335811,
                                        1.0, -1.0470891934990941e-08, -1.0589242412557656e-08,
                                        -1.0589242371850105e-08, -0.9999368406343997, -0.011238983216114896])
        TestSupport.assertGrid(ct.grid, sitkGrid, accuracy: 1e-5)
        for name in ["sub-verse005", "sub-verse008"] {
            let labels = try VolumeIO.readLabels(dir + "/\(name)_seg-vert_msk.nii.gz")
            let canon = try resampleToCanonical(labels, spacing: 2)
            XCTAssertEqual(canon.grid.direction, Grid.identity)
            XCTAssertGreaterThan(canon.grid.size.z, canon.grid.size.x, name)
            let vertebrae = VertebraInfo.collect(from: canon)
            XCTAssertGreaterThanOrEqual(vertebrae.count, 5, name)
            // Superior to inferior order == ascending VerSe label.
            XCTAssertEqual(vertebrae.map(\.label), vertebrae.map(\.label).sorted(), name)
            // The column spans most of z and is narrow in x/y.
            let zs = vertebrae.map(\.centroidMM.z), xs = vertebrae.map(\.centroidMM.x)
            XCTAssertGreaterThan(zs.max()! - zs.min()!, 3 * (xs.max()! - xs.min()!), name)
        }
    }

    /// Truncated, mangled or non-NIfTI files give errors naming the file, never a crash.
    func testCorruptFiles() throws {
        let dir = try TestSupport.tempDir(self)
        let grid = Grid.canonical(size: SIMD3(8, 8, 8), spacing: SIMD3(1, 1, 1), origin: .zero)
        let v = Volume(grid: grid, voxels: TestSupport.pattern(grid))
        try VolumeIO.write(v, to: dir + "/ok.nii", as: .int16)
        try VolumeIO.write(v, to: dir + "/ok.nii.gz", as: .int16)
        let raw = try Data(contentsOf: URL(fileURLWithPath: dir + "/ok.nii"))
        let gz = try Data(contentsOf: URL(fileURLWithPath: dir + "/ok.nii.gz"))
        var cases: [(String, Data)] = [
            ("empty.nii", Data()), ("short.nii", raw.prefix(100)), ("nodata.nii", raw.prefix(352)),
            ("halfdata.nii", raw.prefix(352 + 300)), ("text.nii", Data("hello world".utf8)),
            ("gzhalf.nii.gz", gz.prefix(gz.count / 2)), ("gzhead.nii.gz", gz.prefix(20)),
        ]
        var huge = raw
        huge.replaceSubrange(42..<44, with: [0x10, 0x27])  // dim[1] = 10000
        huge.replaceSubrange(44..<46, with: [0x10, 0x27])  // dim[2] = 10000
        cases.append(("hugedims.nii", huge))
        var fourD = raw
        fourD.replaceSubrange(40..<42, with: [4, 0])  // dim[0] = 4
        fourD.replaceSubrange(48..<50, with: [3, 0])  // dim[4] = 3
        cases.append(("fourd.nii", fourD))
        var twoD = raw
        twoD.replaceSubrange(40..<42, with: [2, 0])
        cases.append(("twod.nii", twoD))
        var badType = raw
        badType.replaceSubrange(70..<72, with: [32, 0])  // complex64
        cases.append(("complex.nii", badType))
        for (name, data) in cases {
            let path = dir + "/" + name
            try data.write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try VolumeIO.read(path), name) { error in
                let e = error as? VolumeError
                XCTAssertEqual(e?.path, path, name)
                XCTAssertFalse(e?.message.isEmpty ?? true, name)
            }
        }
        // A gzip file whose header claims 4.2 GB of voxels but holds 100 bytes fails without a huge allocation.
        let claim = TestSupport.fixture("huge_claim.nii.gz")
        XCTAssertThrowsError(try VolumeIO.read(claim)) { error in
            XCTAssertTrue("\(error)".contains("truncated"), "\(error)")
        }
        XCTAssertThrowsError(try VolumeIO.read(dir + "/missing.nii.gz"))
        XCTAssertThrowsError(try VolumeIO.read(dir + "/ok.png"))
    }
}

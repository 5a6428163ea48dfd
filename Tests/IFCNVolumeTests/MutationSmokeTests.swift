import Foundation
import IFCNSupport
import XCTest
@testable import IFCNVolume

/// A few seconds of generated-corpus fuzzing for CI (the libFuzzer runs are fuzz/run.sh): valid NIfTI and
/// MetaImage files mutated with a fixed seed (bit flips, byte overwrites with boundary values, truncations,
/// header fields set to extremes); every mutant must read or fail with a `VolumeError` naming it, never crash.
final class MutationSmokeTests: XCTestCase {
    static let mutantsPerFile = 100

    /// One mutation of `data` chosen by `rng`.
    static func mutate(_ data: Data, _ rng: inout SplitMix64, fields: [Range<Int>]) -> Data {
        var d = data
        guard !d.isEmpty else { return d }
        switch rng.next() % 4 {
        case 0:  // flip a few bits
            for _ in 0..<(1 + Int(rng.next() % 4)) {
                let i = Int(rng.next() % UInt64(d.count))
                d[i] ^= UInt8(1) << (rng.next() % 8)
            }
        case 1:  // overwrite a header field with an extreme value
            let field = fields[Int(rng.next() % UInt64(fields.count))]
            let extremes: [[UInt8]] = [[0, 0, 0, 0, 0, 0, 0, 0], [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
                                       [0xFF, 0xFF, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0x7F], [0, 0, 0xC0, 0x7F, 0, 0, 0xF8, 0x7F],
                                       [1, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0x80, 0xFF, 0, 0, 0, 0x80]]
            let value = extremes[Int(rng.next() % UInt64(extremes.count))]
            for (k, i) in field.enumerated() where i < d.count { d[i] = value[k % value.count] }
        case 2:  // truncate
            d = d.prefix(Int(rng.next() % UInt64(d.count)))
        default:  // overwrite a run of bytes with random ones
            let start = Int(rng.next() % UInt64(d.count))
            for i in start..<min(d.count, start + 1 + Int(rng.next() % 16)) { d[i] = UInt8(truncatingIfNeeded: rng.next()) }
        }
        return d
    }

    func run(_ original: Data, ext: String, fields: [Range<Int>], seed: UInt64, in dir: String) throws -> (read: Int, refused: Int) {
        var rng = SplitMix64(seed: seed)
        var read = 0, refused = 0
        let path = dir + "/mutant" + ext
        for _ in 0..<MutationSmokeTests.mutantsPerFile {
            try MutationSmokeTests.mutate(original, &rng, fields: fields).write(to: URL(fileURLWithPath: path))
            do {
                _ = try VolumeIO.readGrid(path)
                _ = try VolumeIO.read(path)
                read += 1
            } catch let error as VolumeError {
                XCTAssertFalse(error.message.isEmpty)
                refused += 1
            }
        }
        return (read, refused)
    }

    func testMutatedFilesReadOrFailCleanly() throws {
        setenv(MemoryLimit.environmentVariable, "2", 1)
        defer { unsetenv(MemoryLimit.environmentVariable) }
        let dir = try TestSupport.tempDir(self)
        let grid = Grid(size: SIMD3(5, 4, 3), spacing: SIMD3(0.7, 0.9, 2.5), origin: SIMD3(-3, 4, 10),
                        direction: TestSupport.obliqueGrid.direction)
        let volume = Volume(grid: grid, voxels: TestSupport.pattern(grid))
        try VolumeIO.write(volume, to: dir + "/v.nii", as: .int16)
        try VolumeIO.write(volume, to: dir + "/v.nii.gz", as: .float32)
        try VolumeIO.writeMetaImage(volume, to: dir + "/v.mha", as: .uint16, compressed: true)
        try VolumeIO.writeMetaImage(volume, to: dir + "/w.mha", as: .float32, compressed: false)
        // NIfTI-1 fields: dim, datatype, bitpix, pixdim, vox_offset, scl_slope/inter, qform/sform codes, quatern, srow.
        let nifti = [40..<56, 70..<72, 72..<74, 76..<108, 108..<112, 112..<120, 252..<256, 256..<280, 280..<328, 344..<348, 0..<4]
        var totals = (read: 0, refused: 0)
        for (name, ext, fields, seed) in [("v.nii", ".nii", nifti, UInt64(1)), ("v.mha", ".mha", [0..<200], 2), ("w.mha", ".mha", [0..<200], 3)] {
            let r = try run(try Data(contentsOf: URL(fileURLWithPath: dir + "/" + name)), ext: ext, fields: fields, seed: seed, in: dir)
            totals.read += r.read
            totals.refused += r.refused
        }
        // The compressed NIfTI is mutated as bytes: mostly its gzip stream, so this exercises the loader.
        let gz = try run(try Data(contentsOf: URL(fileURLWithPath: dir + "/v.nii.gz")), ext: ".nii.gz", fields: [0..<20], seed: 4, in: dir)
        totals.read += gz.read
        totals.refused += gz.refused
        XCTAssertEqual(totals.read + totals.refused, 4 * MutationSmokeTests.mutantsPerFile)
        XCTAssertGreaterThan(totals.refused, MutationSmokeTests.mutantsPerFile)  // the mutations do reach the checks
        XCTAssertGreaterThan(totals.read, 0)
    }
}

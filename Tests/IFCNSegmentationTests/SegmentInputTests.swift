import Foundation
import IFCNCompute
import IFCNEngine
import IFCNTestSupport
import IFCNVolume
import XCTest
@testable import IFCNSegmentation

/// Bad input to `ifcn segment` (issue 14): NaN scans, unbounded spacings and thread counts, two scans with one
/// case name, MetaImage data files elsewhere. Each gives a clear error and a non-zero exit, and writes nothing.
final class SegmentInputTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("ifcn-segin-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    /// A C=2 P=16 checkpoint at `spacing` mm, with `extra` metadata (written as given, so out-of-range values
    /// can be stored).
    func checkpoint(spacing: String = "4", extra: [String: String] = [:]) throws -> String {
        let config = try NetworkConfig(variant: .paper, channels: 2, patch: 16)
        let network = Network(config: config, backend: CPUBackend(threads: 1), seed: 2)
        let file = path("model-\(spacing).safetensors")
        try Checkpoint.save(network: network, info: ModelInfo(config: config, spacingMM: 4, intensity: .paper), to: file)
        guard spacing != "4" || !extra.isEmpty else { return file }
        // Written again with the metadata value as given (Checkpoint.save writes only valid ones).
        let saved = try SafeTensorsFile(path: file)
        var w = SafeTensorsWriter()
        for (name, info) in saved.tensors.sorted(by: { $0.key < $1.key }) {
            if info.dtype == .f32 {
                w.add(name, floats: try saved.floats(name), shape: info.shape)
            } else {
                w.add(name, int64s: try saved.uint64s(name).map { Int64(bitPattern: $0) }, shape: info.shape)
            }
        }
        w.metadata = saved.metadata
        w.metadata["spacing_mm"] = spacing
        w.metadata.merge(extra) { $1 }
        try w.write(to: file)
        return file
    }

    /// A small synthetic scan (HU) on a 4 mm grid.
    func scan() -> Volume {
        SyntheticSpine.generate(seed: 5, size: SIMD3(20, 20, 16), spacing: SIMD3(4, 4, 4)).image
    }

    func ifcn(_ arguments: [String]) throws -> ProcessResult {
        try ProcessRunner.run(try TestPaths.ifcnBinary(), arguments, timeout: 120)
    }

    func assertFails(_ arguments: [String], _ text: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try ifcn(arguments)
        XCTAssertNotEqual(r.status, 0, r.summary, file: file, line: line)
        XCTAssertFalse(r.timedOut, r.summary, file: file, line: line)
        XCTAssertTrue(r.stderr.contains(text), "expected '\(text)' in\n" + r.summary, file: file, line: line)
    }

    // MARK: library

    func testTwoScansWithOneCaseNameAreRefused() throws {
        for names in [["c.mhd", "c.nii.gz"], ["c.nii.gz", "c_ct.nii.gz"]] {
            let folder = dir.appendingPathComponent(names.joined(separator: "+"))
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            for n in names { FileManager.default.createFile(atPath: folder.appendingPathComponent(n).path, contents: Data()) }
            XCTAssertThrowsError(try ScanFiles.list(folder.path)) { error in
                XCTAssertTrue("\(error)".contains("are both case 'c'") && "\(error)".contains(names[0]), "\(error)")
            }
        }
    }

    /// A model spacing no validation stopped (here set directly) cannot crash the walk: the canonical grid is
    /// bounded and n_min saturates.
    func testTinyModelSpacingIsAnErrorNotACrash() throws {
        let config = try NetworkConfig(variant: .paper, channels: 2, patch: 16)
        let network = Network(config: config, backend: CPUBackend(threads: 1))
        let segmenter = Segmenter(network: network, info: ModelInfo(config: config, spacingMM: 1e-6, intensity: .paper))
        XCTAssertThrowsError(try segmenter.segmentScan(scan())) { error in
            XCTAssertTrue("\(error)".contains("would need"), "\(error)")
        }
        XCTAssertEqual(SegmentationOptions().minVoxels(spacing: SIMD3(repeating: 1e-6)), 1 << 40)
        XCTAssertEqual(SegmentationOptions().minVoxels(spacing: SIMD3(repeating: 0)), 1 << 40)
        XCTAssertEqual(SegmentationOptions().minVoxels(spacing: SIMD3(repeating: .nan)), 1)
    }

    // MARK: the command

    func testNonFiniteScanIsRefusedLikePreprocess() throws {
        let model = try checkpoint()
        var image = scan()
        image[3, 4, 5] = .nan
        try VolumeIO.write(image, to: path("nan.nii.gz"), as: .float32)
        try assertFails(["segment", "--checkpoint", model, "--input", path("nan.nii.gz"), "--output", path("out"),
                         "--threads", "1", "--backend", "cpu"], "non-finite value (nan) at voxel (3, 4, 5)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("out/nan.nii.gz")))
        // The same scan without the NaN segments (exit 0).
        try VolumeIO.write(scan(), to: path("fine.nii.gz"), as: .float32)
        let ok = try ifcn(["segment", "--checkpoint", model, "--input", path("fine.nii.gz"), "--output", path("out"),
                           "--threads", "1", "--backend", "cpu"])
        XCTAssertEqual(ok.status, 0, ok.summary)
        XCTAssertTrue(FileManager.default.fileExists(atPath: path("out/fine.nii.gz")))
    }

    /// The filter a model's data was resampled with comes from its checkpoint; an unknown one is an error naming the
    /// file, and a checkpoint without one (older, or a PyTorch export) gets none.
    func testDownsamplingFilterComesFromTheCheckpoint() throws {
        XCTAssertEqual(try DownsamplingFilter.ofCheckpoint([:], path: "m"), DownsamplingFilter.none)
        XCTAssertEqual(try DownsamplingFilter.ofCheckpoint(["downsampling": "gaussian"], path: "m"), .gaussian)
        try VolumeIO.write(scan(), to: path("s.nii.gz"), as: .float32)
        let model = try checkpoint(extra: ["downsampling": "bicubic"])
        try assertFails(["segment", "--checkpoint", model, "--input", path("s.nii.gz"), "--output", path("out"),
                         "--threads", "1", "--backend", "cpu"],
                        model + ": checkpoint metadata downsampling \"bicubic\" is not one of gaussian, none")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("out/s.nii.gz")))
        let ok = try ifcn(["segment", "--checkpoint", model, "--input", path("s.nii.gz"), "--output", path("out"),
                           "--threads", "1", "--backend", "cpu", "--downsampling", "gaussian"])
        XCTAssertEqual(ok.status, 0, ok.summary)
        XCTAssertTrue(ok.stderr.contains("(gaussian downsampling)"), ok.summary)
    }

    func testUnboundedNumbersAreRefused() throws {
        let model = try checkpoint()
        try VolumeIO.write(scan(), to: path("s.nii.gz"), as: .float32)
        let base = ["segment", "--checkpoint", model, "--input", path("s.nii.gz"), "--output", path("out"), "--backend", "cpu"]
        for threads in ["0", "-3", "100000"] {
            try assertFails(base + ["--threads=\(threads)"], "--threads must be between 1 and")
        }
        try assertFails(base + ["--spacing", "0.001"], "--spacing must be a number of mm in 0.01...100.0, got 0.001")
        try assertFails(base + ["--spacing", "nan"], "--spacing must be")
        try assertFails(base + ["--spacing", "2"], "checkpoint works at 4.0 mm, --spacing 2.0 was given")
        for bad in ["0", "-1", "nan", "1e-300", "inf"] {
            try assertFails(["segment", "--checkpoint", try checkpoint(spacing: bad), "--input", path("s.nii.gz"),
                             "--output", path("out"), "--threads", "1", "--backend", "cpu"], "spacing_mm must be")
        }
        try assertFails(base + ["--threads", "1", "--channels", "1000000", "--variant", "paper", "--patch", "16"],
                        "channels must be in 1...4096")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("out/s.nii.gz")))
    }

    func testPreprocessAtATinySpacingSaysWhatItWouldNeed() throws {
        let input = path("in")
        try SyntheticSpine.writeCases(to: input, count: 1, seed: 1, size: SIMD3(20, 20, 16), spacing: SIMD3(4, 4, 4))
        try assertFails(["preprocess", "--input", input, "--output", path("prep"), "--spacing", "0.01"], "would need")
        try assertFails(["preprocess", "--input", input, "--output", path("prep"), "--spacing", "0"], "--spacing must be positive")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("prep/dataset.json")))
    }

    func testCaseNameCollisionWritesNothing() throws {
        let model = try checkpoint()
        let input = path("scans")
        try FileManager.default.createDirectory(atPath: input, withIntermediateDirectories: true)
        try VolumeIO.write(scan(), to: input + "/c.mhd", as: .int16)
        try VolumeIO.write(scan(), to: input + "/c.nii.gz", as: .int16)
        try assertFails(["segment", "--checkpoint", model, "--input", input, "--output", path("out"), "--threads", "1",
                         "--backend", "cpu"], "c.mhd and c.nii.gz are both case 'c'")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("out/c.nii.gz")))
    }

    /// ElementDataFile outside the header's folder needs --allow-external-data (segment and evaluate).
    func testExternalMetaImageDataNeedsTheFlag() throws {
        let model = try checkpoint()
        let elsewhere = path("elsewhere")
        try FileManager.default.createDirectory(atPath: elsewhere, withIntermediateDirectories: true)
        try VolumeIO.write(scan(), to: elsewhere + "/x.mhd", as: .int16)
        let header = try String(contentsOfFile: elsewhere + "/x.mhd", encoding: .utf8)
            .replacingOccurrences(of: "ElementDataFile = x.raw", with: "ElementDataFile = \(elsewhere)/x.raw")
        let input = path("input")
        try FileManager.default.createDirectory(atPath: input, withIntermediateDirectories: true)
        try header.write(toFile: input + "/scan.mhd", atomically: true, encoding: .utf8)
        let args = ["segment", "--checkpoint", model, "--input", input + "/scan.mhd", "--output", path("out"),
                    "--threads", "1", "--backend", "cpu"]
        try assertFails(args, "pass --allow-external-data")
        let ok = try ifcn(args + ["--allow-external-data"])
        XCTAssertEqual(ok.status, 0, ok.summary)

        try assertFails(["evaluate", "--reference", input + "/scan.mhd", "--prediction", path("out/scan.nii.gz")],
                        "pass --allow-external-data")
    }
}

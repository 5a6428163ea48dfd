import Foundation
import IFCNEngine
import IFCNTestSupport
import IFCNVolume
import XCTest
@testable import IFCNSegmentation

/// `ifcn segment` over a folder with scans in flight (issue 9): the next scan read and resampled, and the previous
/// one's outputs written, while the network works on the current one. Outputs are the same bytes as one scan at a
/// time (`--overlap off`), and a bad scan or an unwritable output is reported naming the file without stopping
/// the others.
extension SegmentInputTests {
    /// A checkpoint of `Fixture.segmentingNetwork` at 4 mm, so every scan gets instances.
    func segmentingCheckpoint() throws -> String {
        let network = try Fixture.segmentingNetwork(threads: 1)
        let file = path("segmenting.safetensors")
        try Checkpoint.save(network: network, info: ModelInfo(config: network.config, spacingMM: 4, intensity: .paper),
                            to: file)
        return file
    }

    /// Writes synthetic scans of different sizes and spacings as `<name>.nii.gz` into `folder`; returns their paths.
    func writeScans(_ names: [String], to folder: String) throws -> [String] {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        return try names.enumerated().map { i, name in
            let scan = SyntheticSpine.generate(seed: UInt64(40 + i), size: SIMD3(18 + 3 * i, 20, 20 + 6 * i),
                                               spacing: SIMD3(3.5, 3.5, 3 + 0.5 * Double(i))).image
            let file = folder + "/" + name + ".nii.gz"
            try VolumeIO.write(scan, to: file, as: .int16)
            return file
        }
    }

    func segment(_ model: String, _ input: String, to output: String, overlap: String) throws -> ProcessResult {
        try ifcn(["segment", "--checkpoint", model, "--input", input, "--output", output, "--overlap", overlap,
                  "--min-voxels", "20", "--downsampling", "gaussian", "--preview", "--threads", "2", "--backend", "cpu"])
    }

    /// OUTPUT/<case>.json without what differs between runs into two folders (`labels`, `seconds`).
    func report(_ file: String) throws -> NSDictionary {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file)))
        let dictionary = try XCTUnwrap(json as? [String: Any])
        return dictionary.filter { $0.key != "labels" && $0.key != "seconds" } as NSDictionary
    }

    func testOverlappedFolderGivesTheSameBytesAsOneScanAtATime() throws {
        let model = try segmentingCheckpoint()
        let names = ["a", "b", "c", "d"]
        _ = try writeScans(names, to: path("scans"))
        let overlapped = try segment(model, path("scans"), to: path("overlapped"), overlap: "scans")
        XCTAssertEqual(overlapped.status, 0, overlapped.summary)
        XCTAssertTrue(overlapped.stderr.contains("4 scans in") && overlapped.stderr.contains("(scans overlapped)"),
                      overlapped.summary)
        let sequential = try segment(model, path("scans"), to: path("sequential"), overlap: "off")
        XCTAssertEqual(sequential.status, 0, sequential.summary)
        XCTAssertFalse(sequential.stderr.contains("(scans overlapped)"), sequential.summary)
        var instanceCounts: [Int] = []
        for (i, name) in names.enumerated() {
            for ext in [".nii.gz", ".png"] {
                let a = try Data(contentsOf: URL(fileURLWithPath: path("overlapped/" + name + ext)))
                let b = try Data(contentsOf: URL(fileURLWithPath: path("sequential/" + name + ext)))
                XCTAssertEqual(a, b, name + ext + " differs between --overlap scans and --overlap off")
            }
            let r = try report(path("overlapped/" + name + ".json"))
            XCTAssertEqual(r, try report(path("sequential/" + name + ".json")), name + ".json")
            XCTAssertEqual(r["case"] as? String, name)
            instanceCounts.append((r["instances"] as? [Any])?.count ?? 0)
            // Each scan's lines carry its tag: the header before its network lines, the written line after.
            let tag = "[\(i + 1)/4] \(name): "
            for log in [overlapped.stderr, sequential.stderr] {
                let header = try XCTUnwrap(log.range(of: tag + path("scans/" + name + ".nii.gz")), log)
                let wrote = try XCTUnwrap(log.range(of: tag + "wrote " + path((log == overlapped.stderr ? "overlapped/" : "sequential/")
                                                                                 + name + ".nii.gz")), log)
                XCTAssertLessThan(header.lowerBound, wrote.lowerBound)
            }
        }
        // The outputs are worth comparing: every scan has instances, and the scans differ.
        XCTAssertTrue(instanceCounts.allSatisfy { $0 > 0 }, "\(instanceCounts)")
        let labelFiles = try names.map { try Data(contentsOf: URL(fileURLWithPath: path("overlapped/" + $0 + ".nii.gz"))) }
        XCTAssertEqual(Set(labelFiles).count, names.count)
    }

    /// A truncated scan in the middle and an output that cannot be written (a folder where d.json should go):
    /// both are reported naming the file, the other scans are still written, the exit is non-zero, and the
    /// summary lists the failures in scan order, the same with and without overlap.
    func testBadScanAndUnwritableOutputDoNotStopTheOthers() throws {
        let model = try segmentingCheckpoint()
        let scans = try writeScans(["a", "b", "c", "d"], to: path("scans"))
        let bytes = try Data(contentsOf: URL(fileURLWithPath: scans[1]))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: scans[1]))
        var summaries: [String] = []
        for overlap in ["scans", "off"] {
            let out = path("out-" + overlap)
            try FileManager.default.createDirectory(atPath: out + "/d.json/blocked", withIntermediateDirectories: true)
            let r = try segment(model, path("scans"), to: out, overlap: overlap)
            XCTAssertNotEqual(r.status, 0, r.summary)
            XCTAssertFalse(r.timedOut, r.summary)
            XCTAssertTrue(r.stderr.contains("\nerror: " + scans[1] + ": "), r.summary)
            XCTAssertTrue(r.stderr.contains("[4/4] d: error: " + out + "/d.json"), r.summary)
            for name in ["a", "c", "d"] {
                XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + name + ".nii.gz"), name + "\n" + r.summary)
            }
            for name in ["a", "c"] {
                XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + name + ".json"), name + "\n" + r.summary)
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/b.nii.gz"))
            let summary = try XCTUnwrap(r.stderr.range(of: "2 of 4 scans failed:\n"), r.summary)
            let lines = r.stderr[summary.upperBound...].split(separator: "\n").prefix(2).map(String.init)
            XCTAssertEqual(lines.count, 2, r.summary)
            XCTAssertTrue(lines.first?.hasPrefix(scans[1] + ": ") ?? false, r.summary)
            XCTAssertTrue(lines.last?.hasPrefix(out + "/d.json") ?? false, r.summary)
            summaries.append(lines.joined(separator: "\n").replacingOccurrences(of: out, with: "OUT"))
        }
        XCTAssertEqual(summaries.first, summaries.last)
    }
}

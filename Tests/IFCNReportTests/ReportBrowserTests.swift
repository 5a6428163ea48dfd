import Foundation
import IFCNReport
import IFCNTestSupport
import XCTest

/// A tiny real run (synthetic spines at 4 mm, C=4, P=16): training keeps RUN/report.html current, `ifcn report`
/// overlays two runs, `segment --preview` and `evaluate --html` write their previews, and headless Chromium
/// renders the report to a screenshot that is checked like a person would glance at it.
final class ReportBrowserTests: XCTestCase {
    static let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("ifcn-report-tests-\(getpid())")
    static var prepared: (raw: URL, run: String)?

    override class func tearDown() {
        try? FileManager.default.removeItem(at: scratch)
        super.tearDown()
    }

    func ifcn(_ args: [String], timeout: Int = 300) throws -> ProcessResult {
        let r = try ProcessRunner.run(try TestPaths.ifcnBinary(), args, timeout: timeout)
        XCTAssertEqual(r.status, 0, r.summary)
        return r
    }

    /// Synthetic data, preprocessed, and a 3-epoch single-process run.
    func preparedRun() throws -> (raw: URL, run: String) {
        if let p = Self.prepared { return p }
        let raw = Self.scratch.appendingPathComponent("raw"), data = Self.scratch.appendingPathComponent("data")
        let run = Self.scratch.appendingPathComponent("run").path
        _ = try ifcn(["synth", "--output", raw.path, "--cases", "3", "--seed", "4"])
        _ = try ifcn(["preprocess", "--input", raw.path, "--output", data.path, "--spacing", "4", "--val-fraction", "0.34", "--seed", "1"])
        _ = try ifcn(["train", "--data", data.path, "--output", run, "--channels", "4", "--patch", "16", "--iterations", "9",
                      "--iters-per-epoch", "3", "--lr-steps", "6", "--threads", "1", "--seed", "2", "--progress-seconds", "1000"])
        Self.prepared = (raw, run)
        return (raw, run)
    }

    func testTrainingKeepsTheReportAndTheBestEpochsValidationCases() throws {
        let (_, run) = try preparedRun()
        let html = try String(contentsOfFile: run + "/report.html", encoding: .utf8)
        XCTAssertTrue(html.contains("<svg"), "charts missing")
        XCTAssertEqual(html.components(separatedBy: "<svg").count - 1, 6)
        XCTAssertTrue(html.contains("lr x0.1"), "learning-rate step not marked")
        XCTAssertTrue(html.contains("data:image/png;base64,"), "validation preview missing")
        XCTAssertFalse(html.contains("<script"), "the report must not run scripts")
        XCTAssertFalse(html.contains("http://") && !html.contains("http://www.w3.org/2000/svg"), "no network resources")
        let best = try FileManager.default.contentsOfDirectory(atPath: run + "/validation/best")
        XCTAssertTrue(best.contains { $0.hasSuffix(".json") } && best.contains { $0.hasSuffix(".nii.gz") }, "\(best)")
        let info = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: run + "/run.json"))) as? [String: Any]
        XCTAssertEqual(info?["model"] as? String, "paper C=4 P=16")
        XCTAssertEqual(info?["hardware"] as? String, "1 rank(s) x 1 thread(s)")

        let two = Self.scratch.appendingPathComponent("two.html").path
        let r = try ifcn(["report", run, run, "--output", two])
        XCTAssertTrue(r.stdout.contains("report: \(two)"), r.stdout)
        let overlaid = try String(contentsOfFile: two, encoding: .utf8)
        XCTAssertTrue(overlaid.contains("Validation at the best epoch: run 2"))
    }

    func testReportOfAFolderWithoutMetricsIsAClearError() throws {
        let empty = Self.scratch.appendingPathComponent("empty").path
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        let r = try ProcessRunner.run(try TestPaths.ifcnBinary(), ["report", empty], timeout: 60)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains(empty + "/metrics.jsonl"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: empty + "/report.html"))
    }

    func testSegmentPreviewAndEvaluateHTML() throws {
        let (raw, run) = try preparedRun()
        let out = Self.scratch.appendingPathComponent("segment").path
        let scan = raw.appendingPathComponent("synth000.nii.gz").path
        _ = try ifcn(["segment", "--checkpoint", run + "/checkpoints/best.safetensors", "--input", scan, "--output", out,
                      "--threads", "1", "--preview"])
        let preview = try PNG.read(out + "/synth000.png")
        XCTAssertGreaterThan(preview.width, 200)
        XCTAssertGreaterThan(preview.height, 200)
        let page = Self.scratch.appendingPathComponent("evaluation.html").path
        _ = try ifcn(["evaluate", "--reference", raw.appendingPathComponent("synth000_label.nii.gz").path,
                      "--prediction", out + "/synth000.nii.gz", "--html", page])
        let html = try String(contentsOfFile: page, encoding: .utf8)
        XCTAssertTrue(html.contains("CT: \(scan)"), "the CT recorded by segment should be found")
        XCTAssertTrue(html.contains("data:image/png;base64,"))
    }

    /// Headless Chromium renders the report; the screenshot has the window's size, is far from blank
    /// (many colours: charts), and shows the dark preview panels.
    func testChromiumRendersTheReport() throws {
        guard let chromium = TestPaths.tool("chromium") ?? TestPaths.tool("chromium-browser") else {
            throw XCTSkip("chromium is not installed (scripts/setup.sh --test installs it): browser check skipped")
        }
        let (_, run) = try preparedRun()
        let shot = Self.scratch.appendingPathComponent("report.png").path
        let profile = Self.scratch.appendingPathComponent("chromium-profile").path
        let r = try ProcessRunner.run(chromium, ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                                                 "--user-data-dir=\(profile)", "--screenshot=\(shot)", "--window-size=1280,2400",
                                                 "file://" + run + "/report.html"], timeout: 180)
        XCTAssertEqual(r.status, 0, r.summary)
        let image = try PNG.read(shot)
        XCTAssertEqual(image.width, 1280)
        XCTAssertEqual(image.height, 2400)
        var colors = Set<Int>(), nonWhite = 0, dark = 0
        for y in 0..<image.height {
            for x in 0..<image.width {
                let (r, g, b) = image.get(x, y)
                colors.insert(Int(r) << 16 | Int(g) << 8 | Int(b))
                if r < 245 || g < 245 || b < 245 { nonWhite += 1 }
                if r < 40 && g < 40 && b < 40 { dark += 1 }
            }
        }
        let total = image.width * image.height
        XCTAssertGreaterThan(Double(nonWhite) / Double(total), 0.05, "screenshot nearly blank")
        XCTAssertGreaterThan(colors.count, 200, "too few colours for charts and previews")
        XCTAssertGreaterThan(dark, 10_000, "no preview panels visible")
    }
}

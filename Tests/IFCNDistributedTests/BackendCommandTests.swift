import Foundation
import IFCNTestSupport
import XCTest

/// `ifcn devices` and `--backend` as a user meets them on a machine without a GPU (CI): a report
/// that says why CUDA is unusable, a clear error for `--backend cuda`, and the CPU for `auto`.
final class BackendCommandTests: XCTestCase {
    let fixture = TestPaths.repositoryRoot.appendingPathComponent("Tests/IFCNEngineTests/Fixtures/paper_c4_p16.safetensors").path

    func run(_ arguments: [String], environment: [String: String] = [:]) throws -> ProcessResult {
        try ProcessRunner.run(try TestPaths.ifcnBinary(), arguments, timeout: 120,
                              environment: ProcessRunner.cleanEnvironment(environment))
    }

    /// Whether this machine can run CUDA at all (then the no-GPU expectations do not apply).
    func gpuHere() throws -> Bool {
        let r = try run(["devices", "--json"])
        XCTAssertEqual(r.status, 0, r.summary)
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.summary)
        XCTAssertNotNil(obj["libraries"] as? [[String: Any]])
        return obj["usable"] as? Bool ?? false
    }

    func testDevicesSaysWhyCUDAIsUnusable() throws {
        if try gpuHere() { throw XCTSkip("a GPU is usable here") }
        let r = try run(["devices"])
        XCTAssertEqual(r.status, 0, r.summary)
        XCTAssertTrue(r.stdout.contains("CUDA backend: not usable here"), r.summary)
        XCTAssertTrue(r.stdout.contains("unusable: "), r.summary)
        for library in ["CUDA driver", "cuDNN", "NVRTC"] { XCTAssertTrue(r.stdout.contains(library), r.summary) }
    }

    func testBackendCUDAWithoutAGPUIsAClearErrorAndAutoUsesTheCPU() throws {
        if try gpuHere() { throw XCTSkip("a GPU is usable here") }
        let cuda = try run(["check-reference", fixture, "--backend", "cuda", "--quiet"])
        XCTAssertNotEqual(cuda.status, 0, cuda.summary)
        XCTAssertTrue(cuda.stderr.contains("CUDA is not usable: "), cuda.summary)
        let auto = try run(["check-reference", fixture, "--backend", "auto", "--quiet", "--threads", "1"])
        XCTAssertEqual(auto.status, 0, auto.summary)
        XCTAssertTrue(auto.stderr.contains("backend: cpu (CUDA not usable: "), auto.summary)
        XCTAssertTrue(auto.stdout.contains("on backend cpu"), auto.summary)
        let env = try run(["check-reference", fixture, "--quiet"], environment: ["IFCN_BACKEND": "cuda"])
        XCTAssertNotEqual(env.status, 0, env.summary)
        XCTAssertTrue(env.stderr.contains("CUDA is not usable: "), env.summary)
    }

    func testUnknownBackendMathOrLayoutIsAParseErrorListingTheChoices() throws {
        let r = try run(["bench", "--backend", "gpu"])
        XCTAssertNotEqual(r.status, 0, r.summary)
        XCTAssertTrue(r.stderr.contains("auto") && r.stderr.contains("cpu") && r.stderr.contains("cuda"), r.summary)
        let m = try run(["bench", "--gpu-math", "fp16"])
        XCTAssertNotEqual(m.status, 0, m.summary)
        XCTAssertTrue(m.stderr.contains("fp32") && m.stderr.contains("tf32"), m.summary)
        let l = try run(["train", "--gpu-layout", "nhwc"])
        XCTAssertNotEqual(l.status, 0, l.summary)
        XCTAssertTrue(l.stderr.contains("ncdhw") && l.stderr.contains("ndhwc"), l.summary)
        let e = try run(["bench", "--steps", "1"], environment: ["IFCN_BACKEND": "gpu"])
        XCTAssertNotEqual(e.status, 0, e.summary)
        XCTAssertTrue(e.stderr.contains("IFCN_BACKEND='gpu'"), e.summary)
    }

    /// `IFCN_EMULATE_GPU_MATH`: a value naming no math, or set beside `IFCN_EMULATE_BF16`, stops the command before
    /// any work with the variable named; a valid one is named in the backend's description.
    func testGPUMathEmulationSettingsAreChecked() throws {
        let bad = try run(["check-reference", fixture, "--backend", "cpu", "--quiet"], environment: ["IFCN_EMULATE_GPU_MATH": "fp16"])
        XCTAssertNotEqual(bad.status, 0, bad.summary)
        XCTAssertTrue(bad.stderr.contains("IFCN_EMULATE_GPU_MATH='fp16' is not one of fp32, tf32, bf16"), bad.summary)
        let both = try run(["check-reference", fixture, "--backend", "cpu", "--quiet"],
                           environment: ["IFCN_EMULATE_GPU_MATH": "bf16", "IFCN_EMULATE_BF16": "1"])
        XCTAssertNotEqual(both.status, 0, both.summary)
        XCTAssertTrue(both.stderr.contains("IFCN_EMULATE_BF16 and IFCN_EMULATE_GPU_MATH"), both.summary)
        let tf32 = try run(["check-reference", fixture, "--backend", "cpu", "--quiet", "--threads", "1"],
                           environment: ["IFCN_EMULATE_GPU_MATH": "tf32"])
        XCTAssertTrue(tf32.stdout.contains("on backend cpu (GPU tf32 convolutions, emulated)"), tf32.summary)
    }

    func testBenchProfileSplitsTheStepByKindOfKernel() throws {
        let r = try run(["bench", "--channels", "4", "--patch", "16", "--steps", "2", "--threads", "1", "--backend", "cpu",
                         "--profile", "--json"])
        XCTAssertEqual(r.status, 0, r.summary)
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.summary)
        let profile = try XCTUnwrap(obj["profile"] as? [String: [String: Any]], r.summary)
        for span in ["step", "forward"] {
            let p = try XCTUnwrap(profile[span], r.summary)
            XCTAssertEqual(p["clock"] as? String, "host clock")
            XCTAssertEqual(p["spans"] as? Int, 2)
            let calls = try XCTUnwrap(p["calls"] as? [String: Int], r.summary)
            XCTAssertGreaterThan(calls["conv3 forward"] ?? 0, 0, r.summary)
            XCTAssertEqual(calls["conv3 backward filter"] != nil, span == "step", r.summary)
            XCTAssertGreaterThan(p["total_seconds"] as? Double ?? 0, 0, r.summary)
        }
        let text = try run(["bench", "--channels", "4", "--patch", "16", "--steps", "1", "--threads", "1", "--backend", "cpu", "--profile"])
        XCTAssertEqual(text.status, 0, text.summary)
        XCTAssertTrue(text.stdout.contains("profile of a training step: mean of 1, host clock"), text.summary)
        XCTAssertTrue(text.stdout.contains("conv3 backward data"), text.summary)
    }

    /// The convolution sweep times cuDNN: asked for on the CPU it is a clear error before any work, as is a bad budget.
    func testBenchConvolutionSweepNeedsAGPU() throws {
        let r = try run(["bench", "--channels", "4", "--patch", "16", "--steps", "1", "--threads", "1", "--backend", "cpu", "--conv-sweep"])
        XCTAssertEqual(r.status, 1, r.summary)
        XCTAssertTrue(r.stderr.contains("--conv-sweep times cuDNN's convolutions on a GPU, but this bench runs on the cpu backend"), r.summary)
        XCTAssertFalse(r.stderr.contains("step 1/1"), r.summary)
        let budget = try run(["bench", "--backend", "cpu", "--conv-sweep", "--sweep-seconds", "0"])
        XCTAssertNotEqual(budget.status, 0, budget.summary)
        XCTAssertTrue(budget.stderr.contains("--sweep-seconds must be a positive number"), budget.summary)
    }

    func testCheckBackendsOnTheCPU() throws {
        let r = try run(["check-backends", "--backend", "cpu", "--threads", "2"])
        XCTAssertEqual(r.status, 0, r.summary)
        XCTAssertTrue(r.stdout.contains(" passed, 0 failed"), r.summary)
        XCTAssertTrue(r.stdout.contains("training loss predicted, reference, both"), r.summary)
        XCTAssertTrue(r.stdout.contains("completeness head"), r.summary)
    }
}

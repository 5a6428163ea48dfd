import Foundation
import IFCNCompute
@testable import IFCNEngine
import XCTest

/// A CPU backend with a broken ReLU (leaks negative values), to show the agreement check fails.
final class WrongReLUBackend: CPUBackend {
    override func reluForward(_ tensor: TensorRef) {
        super.reluForward(tensor)
        fill(tensor.slice(0, 1), value: -1)
    }
}

/// The PyTorch fixtures (docs/REFERENCE_FIXTURES.md, made by tools/ifcn_reference.py) through the whole engine.
final class ReferenceFixtureTests: XCTestCase {
    // Each fixture test runs once per available backend (the CPU; CUDA where a GPU is present).

    func testPaperP16MeetsReferenceTolerances() throws {
        for backend in TestBackends.available {
            let r = try ReferenceCheck.run(path: fixturePath("paper_c4_p16.safetensors"), backend: backend)
            XCTAssertTrue(r.skipped.isEmpty, "skipped \(r.skipped)")
            XCTAssertGreaterThan(r.comparisons.count, 100)
            for c in r.comparisons { XCTAssertTrue(c.passed, "\(backend.name): \(c.name) relL2 \(c.relativeL2) maxAbs \(c.maxAbs)") }
        }
    }

    func testPaperP32MeetsReferenceTolerances() throws {
        for backend in TestBackends.available {
            let r = try ReferenceCheck.run(path: fixturePath("paper_c4_p32.safetensors"), backend: backend)
            XCTAssertTrue(r.skipped.isEmpty, "skipped \(r.skipped)")
            for c in r.comparisons { XCTAssertTrue(c.passed, "\(backend.name): \(c.name) relL2 \(c.relativeL2) maxAbs \(c.maxAbs)") }
        }
    }

    /// Winograd F(4,3) and F(2,3), which the CPU rule uses for inference at C >= 32, forced at every size
    /// they handle: every eval-mode output of every fixture meets the reference tolerance (their gradients
    /// are not used: see the rule).
    func testWinogradInferenceMeetsReferenceTolerances() throws {
        try XCTSkipUnless(ConvolutionAlgorithm.directKernelsSupported, "this CPU has no AVX2 + FMA")
        for algorithm in [ConvolutionAlgorithm.winograd, .winograd4] {
            let backend = CPUBackend(threads: 2, convolutionAlgorithm: algorithm)
            for fixture in ["paper_c4_p16", "paper_c4_p32", "seed_c4_p32", "paper_c16_p64", "seed_c6_p64"] {
                let r = try ReferenceCheck.run(path: fixturePath(fixture + ".safetensors"), backend: backend)
                let eval = r.comparisons.filter { $0.name.hasPrefix("eval/") }
                XCTAssertGreaterThanOrEqual(eval.count, 1, fixture)
                for c in eval {
                    XCTAssertTrue(c.passed, "\(algorithm) \(fixture): \(c.name) relL2 \(c.relativeL2) maxAbs \(c.maxAbs)")
                }
            }
        }
    }

    /// A second run on the same backend gives the same bits.
    func testRepeatedRunsAreBitIdentical() throws {
        for backend in TestBackends.available {
            let a = try ReferenceCheck.run(path: fixturePath("paper_c4_p16.safetensors"), backend: backend)
            let b = try ReferenceCheck.run(path: fixturePath("paper_c4_p16.safetensors"), backend: backend)
            XCTAssertGreaterThan(a.computed.count, 100)
            XCTAssertEqual(a.bitwiseDifferences(from: b), [], backend.name)
        }
    }

    /// Every kernel of each available backend against the CPU on random data (relative L2 <= 1e-5).
    /// On a CPU-only machine this compares the CPU with itself (same threads), which must be exact.
    func testEveryKernelAgreesWithTheCPU() {
        for backend in TestBackends.available {
            let results = BackendAgreement.run(reference: CPUBackend(threads: 2), candidate: backend)
            XCTAssertGreaterThan(results.count, 30)
            for r in results {
                XCTAssertTrue(r.passed, "\(backend.name): \(r.name) relL2 \(r.relativeL2)")
                if let cpu = backend as? CPUBackend, cpu.convolutionAlgorithm == nil {
                    XCTAssertEqual(r.relativeL2, 0, "\(r.name): CPU against itself")
                }
            }
        }
    }

    /// The agreement check can fail: a wrong kernel is caught.
    func testAgreementDetectsAWrongKernel() {
        let results = BackendAgreement.run(reference: CPUBackend(threads: 1), candidate: WrongReLUBackend(threads: 1))
        let failed = results.filter { !$0.passed }.map(\.name)
        XCTAssertTrue(failed.contains("relu output"), "\(failed)")
        XCTAssertTrue(failed.allSatisfy { $0.hasPrefix("relu") }, "\(failed)")
    }

    /// The seed fixture is ill-conditioned for float32: PyTorch's own float32 run misses the
    /// 1e-3 tolerance on two tensors (pytorch_f32_errors.json, made by tools/pytorch_f32_baseline.py).
    /// On grad/conv_rest.2.bias ifcn is off by 0.2-0.6 on each of the four elements (values of
    /// 24-597), a relative error of 1.28e-3 against PyTorch float32's 1.27e-3: an offset of the
    /// same size in both engines, which accumulating in float64 does not move (measured), and whose
    /// last digits depend on OpenBLAS's kernels (AVX2 or AVX-512). The offset is one ReLU mask that
    /// float32 rounding flips (tools/relu_mask_flips.py: float64 with PyTorch float32's masks has
    /// PyTorch float32's errors); on AVX2 ifcn's is 1.279e-3, 1.01x PyTorch's. Every tensor must meet the README
    /// tolerance, or the fixture README's bar for an engine claiming PyTorch's float32 precision:
    /// at most 1.5 x PyTorch float32's own error on that tensor.
    func testSeedP32AsAccurateAsPyTorchFloat32() throws {
        for backend in TestBackends.available { try checkSeedP32(backend) }
    }

    func checkSeedP32(_ backend: any ComputeBackend) throws {
        let r = try ReferenceCheck.run(path: fixturePath("seed_c4_p32.safetensors"), backend: backend)
        let data = try Data(contentsOf: URL(fileURLWithPath: fixturePath("pytorch_f32_errors.json")))
        let baseline = try XCTUnwrap((try JSONSerialization.jsonObject(with: data) as? [String: [String: Double]])?["seed_c4_p32.safetensors"])
        XCTAssertGreaterThan(r.comparisons.count, 80)
        for c in r.comparisons where !c.passed {
            let torch = try XCTUnwrap(baseline[c.name], "no PyTorch baseline for \(c.name)")
            XCTAssertGreaterThan(torch, ReferenceCheck.relativeL2Tolerance, "\(c.name) fails although PyTorch float32 passes")
        }
        for c in r.judged(pytorchFloat32Errors: baseline) {
            XCTAssertTrue(c.passed, "\(c.name): \(c.relativeL2) above 1.5 x PyTorch float32's \(baseline[c.name] ?? 0)")
        }
        XCTAssertLessThanOrEqual(r.comparisons.filter { !$0.passed }.count, 2)
    }

    /// `check-reference --compare-cpu`: two backends agree within the README tolerance, except on a tensor where
    /// PyTorch float32 itself misses the tolerance against the reference; there both must be within their accepted
    /// error of the reference (1.5 x PyTorch float32's), which two results can meet while lying further apart.
    func testBackendAgreementJudgesIllConditionedTensorsAgainstTheReference() throws {
        let config = try NetworkConfig(variant: .seed, channels: 4, patch: 32)
        let reference: [Float] = [1, -2, 3, 0.5]
        func scaled(_ f: Float) -> [Float] { reference.map { $0 * f } }  // relative L2 distance |f - 1| from the reference
        func report(_ values: [Float]) -> ReferenceCheckReport {
            let (rel, mx) = compare(values, reference)
            return ReferenceCheckReport(config: config, comparisons: [
                TensorComparison(name: "adam1/w", relativeL2: rel, maxAbs: mx, passed: rel <= ReferenceCheck.relativeL2Tolerance)
            ], computed: ["adam1/w": values])
        }
        let torch = ["adam1/w": 1.7e-3]  // PyTorch float32's own error on this tensor: above the tolerance
        let gpu = report(scaled(1.0012)), cpu = report(scaled(0.9988))  // each 1.2e-3 off, 2.4e-3 apart
        XCTAssertTrue(gpu.agreement(with: cpu, pytorchFloat32Errors: torch).allSatisfy(\.passed))
        XCTAssertEqual(gpu.agreement(with: cpu, pytorchFloat32Errors: torch).first?.relativeL2 ?? 0, 2.4e-3, accuracy: 1e-5)
        // Without the baseline, or where one backend is further from the reference than 1.5 x PyTorch's error, or
        // where the tensor is well-conditioned (PyTorch float32 within the tolerance), the distance decides.
        XCTAssertFalse(gpu.agreement(with: cpu, pytorchFloat32Errors: nil).allSatisfy(\.passed))
        XCTAssertFalse(gpu.agreement(with: report(scaled(0.997)), pytorchFloat32Errors: torch).allSatisfy(\.passed))
        XCTAssertFalse(gpu.agreement(with: cpu, pytorchFloat32Errors: ["adam1/w": 5e-4]).allSatisfy(\.passed))
        XCTAssertTrue(gpu.agreement(with: report(scaled(1.0004)), pytorchFloat32Errors: nil).allSatisfy(\.passed))
    }

    func testEvalOnlyFixtureSkipsTrainingPart() throws {
        // Rewrite the P16 fixture with only its eval part.
        let full = try SafeTensorsFile(path: fixturePath("paper_c4_p16.safetensors"))
        var w = SafeTensorsWriter()
        w.metadata = full.metadata
        for (name, info) in full.tensors where name.hasPrefix("param/") || name.hasPrefix("buffer/") || name == "input" || name.hasPrefix("eval/") {
            w.add(name, floats: try full.floats(name), shape: info.shape)
        }
        let path = NSTemporaryDirectory() + "/eval_only_\(getpid()).safetensors"
        try w.write(to: path)
        defer { unlink(path) }
        let r = try ReferenceCheck.run(path: path, threads: 1)
        XCTAssertEqual(Set(r.comparisons.map(\.name)), ["eval/seg", "eval/cls"])
        XCTAssertTrue(r.passed)
        XCTAssertFalse(r.skipped.isEmpty)
    }

    func testComparisonDetectsAWrongResult() throws {
        // The checker must be able to fail: perturb one parameter and the eval output moves.
        let full = try SafeTensorsFile(path: fixturePath("paper_c4_p16.safetensors"))
        var w = SafeTensorsWriter()
        w.metadata = full.metadata
        for (name, info) in full.tensors {
            var v = try full.floats(name)
            if name == "param/seg.bias" { v[0] += 0.5 }
            w.add(name, floats: v, shape: info.shape)
        }
        let path = NSTemporaryDirectory() + "/perturbed_\(getpid()).safetensors"
        try w.write(to: path)
        defer { unlink(path) }
        let r = try ReferenceCheck.run(path: path, threads: 1)
        XCTAssertFalse(r.passed)
        XCTAssertFalse(r.comparisons.first { $0.name == "eval/seg" }!.passed)
    }
}

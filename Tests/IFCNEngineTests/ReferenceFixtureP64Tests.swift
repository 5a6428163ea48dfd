import Foundation
import IFCNCompute
import IFCNEngine
import XCTest

/// The P = 64 fixtures (docs/REFERENCE_FIXTURES.md), once per available backend. At this size
/// float32 misses the README tolerance on many gradients in any engine: PyTorch float32's own
/// gradient error there is that of the few ReLU masks its rounding flips (a float64 run given
/// PyTorch float32's masks has the same error to three digits), so it measures which voxels
/// flip, not how precisely an engine sums.
final class ReferenceFixtureP64Tests: XCTestCase {
    /// PyTorch float32's errors (tools/pytorch_f32_baseline.py): `pytorch_f32_errors.json` with
    /// its default (oneDNN) convolutions, `pytorch_f32_errors_im2col.json` with --without-onednn.
    func pytorchErrors(_ file: String, _ fixture: String) throws -> [String: Double] {
        let data = try Data(contentsOf: URL(fileURLWithPath: fixturePath(file)))
        let all = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: [String: Double]])
        return try XCTUnwrap(all[fixture], "\(file) has no entry for \(fixture)")
    }

    /// Forward outputs, loss and running statistics meet the README tolerance outright; every
    /// gradient and Adam step meets it or is at most 1.5 x `bar`, PyTorch float32's error (the
    /// issue's bar; `judged` is stricter: it also fails a tensor that PyTorch gets within 1e-3).
    func check(_ fixture: String, bar: [String: Double], on backend: any ComputeBackend) throws {
        let r = try ReferenceCheck.run(path: fixturePath(fixture), backend: backend)
        XCTAssertTrue(r.skipped.isEmpty, "skipped \(r.skipped)")
        XCTAssertGreaterThan(r.comparisons.count, 80)
        for c in r.comparisons where !(c.name.hasPrefix("grad/") || c.name.hasPrefix("adam1/")) {
            XCTAssertTrue(c.passed, "\(backend.name): \(c.name) relL2 \(c.relativeL2) maxAbs \(c.maxAbs)")
        }
        for c in r.comparisons where !c.passed {
            let torch = try XCTUnwrap(bar[c.name], "no PyTorch float32 error for \(c.name)")
            XCTAssertLessThanOrEqual(c.relativeL2, ReferenceCheck.pytorchPrecisionFactor * torch,
                                     "\(backend.name): \(c.name) above 1.5 x PyTorch float32's error")
        }
    }

    /// seed variant, C = 6: the bar as it stands, against PyTorch float32's default path.
    func testSeedC6P64AsAccurateAsPyTorchFloat32() throws {
        let fixture = "seed_c6_p64.safetensors"
        let bar = try pytorchErrors("pytorch_f32_errors.json", fixture)
        for backend in TestBackends.available { try check(fixture, bar: bar, on: backend) }
    }

    /// paper variant, C = 16. PyTorch float32's two CPU convolution paths differ here by up to
    /// ~4x per gradient (median 1.75x): PyTorch's im2col path misses 1.5 x its default path's error
    /// on many tensors, as ifcn (im2col + sgemm) does. The bar is 1.5 x the larger of the two.
    func testPaperC16P64WithinPyTorchFloat32sOwnSpread() throws {
        let fixture = "paper_c16_p64.safetensors"
        let oneDNN = try pytorchErrors("pytorch_f32_errors.json", fixture)
        let im2col = try pytorchErrors("pytorch_f32_errors_im2col.json", fixture)
        let bar = oneDNN.merging(im2col, uniquingKeysWith: max)
        XCTAssertGreaterThan(bar.values.filter { $0 > ReferenceCheck.relativeL2Tolerance }.count, 20,
                             "the fixture no longer shows float32's ill-conditioning at P = 64")
        for backend in TestBackends.available { try check(fixture, bar: bar, on: backend) }
    }

    /// paper variant, C = 32, P = 32: the smallest fixture where the CPU rule's Winograd backward data runs in
    /// training (both channel counts >= 32 at the 32^3 and 16^3 levels). As at C = 16, P = 64, float32 misses the
    /// README tolerance on about a third of the tensors (48 of 141 for PyTorch) and PyTorch's two convolution
    /// paths differ by up to ~4x; the rule's backend (Winograd backward data) stays within 1.5 x PyTorch's default
    /// path's error on every tensor, im2col within 1.5 x the larger of the two paths' errors.
    func testPaperC32P32WithinPyTorchFloat32sOwnSpread() throws {
        let fixture = "paper_c32_p32.safetensors"
        let oneDNN = try pytorchErrors("pytorch_f32_errors.json", fixture)
        let im2col = try pytorchErrors("pytorch_f32_errors_im2col.json", fixture)
        XCTAssertGreaterThan(oneDNN.values.filter { $0 > ReferenceCheck.relativeL2Tolerance }.count, 20)
        if ConvolutionAlgorithm.directKernelsSupported && !ConvolutionAlgorithm.cpuHasAVX512 {
            try check(fixture, bar: oneDNN, on: CPUBackend(threads: 2))
        }
        let bar = oneDNN.merging(im2col, uniquingKeysWith: max)
        for backend in TestBackends.available { try check(fixture, bar: bar, on: backend) }
    }
}

import Foundation
@testable import IFCNCompute
import IFCNEngine
import IFCNTestSupport
import XCTest

/// The CUDA backend end to end without a GPU: `ifcn` runs with `IFCN_CUDA_LIBRARY_PATH` pointing at the CPU
/// emulator of the NVIDIA libraries (Tests/CUDAEmulator, built by scripts/cuda_emulator.sh), so the Swift backend,
/// the C shim and every one of ifcn's own CUDA kernels run for real, and cuDNN's convolutions as a direct
/// reference. Each command runs in its own process (the libraries load once per process). What it cannot show:
/// cuDNN's own algorithms and rounding, the GPU's timings, NCCL's own transport (docs/ARCHITECTURE.md, "Testing the
/// CUDA backend without a GPU").
final class CUDAEmulatorTests: XCTestCase {
    nonisolated(unsafe) static var built: URL?
    let fixtures = TestPaths.repositoryRoot.appendingPathComponent("Tests/IFCNEngineTests/Fixtures")

    override class func tearDown() {
        if let built { try? FileManager.default.removeItem(at: built) }
        built = nil
        super.tearDown()
    }

    /// Builds the emulator once per test run (a few seconds); skips where no C++ compiler is installed.
    func emulator() throws -> URL {
        if let built = Self.built { return built }
        guard ["c++", "g++", "clang++"].contains(where: { TestPaths.tool($0) != nil })
            || ProcessInfo.processInfo.environment["CXX"] != nil else {
            throw XCTSkip("no C++ compiler to build the CUDA emulator")
        }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("ifcn-cuda-emulator-\(getpid())")
        let script = TestPaths.repositoryRoot.appendingPathComponent("scripts/cuda_emulator.sh")
        let r = try ProcessRunner.run(URL(fileURLWithPath: "/bin/bash"), [script.path, out.path], timeout: 300)
        XCTAssertEqual(r.status, 0, r.summary)
        guard r.status == 0 else { throw XCTSkip("the emulator did not build") }
        Self.built = out
        return out
    }

    /// `ifcn ARGS` on the emulated GPU, with a kernel cache of its own.
    func ifcn(_ arguments: [String], extra: [String: String] = [:], timeout: Int = 300) throws -> ProcessResult {
        let lib = try emulator()
        let cache = lib.appendingPathComponent("cache")
        return try ProcessRunner.run(try TestPaths.ifcnBinary(), arguments, timeout: timeout,
                                     environment: ProcessRunner.cleanEnvironment(
                                         ["IFCN_CUDA_LIBRARY_PATH": lib.path, "IFCN_CACHE_DIR": cache.path].merging(extra) { $1 }))
    }

    /// `cases` synthetic spines in WORK/raw, preprocessed at `spacing` mm into WORK/data (a third held out).
    func syntheticData(in work: URL, cases: Int, spacing: Int) throws {
        let raw = work.appendingPathComponent("raw").path, data = work.appendingPathComponent("data").path
        let s = try ifcn(["synth", "--output", raw, "--cases", "\(cases)", "--seed", "11"])
        XCTAssertEqual(s.status, 0, s.summary)
        let p = try ifcn(["preprocess", "--input", raw, "--output", data, "--spacing", "\(spacing)", "--val-fraction", "0.34", "--seed", "1"])
        XCTAssertEqual(p.status, 0, p.summary)
    }

    func fixture(_ name: String) -> String { fixtures.appendingPathComponent(name + ".safetensors").path }

    /// Each tensor's relative L2 distance as `check-reference` prints it (lines "ok|FAIL name relL2 x ...").
    func distances(_ output: String) -> [String: Double] {
        var out: [String: Double] = [:]
        for line in output.split(separator: "\n") {
            let words = line.split(separator: " ")
            guard let i = words.firstIndex(of: "relL2"), i >= 1, i + 1 < words.count, let d = Double(words[i + 1]) else { continue }
            out[String(words[i - 1])] = d
        }
        return out
    }

    /// The kernels' 16- and 8-byte accesses (`__ldcg`, `__stcg`) are checked for alignment by the emulator, as the
    /// GPU faults on a misaligned one: a program built on the emulator's built-ins and library runs aligned accesses
    /// through, and stops at a misaligned load and a misaligned store with the emulator's message.
    func testAMisalignedVectorAccessStopsTheEmulator() throws {
        let lib = try emulator()
        let compiler = try XCTUnwrap(["c++", "g++", "clang++"].lazy.compactMap { TestPaths.tool($0) }.first)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ifcn-misaligned-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let source = """
            #include "cuda_builtins.h"
            #include <cstdio>
            #include <cstdlib>
            #include <cstring>
            // access OFFSET load16|store16|load8: one access at OFFSET bytes into a 16-byte aligned buffer.
            int main(int argc, char** argv) {
                alignas(16) static unsigned char buffer[64];
                unsigned char* p = buffer + std::atoi(argv[1]);
                if (std::strcmp(argv[2], "store16") == 0) __stcg((uint4*)p, uint4{1, 2, 3, 4});
                if (std::strcmp(argv[2], "load8") == 0) {
                    const uint2 b = __ldcg((const uint2*)p);
                    std::printf("read %u\\n", b.x + b.y);
                } else {
                    const uint4 a = __ldcg((const uint4*)p);
                    std::printf("read %u\\n", a.x + a.y + a.z + a.w);
                }
                return 0;
            }
            """
        try source.write(to: dir.appendingPathComponent("access.cpp"), atomically: true, encoding: .utf8)
        let build = try ProcessRunner.run(compiler, ["-std=c++17", "-I", TestPaths.repositoryRoot.appendingPathComponent("Tests/CUDAEmulator").path,
                                                     "-o", dir.appendingPathComponent("access").path, dir.appendingPathComponent("access.cpp").path,
                                                     lib.appendingPathComponent("libifcn_cuda_emulator.so").path,
                                                     "-Wl,-rpath," + lib.path, "-lpthread"], timeout: 120)
        XCTAssertEqual(build.status, 0, build.summary)
        let program = dir.appendingPathComponent("access")
        // Aligned: 16-byte accesses at 0 and 16, an 8-byte one at 8.
        for (offset, mode, read) in [("0", "store16", "read 10"), ("16", "load16", "read 0"), ("8", "load8", "read 0")] {
            let r = try ProcessRunner.run(program, [offset, mode], timeout: 30)
            XCTAssertEqual(r.status, 0, r.summary)
            XCTAssertTrue(r.stdout.contains(read), r.summary)
        }
        // Misaligned: a 16-byte access at 8 (load and store), at 4, an 8-byte one at 4.
        for (offset, mode, bytes) in [("8", "load16", 16), ("8", "store16", 16), ("4", "load16", 16), ("4", "load8", 8)] {
            let r = try ProcessRunner.run(program, [offset, mode], timeout: 30)
            XCTAssertNotEqual(r.status, 0, "\(offset) \(mode): \(r.summary)")
            XCTAssertTrue(r.stderr.contains("a \(bytes)-byte access at ") && r.stderr.contains("not aligned to \(bytes) bytes")
                          && r.stderr.contains("CUDA_ERROR_MISALIGNED_ADDRESS"), "\(offset) \(mode): \(r.summary)")
        }
    }

    func testDevicesFindsTheEmulatedGPU() throws {
        let r = try ifcn(["devices"])
        XCTAssertEqual(r.status, 0, r.summary)
        XCTAssertTrue(r.stdout.contains("ifcn CUDA emulator (CPU)  sm_90"), r.summary)
        XCTAssertTrue(r.stdout.contains("CUDA backend: usable"), r.summary)
    }

    /// Every kernel against the CPU backend (relative L2 <= 1e-5), as `check-backends` does on a GPU; with the
    /// guard pages after the buffers and before them, so an access past either end stops the run.
    func testEveryKernelAgreesWithTheCPU() throws {
        for guardPage in ["back", "front"] {
            for (channels, extent) in [("8", "16,20,24"), ("3", "2,4,6")] {
                let r = try ifcn(["check-backends", "--backend", "cuda", "--channels", channels, "--extent", extent, "--threads", "2"],
                                 extra: ["IFCN_CUDA_EMULATOR_GUARD": guardPage])
                XCTAssertEqual(r.status, 0, "guard \(guardPage): \(r.summary)")
                XCTAssertTrue(r.stdout.contains("53 passed, 0 failed"), r.summary)
            }
        }
    }

    /// The reference fixtures in fp32 math: every tensor within the README tolerance, bit-identical in a second
    /// run, and within the tolerance of the CPU backend's result; seed_c4_p32 against PyTorch float32's own error,
    /// also in its agreement with the CPU.
    func testReferenceFixturesInFloat32() throws {
        for name in ["paper_c4_p16", "paper_c4_p32"] {
            let r = try ifcn(["check-reference", "--backend", "cuda", "--gpu-math", "fp32", "--quiet", "--determinism",
                              "--compare-cpu", "--threads", "2", fixture(name)])
            XCTAssertEqual(r.status, 0, r.summary)
            XCTAssertTrue(r.stdout.contains(" 0 failed"), r.summary)
            XCTAssertTrue(r.stdout.contains("bit-identical in a second run"), r.summary)
        }
        // The emulator sums convolutions in double, so on Adam's ill-conditioned first step it lands near the
        // reference and 1.7e-3 from the CPU's float32 result, as far as PyTorch float32 is from the reference.
        let seed = try ifcn(["check-reference", "--backend", "cuda", "--gpu-math", "fp32", "--quiet", "--determinism",
                             "--compare-cpu", "--threads", "2",
                             "--pytorch-baseline", fixtures.appendingPathComponent("pytorch_f32_errors.json").path,
                             fixture("seed_c4_p32")])
        XCTAssertEqual(seed.status, 0, seed.summary)
        XCTAssertTrue(seed.stdout.contains("ok   backend agreement with the CPU"), seed.summary)
    }

    /// tf32 and bf16 math take their own paths (operands rounded to TF32 by the emulated tensor cores; bf16 copies
    /// made by ifcn's kernels, widened back): the forward pass stays near the fixture, and the gradients move more
    /// than in fp32, bf16 (7 fraction bits) more than TF32 (10). The emulator rounds every convolution to TF32,
    /// which cuDNN on a GPU need not (it may pick FMA algorithms at 4 channels), and this tiny network's batch norms
    /// over a few voxels amplify rounding a hundredfold: the medians are the emulator's, not a GPU's.
    func testReducedPrecisionMathsRunAndStayNearTheFixture() throws {
        var forward: [String: Double] = [:], gradients: [String: Double] = [:]
        for math in ["fp32", "tf32", "bf16", "bf16 activations"] {
            let flags = math == "bf16 activations" ? ["--gpu-math", "bf16", "--gpu-activations", "bf16"]
                : ["--gpu-math", math, "--gpu-activations", "fp32"]
            let r = try ifcn(["check-reference", "--backend", "cuda"] + flags + [fixture("paper_c4_p16")])
            XCTAssertTrue(r.stdout.contains("passed,"), r.summary)
            let d = distances(r.stdout)
            forward[math] = d.filter { $0.key.hasPrefix("train/") || $0.key.hasPrefix("eval/") }.values.max()
            let g = d.filter { $0.key.hasPrefix("grad/") }.values.sorted()
            XCTAssertGreaterThan(g.count, 40, r.summary)
            gradients[math] = g.isEmpty ? nil : g[g.count / 2]
        }
        let report = "largest forward distance \(forward), median gradient distance \(gradients)"
        XCTAssertLessThan(try XCTUnwrap(forward["fp32"]), 1e-6, report)
        XCTAssertLessThan(try XCTUnwrap(forward["tf32"]), 1e-3, report)
        XCTAssertLessThan(try XCTUnwrap(forward["bf16"]), 1e-2, report)
        XCTAssertLessThan(try XCTUnwrap(forward["bf16 activations"]), 1e-2, report)
        XCTAssertLessThan(try XCTUnwrap(gradients["bf16 activations"]), 0.5, report)
        let fp32 = try XCTUnwrap(gradients["fp32"]), tf32 = try XCTUnwrap(gradients["tf32"]), bf16 = try XCTUnwrap(gradients["bf16"])
        XCTAssertLessThan(fp32, 1e-5, report)
        XCTAssertGreaterThan(tf32, 100 * fp32, report)
        XCTAssertGreaterThan(bf16, 2 * tf32, report)
        XCTAssertLessThan(bf16, 0.5, report)
    }

    /// The CPU's emulation of the GPU's convolution math (`IFCN_EMULATE_GPU_MATH`, with which
    /// bench/precision_curves.sh measures what tf32 and bf16 do to training) computes what the CUDA backend computes:
    /// every kernel of `check-backends` in tf32 and bf16 math within 1e-5 of the emulating CPU, where the float32
    /// CPU fails the convolutions; bf16's whole training step on paper_c4_p16 agrees with the emulating CPU within
    /// the backends' tolerance, and not with the float32 CPU. (tf32's whole step is no test at this size: a float32
    /// sum that differs in its last bit can round to a TF32 value 2^13 ulps away, and this network's gradients
    /// amplify that as they amplify the rounding itself; its forward outputs agree, its gradients do not.) The same for
    /// bf16 with bfloat16 activations, against the CPU emulating those too.
    func testCPUEmulationOfTheGPUMathAgreesWithTheGPUPath() throws {
        for math in ["tf32", "bf16"] {
            let arguments = ["check-backends", "--backend", "cuda", "--gpu-math", math, "--gpu-activations", "fp32", "--threads", "2"]
            let emulated = try ifcn(arguments, extra: ["IFCN_EMULATE_GPU_MATH": math])
            XCTAssertEqual(emulated.status, 0, emulated.summary)
            XCTAssertTrue(emulated.stdout.contains("53 passed, 0 failed"), emulated.summary)
            XCTAssertTrue(emulated.stdout.contains("against the cpu (GPU \(math) convolutions, emulated)"), emulated.summary)
            let float32 = try ifcn(arguments)
            XCTAssertEqual(float32.status, 1, float32.summary)
            for pass in ["conv3 forward output", "conv3 backward data", "conv3 backward weight gradWeight"] {
                XCTAssertTrue(float32.stdout.contains("FAIL \(pass)"), float32.summary)
            }
        }
        let step = ["check-reference", "--backend", "cuda", "--gpu-math", "bf16", "--gpu-activations", "fp32", "--quiet", "--compare-cpu",
                    "--threads", "2", fixture("paper_c4_p16")]
        let emulated = try ifcn(step, extra: ["IFCN_EMULATE_GPU_MATH": "bf16"])
        XCTAssertTrue(emulated.stdout.contains("ok   backend agreement with the CPU"), emulated.summary)
        let float32 = try ifcn(step)
        XCTAssertTrue(float32.stdout.contains("FAIL backend agreement with the CPU"), float32.summary)
        // bf16 with bfloat16 activations: the CPU that also holds its activations as bfloat16 values
        // (IFCN_EMULATE_GPU_ACTIVATIONS, with which bench/precision_curves.sh measures bf16act) agrees; the CPU that
        // emulates the math alone does not.
        let narrow = step.filter { $0 != fixture("paper_c4_p16") } + ["--gpu-activations", "bf16", fixture("paper_c4_p16")]
        let both = try ifcn(narrow, extra: ["IFCN_EMULATE_GPU_MATH": "bf16", "IFCN_EMULATE_GPU_ACTIVATIONS": "bf16"])
        XCTAssertTrue(both.stdout.contains("ok   backend agreement with the CPU"), both.summary)
        let mathOnly = try ifcn(narrow, extra: ["IFCN_EMULATE_GPU_MATH": "bf16"])
        XCTAssertTrue(mathOnly.stdout.contains("FAIL backend agreement with the CPU"), mathOnly.summary)
        let refused = try ifcn(narrow, extra: ["IFCN_EMULATE_GPU_ACTIVATIONS": "bf16"])
        XCTAssertNotEqual(refused.status, 0, refused.summary)
        XCTAssertTrue(refused.stderr.contains("IFCN_EMULATE_GPU_ACTIVATIONS=bf16 needs IFCN_EMULATE_GPU_MATH=bf16"), refused.summary)
    }

    /// `bench --profile` in each math, with cuDNN's fastest algorithms (the emulator's algorithm 1 needs a
    /// workspace), with pageable uploads, and the convolution sweep over every variant (NDHWC and bf16 descriptors
    /// included).
    func testBenchProfileAndConvolutionSweep() throws {
        for math in ["fp32", "tf32", "bf16"] {
            let r = try ifcn(["bench", "--backend", "cuda", "--gpu-math", math, "--channels", "4", "--patch", "16",
                              "--steps", "1", "--profile"])
            XCTAssertEqual(r.status, 0, r.summary)
            XCTAssertTrue(r.stdout.contains("profile of a training step: mean of 1, CUDA events"), r.summary)
            XCTAssertTrue(r.stdout.contains("conv3 backward filter"), r.summary)
        }
        let fastest = try ifcn(["bench", "--backend", "cuda", "--gpu-math", "tf32", "--channels", "4", "--patch", "16",
                                "--steps", "1"], extra: ["IFCN_CUDNN_ALGORITHMS": "fastest"])
        XCTAssertEqual(fastest.status, 0, fastest.summary)
        // The device check's "pageable uploads" bench: IFCN_CUDA_UPLOAD_SLOT_BYTES=0 turns the pinned slots off
        // (the sweep below runs with the default 16 MiB slots).
        let pageable = try ifcn(["bench", "--backend", "cuda", "--gpu-math", "tf32", "--channels", "4", "--patch", "16",
                                 "--steps", "1", "--json"], extra: ["IFCN_CUDA_UPLOAD_SLOT_BYTES": "0"])
        XCTAssertEqual(pageable.status, 0, pageable.summary)
        let pageableJSON = try JSONSerialization.jsonObject(with: Data(pageable.stdout.utf8)) as? [String: Any]
        XCTAssertEqual(pageableJSON?["gpu_upload_slot_bytes"] as? Int, 0, pageable.stdout)
        XCTAssertEqual(pageableJSON?["gpu_uploads_ahead_per_step"] as? Int, 0, pageable.stdout)
        // At P=32 the loss's two maps (128 KiB each) go on the copy stream, beside the forward pass (at P=16 they are
        // below the pinned slots' 64 KiB minimum). The emulator lands such a copy only when the kernels' stream waits
        // for it, so a loss that read them without `awaitUploads` would read NaN (the fixture tests at P=32 fail so).
        let ahead = try ifcn(["bench", "--backend", "cuda", "--gpu-math", "fp32", "--channels", "4", "--patch", "32",
                              "--steps", "2", "--json"])
        XCTAssertEqual(ahead.status, 0, ahead.summary)
        let aheadJSON = try JSONSerialization.jsonObject(with: Data(ahead.stdout.utf8)) as? [String: Any]
        XCTAssertEqual(aheadJSON?["gpu_uploads_ahead_per_step"] as? Int, 2, ahead.stdout)
        let sweep = try ifcn(["bench", "--backend", "cuda", "--gpu-math", "tf32", "--channels", "4", "--patch", "16",
                              "--steps", "1", "--conv-sweep", "--sweep-seconds", "120", "--json"])
        XCTAssertEqual(sweep.status, 0, sweep.summary)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(sweep.stdout.utf8)) as? [String: Any], sweep.summary)
        XCTAssertEqual(json["gpu_upload_slot_bytes"] as? Int, 16 << 20, sweep.stdout)
        let report = try XCTUnwrap(json["conv_sweep"] as? [String: Any], sweep.stdout)
        let variants = try XCTUnwrap(report["variants"] as? [String: [String: [String: Any]]], sweep.stdout)
        XCTAssertEqual(Set(variants.keys), ["tf32_ncdhw", "tf32_ndhwc", "bf16_ndhwc", "bf16_ncdhw"], sweep.stdout)
        for (name, v) in variants {
            XCTAssertNotNil(v["deterministic"]?["total_seconds"] as? Double, "\(name) not timed: \(sweep.stdout)")
        }
        let rows = try XCTUnwrap(report["measurements"] as? [[String: Any]], sweep.stdout)
        XCTAssertGreaterThan(rows.count, 4 * 20, sweep.stdout)
        for row in rows { XCTAssertTrue(row["problem"] is NSNull, "\(row)") }
    }

    /// The algorithm search gives cuDNN's Find...Ex the workspace that the deterministic candidates of cuDNN's
    /// heuristics want (on the H200 the fastest tf32 NCDHW algorithms at 128^3 want 1.5 GiB, and a fixed 256 MiB made
    /// the step 4 times slower): the emulated deterministic algorithms need 300 MiB, beyond the search's bound at
    /// this size (64 MiB), so the search offers what the cap allows, and the workspace holds that, with no warning.
    /// With no deterministic algorithm at all, a non-deterministic one runs, with a warning naming the shape.
    func testWorkspaceGrowsForDeterministicAlgorithmsElseAWarnedFallback() throws {
        func bench(_ variable: String, _ value: String) throws -> ProcessResult {
            let cache = FileManager.default.temporaryDirectory.appendingPathComponent("ifcn-emulator-cache-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: cache) }
            return try ifcn(["bench", "--backend", "cuda", "--gpu-math", "tf32", "--gpu-layout", "ncdhw", "--channels", "4", "--patch", "16",
                             "--steps", "1", "--json"], extra: [variable: value, "IFCN_CACHE_DIR": cache.path])
        }
        let grown = try bench("IFCN_CUDA_EMULATOR_WORKSPACE_MIB", "300")
        XCTAssertEqual(grown.status, 0, grown.summary)
        XCTAssertFalse(grown.stderr.contains("warning"), grown.summary)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(grown.stdout.utf8)) as? [String: Any], grown.summary)
        // The peak holds the network (its training arena, as `networkBytes` counts it) beside the grown workspace.
        let network = try XCTUnwrap(json["network_bytes"] as? Int, grown.stdout)
        XCTAssertEqual(Double(network), try NetworkConfig(variant: .paper, channels: 4, patch: 16).networkBytes, grown.stdout)
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(json["device_peak_bytes"] as? Int), network + 300 << 20, grown.stdout)
        let fallback = try bench("IFCN_CUDA_EMULATOR_DETERMINISTIC", "none")
        XCTAssertEqual(fallback.status, 0, fallback.summary)
        XCTAssertTrue(fallback.stderr.contains("warning: cuDNN has no deterministic backward filter algorithm for 4->4 at 16x16x16"),
                      fallback.summary)
    }

    /// cuDNN's algorithm search (cudnnFind...Ex, the first use of each shape) writes the pass's output: into the
    /// output itself where the pass overwrites it anyway, into scratch memory where it accumulates (weight
    /// gradients; data gradients added to another path's). Either way the search changes no bit: a run that
    /// searches (a fresh algorithm cache) and a run that reads every choice from the cache give the same weights,
    /// on float32 tensors and on staged copies (bf16 math, channels-last).
    func testAlgorithmSearchChangesNoResult() throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("ifcn-emulator-search-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: work) }
        try syntheticData(in: work, cases: 3, spacing: 4)
        for (math, layout) in [("fp32", "ncdhw"), ("bf16", "ndhwc")] {
            let cache = work.appendingPathComponent("cache-\(math)-\(layout)").path
            var weights: [Data] = []
            for run in ["searching", "cached"] {
                let name = "\(math)-\(layout)-\(run)"
                let r = try ifcn(["train", "--backend", "cuda", "--gpu-math", math, "--gpu-layout", layout,
                                  "--data", work.appendingPathComponent("data").path, "--output", work.appendingPathComponent(name).path,
                                  "--channels", "4", "--patch", "16", "--iterations", "4", "--iters-per-epoch", "2", "--seed", "5",
                                  "--progress-seconds", "1000", "--dump-weights", work.appendingPathComponent(name).path],
                                 extra: ["IFCN_CACHE_DIR": cache])
                XCTAssertEqual(r.status, 0, r.summary)
                weights.append(try Data(contentsOf: work.appendingPathComponent(name + ".rank0.safetensors")))
            }
            XCTAssertEqual(weights[0], weights[1], "\(math) \(layout): the run that searched cuDNN's algorithms differs from the cached one")
        }
    }

    /// The paper's size (C=64, P=128), too large for the emulator's arithmetic in a test, with
    /// IFCN_CUDA_EMULATOR_COMPUTE=edges: every call is checked as always (launch shapes and parameter lists, copy and
    /// operand ranges, cuDNN's descriptors and workspaces, the asynchronous copies' rules) while kernels run only
    /// their grid's corner blocks and convolutions compute nothing, so the numbers mean nothing. Shown at that
    /// size: a training step in three convolution variants and with bfloat16 activations in both layouts, training
    /// with validation on a whole VerSe scan at 1 mm, two ranks averaging through NCCL, and segmentation; and what the
    /// device holds: the network (its training arena, as `networkBytes(activations:)` counts it), the workspace its
    /// algorithms need (none, in the emulator), the staged copies of the largest convolution's operands (128 input
    /// and 64 output channels at 128^3) where convolutions run on copies, and
    /// under 32 MiB besides (Adam's moments, scratch). The algorithm search of a first run adds no more than a
    /// weight gradient's scratch (it held 1 GiB for the rest of the run before).
    func testEveryCallAtThePaperSizeIsValid() throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("ifcn-emulator-p128-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: work) }
        let edges = ["IFCN_CUDA_EMULATOR_COMPUTE": "edges"]
        let config = try NetworkConfig(variant: .paper, channels: 64, patch: 128)
        let voxels = 128 * 128 * 128
        func peak(_ math: String, _ layout: String, _ activations: ElementFormat, cache: String) throws -> Int {
            let r = try ifcn(["bench", "--backend", "cuda", "--gpu-math", math, "--gpu-layout", layout, "--gpu-activations",
                              activations.rawValue, "--variant", "paper", "--channels", "64", "--patch", "128", "--steps", "1", "--json"],
                             extra: edges.merging(["IFCN_CACHE_DIR": work.appendingPathComponent(cache).path]) { $1 })
            XCTAssertEqual(r.status, 0, r.summary)
            let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.summary)
            XCTAssertEqual(json["network_bytes"] as? Int, Int(config.networkBytes(activations: activations)), r.stdout)
            return try XCTUnwrap(json["device_peak_bytes"] as? Int, r.stdout)
        }
        // The bytes of a staged copy's element (fp32 NCDHW convolves ifcn's own tensors, bf16 NCDHW its bfloat16
        // activations: no copies of data operands).
        for (math, layout, activations, elementBytes) in [("fp32", "ncdhw", ElementFormat.fp32, 0), ("tf32", "ndhwc", .fp32, 4),
                                                          ("bf16", "ncdhw", .fp32, 2), ("bf16", "ncdhw", .bf16, 0),
                                                          ("bf16", "ndhwc", .bf16, 2)] {
            let name = "\(math) \(layout) \(activations) activations", cache = "cache-\(math)-\(layout)-\(activations)"
            let searching = try peak(math, layout, activations, cache: cache)
            let cached = try peak(math, layout, activations, cache: cache)
            let network = Int(config.networkBytes(activations: activations)), copies = (128 + 64) * voxels * elementBytes
            XCTAssertGreaterThanOrEqual(cached, network + copies, name)
            XCTAssertLessThan(cached, network + copies + (32 << 20), name)
            XCTAssertLessThanOrEqual(searching, cached + 128 * 64 * 27 * 4, "\(name): the algorithm search's scratch")
        }
        // bfloat16 activations: half the arena, so at the paper's size the network takes under half a float32 one's
        // bytes plus what stays float32 (parameters, their gradients, patches: 37 MiB).
        XCTAssertLessThan(config.networkBytes(activations: .bf16), config.networkBytes / 2 + Double(37 << 20))
        let data = work.appendingPathComponent("data").path, raw = work.appendingPathComponent("raw")
        try FileManager.default.createDirectory(at: raw, withIntermediateDirectories: true)
        for name in ["sub-verse005_ct.nii.gz", "sub-verse005_seg-vert_msk.nii.gz", "sub-verse008_ct.nii.gz", "sub-verse008_seg-vert_msk.nii.gz"] {
            try FileManager.default.copyItem(at: TestPaths.repositoryRoot.appendingPathComponent("data/verse/" + name),
                                             to: raw.appendingPathComponent(name))
        }
        let p = try ifcn(["preprocess", "--input", raw.path, "--output", data, "--spacing", "1", "--validation", "sub-verse008"])
        XCTAssertEqual(p.status, 0, p.summary)
        let run = work.appendingPathComponent("run").path
        let t = try ifcn(["train", "--backend", "cuda", "--data", data, "--output", run, "--variant", "paper", "--channels", "64",
                          "--patch", "128", "--iterations", "4", "--iters-per-epoch", "2", "--val-cases", "1",
                          "--progress-seconds", "1000"], extra: edges)
        XCTAssertEqual(t.status, 0, t.summary)
        XCTAssertEqual(t.stdout.components(separatedBy: "val Dice").count - 1, 2, t.summary)
        // Two ranks on two emulated GPUs averaging the paper network's 2.4 million gradients through NCCL.
        if let mpirun = TestPaths.tool("mpirun") {
            let lib = try emulator()
            let r = try ProcessRunner.run(mpirun, ["--oversubscribe", "-np", "2", try TestPaths.ifcnBinary().path, "train",
                                                   "--backend", "cuda", "--allreduce", "nccl", "--data", data,
                                                   "--output", work.appendingPathComponent("run2").path, "--variant", "paper",
                                                   "--channels", "64", "--patch", "128", "--iterations", "2", "--iters-per-epoch", "2",
                                                   "--val-cases", "0", "--progress-seconds", "1000"],
                                          timeout: 300, environment: ProcessRunner.cleanEnvironment(
                                              edges.merging(["IFCN_CUDA_LIBRARY_PATH": lib.path, "IFCN_CUDA_EMULATOR_DEVICES": "2",
                                                             "IFCN_CACHE_DIR": work.appendingPathComponent("cache-nccl").path,
                                                             "IFCN_CUDA_EMULATOR_NCCL_DIR": work.path]) { $1 }))
            XCTAssertEqual(r.status, 0, r.summary)
            XCTAssertTrue(r.stdout.contains("gradients averaged by NCCL 0.0.1 on each GPU's stream (2 rank(s))"), r.summary)
        }
        for statistics in [[], ["--scan-statistics", "0.5"]] {
            let s = try ifcn(["segment", "--backend", "cuda", "--checkpoint", run + "/checkpoints/latest.safetensors",
                              "--input", raw.appendingPathComponent("sub-verse008_ct.nii.gz").path,
                              "--output", work.appendingPathComponent("seg").path] + statistics, extra: edges)
            XCTAssertEqual(s.status, 0, s.summary)
            XCTAssertTrue(FileManager.default.fileExists(atPath: work.appendingPathComponent("seg/sub-verse008.nii.gz").path))
        }
    }

    /// The iterative walk with the scan, memory and labels on the GPU (patch extraction, memory hash, fragment
    /// sums, accepting an instance: the volume kernels) against the CPU's walk, with a model trained on the CPU that
    /// finds vertebrae: the same instances, the label maps agreeing to Dice 0.99 (bit-identical here; the
    /// convolutions of the two backends round differently, so a voxel at a probability of 0.5 could flip).
    func testSegmentationWalkOnTheGPUPathMatchesTheCPU() throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("ifcn-emulator-walk-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: work) }
        func path(_ name: String) -> String { work.appendingPathComponent(name).path }
        try syntheticData(in: work, cases: 6, spacing: 3)
        let t = try ifcn(["train", "--backend", "cpu", "--threads", "2", "--data", path("data"), "--output", path("run"),
                          "--channels", "8", "--patch", "16", "--iterations", "1200", "--iters-per-epoch", "400",
                          "--lr", "3e-3", "--lr-steps", "900", "--seed", "5", "--progress-seconds", "1000"])
        XCTAssertEqual(t.status, 0, t.summary)
        for backend in ["cuda", "cpu"] {
            let r = try ifcn(["segment", "--backend", backend, "--gpu-math", "fp32", "--threads", "2",
                              "--checkpoint", path("run/checkpoints/best.safetensors"),
                              "--input", path("raw/synth005.nii.gz"), "--output", path("seg_" + backend)])
            XCTAssertEqual(r.status, 0, r.summary)
        }
        func evaluate(_ reference: String, _ name: String) throws -> [String: Any] {
            let r = try ifcn(["evaluate", "--reference", reference, "--prediction", path("seg_cuda/synth005.nii.gz"),
                              "--json", path(name)])
            XCTAssertEqual(r.status, 0, r.summary)
            return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: work.appendingPathComponent(name))) as? [String: Any])
        }
        let truth = try evaluate(path("raw/synth005_label.nii.gz"), "truth.json")
        XCTAssertGreaterThan(try XCTUnwrap(truth["mean_dice"] as? Double), 0.3, "the model finds vertebrae: \(truth)")
        let cpu = try evaluate(path("seg_cpu/synth005.nii.gz"), "cpu.json")
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(cpu["vertebrae"] as? Int), 5, "\(cpu)")
        XCTAssertEqual(cpu["missed"] as? Int, 0, "\(cpu)")
        XCTAssertEqual(cpu["false_positive_count"] as? Int, 0, "\(cpu)")
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(cpu["mean_dice"] as? Double), 0.99, "\(cpu)")
    }

    /// Gradient averaging between GPUs (never run on more than one): two ranks on two emulated GPUs average through
    /// NCCL (the emulator's: files between the processes, summed in rank order) bit-identically to MPI; two ranks on
    /// one GPU are refused NCCL under `auto`, with the reason, and train through MPI.
    func testTwoRanksAverageThroughNCCLAsThroughMPI() throws {
        guard let mpirun = TestPaths.tool("mpirun") else { throw XCTSkip("needs mpirun") }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("ifcn-emulator-nccl-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: work) }
        func path(_ name: String) -> String { work.appendingPathComponent(name).path }
        try syntheticData(in: work, cases: 3, spacing: 4)
        let lib = try emulator()
        func train(_ name: String, allreduce: String, gpus: Int) throws -> ProcessResult {
            try ProcessRunner.run(mpirun, ["--oversubscribe", "-np", "2", try TestPaths.ifcnBinary().path, "train",
                                           "--backend", "cuda", "--gpu-math", "fp32", "--data", path("data"), "--output", path(name),
                                           "--channels", "4", "--patch", "16", "--iterations", "6", "--iters-per-epoch", "3",
                                           "--seed", "5", "--progress-seconds", "1000", "--allreduce", allreduce,
                                           "--dump-weights", path(name + ".w")],
                                  timeout: 300, environment: ProcessRunner.cleanEnvironment(
                                      ["IFCN_CUDA_LIBRARY_PATH": lib.path, "IFCN_CACHE_DIR": path("cache-" + name),
                                       "IFCN_CUDA_EMULATOR_DEVICES": "\(gpus)", "IFCN_CUDA_EMULATOR_NCCL_DIR": work.path]))
        }
        let nccl = try train("nccl", allreduce: "nccl", gpus: 2)
        XCTAssertEqual(nccl.status, 0, nccl.summary)
        XCTAssertTrue(nccl.stdout.contains("gradients averaged by NCCL 0.0.1 on each GPU's stream (2 rank(s))"), nccl.summary)
        let mpi = try train("mpi", allreduce: "mpi", gpus: 2)
        XCTAssertEqual(mpi.status, 0, mpi.summary)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path("nccl.w.rank0.safetensors"))),
                       try Data(contentsOf: URL(fileURLWithPath: path("mpi.w.rank0.safetensors"))),
                       "NCCL and MPI averaged to different weights")
        let shared = try train("shared", allreduce: "auto", gpus: 1)
        XCTAssertEqual(shared.status, 0, shared.summary)
        XCTAssertTrue(shared.stdout.contains("NCCL not used (rank"), shared.summary)
        XCTAssertTrue(shared.stdout.contains("NCCL needs one GPU per rank"), shared.summary)
        let left = try FileManager.default.contentsOfDirectory(atPath: work.path).filter { $0.hasPrefix("ifcn-nccl-") }
        XCTAssertEqual(left, [], "the emulated NCCL left files behind")
    }

    /// Training with per-epoch validation (whole-scan segmentation on the GPU path), checkpoints, and an exact
    /// resume: 6 iterations straight (guard pages in front of the buffers) equal 3 + resume to 6 (guard pages
    /// behind them), bit for bit.
    func testTrainValidateAndResumeExactly() throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("ifcn-emulator-train-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: work) }
        let data = work.appendingPathComponent("data").path
        try syntheticData(in: work, cases: 3, spacing: 4)
        func train(_ dir: String, _ iterations: Int, _ extra: [String] = [], guardPage: String = "back") throws -> ProcessResult {
            try ifcn(["train", "--backend", "cuda", "--gpu-math", "fp32", "--data", data, "--output", work.appendingPathComponent(dir).path,
                      "--channels", "4", "--patch", "16", "--iterations", "\(iterations)", "--iters-per-epoch", "3",
                      "--seed", "5", "--progress-seconds", "1000", "--dump-weights", work.appendingPathComponent(dir + ".w").path] + extra,
                     extra: ["IFCN_CUDA_EMULATOR_GUARD": guardPage])
        }
        let straight = try train("straight", 6, guardPage: "front")
        XCTAssertEqual(straight.status, 0, straight.summary)
        XCTAssertTrue(straight.stdout.contains("ifcn CUDA emulator"), straight.summary)
        XCTAssertTrue(straight.stdout.contains("val Dice"), straight.summary)
        XCTAssertEqual(try train("resumed", 3).status, 0)
        let resumed = try train("resumed", 6, ["--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.summary)
        let a = try Data(contentsOf: work.appendingPathComponent("straight.w.rank0.safetensors"))
        let b = try Data(contentsOf: work.appendingPathComponent("resumed.w.rank0.safetensors"))
        XCTAssertEqual(a, b, "resumed weights differ from the uninterrupted run")
        // Uploads through pinned slots of 4 KiB: each patch (16 KiB) goes in four chunks, so a step's uploads go
        // round the four slots four times and every refill waits for the device to have read the slot (the
        // emulator stops a run whose host writes pinned memory a pending copy still reads). Slots of 16 KiB hold a
        // patch each: the next sample's input is staged in two of them during the backward pass, and the uploads
        // in between (validation's scans, in 16 KiB chunks, at each epoch's end) go round the other two. The same
        // weights as the default run, whose 16 KiB patches go straight from pageable memory.
        for slotBytes in ["4096", "16384", "0"] {  // 0: no slots, every upload from pageable memory
            let name = "slots\(slotBytes)"
            let r = try ifcn(["train", "--backend", "cuda", "--gpu-math", "fp32", "--data", data,
                              "--output", work.appendingPathComponent(name).path, "--channels", "4", "--patch", "16",
                              "--iterations", "6", "--iters-per-epoch", "3", "--seed", "5", "--progress-seconds", "1000",
                              "--dump-weights", work.appendingPathComponent(name + ".w").path],
                             extra: ["IFCN_CUDA_UPLOAD_SLOT_BYTES": slotBytes])
            XCTAssertEqual(r.status, 0, r.summary)
            if r.status == 0 {
                let c = try Data(contentsOf: work.appendingPathComponent(name + ".w.rank0.safetensors"))
                XCTAssertEqual(a, c, "uploads through pinned slots of \(slotBytes) bytes changed the weights")
            }
        }
    }

    /// Without `--gpu-layout`, the tensor-core maths run their convolutions on channels-last copies (faster on an
    /// H200, with less workspace: `GPUMath.defaultLayout(activations:)`), float32 math and bf16 math with bfloat16
    /// activations on ifcn's own NCDHW tensors; training (tf32 by default) too.
    func testEachMathRunsInItsDefaultLayout() throws {
        XCTAssertEqual(GPUMath.allCases.map { $0.defaultLayout() }, [.ncdhw, .ndhwc, .ndhwc])
        XCTAssertEqual(GPUMath.allCases.map { $0.defaultLayout(activations: .bf16) }, [.ncdhw, .ndhwc, .ncdhw])
        XCTAssertEqual(GPUMath.allCases.map(\.defaultActivations), [.fp32, .fp32, .bf16])
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("ifcn-emulator-default-layout-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: work) }
        for (math, activations, layout) in [("fp32", "fp32", "ncdhw"), ("tf32", "fp32", "ndhwc"), ("bf16", "fp32", "ndhwc"),
                                            ("bf16", "bf16", "ncdhw")] {
            let cache = work.appendingPathComponent("cache-\(math)-\(activations)")
            let r = try ifcn(["bench", "--backend", "cuda", "--gpu-math", math, "--gpu-activations", activations, "--channels", "4",
                              "--patch", "16", "--steps", "1", "--json"],
                             extra: ["IFCN_CACHE_DIR": cache.path])
            XCTAssertEqual(r.status, 0, r.summary)
            let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.summary)
            XCTAssertEqual(json["gpu_layout"] as? String, layout, r.stdout)
            XCTAssertEqual(r.stderr.contains("on channels-last (NDHWC) copies"), layout == "ndhwc", r.summary)
            // cuDNN is handed the 2-channel input and the 4-channel layers as they are, unpadded (padded, both would be
            // 8->4, like the 8-channel concatenations), in either layout.
            let choices = try String(contentsOf: cache.appendingPathComponent("cudnn-algorithms.tsv"), encoding: .utf8)
            XCTAssertTrue(choices.contains("\t2x4x16x16x16\t") && choices.contains("\t4x4x16x16x16\t"), choices)
        }
        try syntheticData(in: work, cases: 3, spacing: 4)
        let t = try ifcn(["train", "--backend", "cuda", "--data", work.appendingPathComponent("data").path,
                          "--output", work.appendingPathComponent("run").path, "--channels", "4", "--patch", "16",
                          "--iterations", "2", "--iters-per-epoch", "2", "--val-cases", "0", "--progress-seconds", "1000"])
        XCTAssertEqual(t.status, 0, t.summary)
        XCTAssertTrue(t.stdout.contains("tf32 convolutions on channels-last (NDHWC) copies"), t.summary)
    }

    /// `--gpu-layout ndhwc`: each convolution runs on channels-last copies of its operands (unpadded: at C=4 and with
    /// 3 channels, strides that are no multiple of 8), its result copied back. The
    /// emulator's convolutions sum in double in one fixed order whatever the layout, so the copies must change no
    /// bit: trained in NDHWC (validation's inference passes included), the weights equal NCDHW's, in fp32 and in bf16
    /// math. (On a GPU cuDNN's algorithms differ by layout, so there the two agree to rounding, not bitwise.) Every
    /// kernel agrees with the CPU in NDHWC too, at odd sizes, with guard pages in front of the buffers; and each
    /// data-gradient pass uses the output gradient its weight-gradient pass staged instead of copying it again.
    func testChannelsLastCopiesChangeNoBit() throws {
        for (channels, extent) in [("8", "16,20,24"), ("3", "2,4,6")] {
            let r = try ifcn(["check-backends", "--backend", "cuda", "--gpu-layout", "ndhwc", "--channels", channels,
                              "--extent", extent, "--threads", "2"], extra: ["IFCN_CUDA_EMULATOR_GUARD": "front"])
            XCTAssertEqual(r.status, 0, r.summary)
            XCTAssertTrue(r.stdout.contains("53 passed, 0 failed"), r.summary)
            XCTAssertTrue(r.stdout.contains("fp32 convolutions on channels-last (NDHWC) copies"), r.summary)
        }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("ifcn-emulator-layout-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: work) }
        func path(_ name: String) -> String { work.appendingPathComponent(name).path }
        try syntheticData(in: work, cases: 3, spacing: 4)
        for math in ["fp32", "bf16"] {
            var weights: [String: Data] = [:]
            for layout in ["ncdhw", "ndhwc"] {
                let name = "\(math)_\(layout)"
                let r = try ifcn(["train", "--backend", "cuda", "--gpu-math", math, "--gpu-activations", "fp32", "--gpu-layout", layout,
                                  "--data", path("data"), "--output", path(name), "--channels", "4", "--patch", "16", "--iterations", "4",
                                  "--iters-per-epoch", "4", "--seed", "5", "--progress-seconds", "1000",
                                  "--dump-weights", path(name + ".w")])
                XCTAssertEqual(r.status, 0, r.summary)
                XCTAssertTrue(r.stdout.contains("val Dice"), r.summary)
                XCTAssertEqual(r.stdout.contains("on channels-last (NDHWC) copies"), layout == "ndhwc", r.summary)
                weights[layout] = try Data(contentsOf: URL(fileURLWithPath: path(name + ".w.rank0.safetensors")))
            }
            XCTAssertEqual(weights["ncdhw"], weights["ndhwc"], "\(math): channels-last copies changed the trained weights")
        }
        // The copies a step makes (bench's count): none in tf32 NCDHW; in NDHWC, each data-gradient pass reuses the
        // output gradient its weight-gradient pass staged.
        for (math, layout) in [("tf32", "ncdhw"), ("tf32", "ndhwc")] {
            let r = try ifcn(["bench", "--backend", "cuda", "--gpu-math", math, "--gpu-layout", layout, "--channels", "4",
                              "--patch", "16", "--steps", "1", "--profile", "--json"])
            XCTAssertEqual(r.status, 0, r.summary)
            let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.summary)
            let step = try XCTUnwrap((json["profile"] as? [String: [String: Any]])?["step"], r.stdout)
            let convolutions = try XCTUnwrap(step["convolutions"] as? [String: Int], r.stdout)
            let dataPasses = convolutions.filter { $0.key.hasSuffix("backward data") }.values.reduce(0, +)
            XCTAssertGreaterThan(dataPasses, 10, r.stdout)
            let bytes = try XCTUnwrap(json["gpu_staging_bytes_per_step"] as? Int), reused = try XCTUnwrap(json["gpu_staging_copies_reused_per_step"] as? Int)
            if layout == "ncdhw" {
                XCTAssertEqual([bytes, reused], [0, 0], r.stdout)
            } else {
                XCTAssertGreaterThan(bytes, 0, r.stdout)
                XCTAssertEqual(reused, dataPasses, r.stdout)
            }
        }
    }

    /// `--gpu-activations bf16`: a training network's activations and their gradients in bfloat16. Every kernel over
    /// them agrees with the CPU (on the same bfloat16 inputs, emulating bf16 convolution math) within one bfloat16
    /// rounding of what it writes, in both layouts, at odd sizes, with guard pages in front of the buffers and behind
    /// them; the network's arena takes half the bytes; in NCDHW cuDNN reads and writes the activations as they are
    /// (only the filters are copied); training gives the same weights in either layout (a data-gradient pass that
    /// adds to a bfloat16 gradient adds its bfloat16 result in both), not those of float32 activations, and resumes
    /// bit for bit, also through pinned upload slots smaller than a patch; validation (which segments with the
    /// training network) finds vertebrae; other maths refuse it.
    func testBFloat16Activations() throws {
        for layout in ["ndhwc", "ncdhw"] {
            for ((channels, extent), guardPage) in zip([("8", "16,20,24"), ("3", "2,4,6")], ["front", "back"]) {
                let r = try ifcn(["check-backends", "--backend", "cuda", "--gpu-math", "bf16", "--gpu-activations", "bf16",
                                  "--gpu-layout", layout, "--channels", channels, "--extent", extent, "--threads", "2"],
                                 extra: ["IFCN_EMULATE_GPU_MATH": "bf16", "IFCN_CUDA_EMULATOR_GUARD": guardPage])
                XCTAssertEqual(r.status, 0, r.summary)
                XCTAssertTrue(r.stdout.contains("53 passed, 0 failed"), r.summary)
                XCTAssertTrue(r.stdout.contains("bf16 activations against the cpu (GPU bf16 convolutions, emulated)"), r.summary)
            }
        }
        // The arena's elements, from the same network on the CPU: bfloat16 saves two bytes each.
        let arena = Network(config: try NetworkConfig(variant: .paper, channels: 4, patch: 16), backend: Backends.cpu(threads: 1)).arenaCount
        var bench: [String: [String: Any]] = [:]
        for layout in ["ndhwc", "ncdhw"] {
            for activations in ["fp32", "bf16"] {
                let r = try ifcn(["bench", "--backend", "cuda", "--gpu-math", "bf16", "--gpu-layout", layout, "--gpu-activations",
                                  activations, "--channels", "4", "--patch", "16", "--steps", "1", "--json"])
                XCTAssertEqual(r.status, 0, r.summary)
                bench[layout + activations] = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.summary)
                XCTAssertEqual(bench[layout + activations]?["gpu_activations"] as? String, activations, r.stdout)
            }
        }
        func value(_ run: String, _ key: String) throws -> Int { try XCTUnwrap(bench[run]?[key] as? Int, "\(run) \(key)") }
        for layout in ["ndhwc", "ncdhw"] {
            XCTAssertEqual(try value(layout + "fp32", "network_bytes") - value(layout + "bf16", "network_bytes"), 2 * arena)
            XCTAssertLessThan(try value(layout + "bf16", "device_peak_bytes"), try value(layout + "fp32", "device_peak_bytes"))
        }
        // NCDHW: a step copies the filters and their gradients only: 6 bytes a weight for each of the two passes that
        // read a bfloat16 copy, 10 for the weight gradient added back (read 2 and 4, write 4), where float32
        // activations had every data operand copied as well.
        let parameters = try value("ncdhwbf16", "parameters")
        XCTAssertLessThanOrEqual(try value("ncdhwbf16", "gpu_staging_bytes_per_step"), 22 * parameters)
        XCTAssertGreaterThan(try value("ncdhwfp32", "gpu_staging_bytes_per_step"), 10 * 22 * parameters)

        let work = FileManager.default.temporaryDirectory.appendingPathComponent("ifcn-emulator-bf16-activations-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: work) }
        func path(_ name: String) -> String { work.appendingPathComponent(name).path }
        try syntheticData(in: work, cases: 3, spacing: 4)
        func train(_ name: String, _ iterations: Int, _ extra: [String], environment: [String: String] = [:]) throws -> Data? {
            let r = try ifcn(["train", "--backend", "cuda", "--gpu-math", "bf16", "--data", path("data"), "--output", path(name),
                              "--channels", "4", "--patch", "16", "--iterations", "\(iterations)", "--iters-per-epoch", "3",
                              "--seed", "5", "--progress-seconds", "1000", "--dump-weights", path(name + ".w")] + extra,
                             extra: environment)
            XCTAssertEqual(r.status, 0, r.summary)
            XCTAssertTrue(r.stdout.contains("val Dice"), r.summary)
            return try? Data(contentsOf: URL(fileURLWithPath: path(name + ".w.rank0.safetensors")))
        }
        let bf16 = ["--gpu-activations", "bf16"]
        let ncdhw = try XCTUnwrap(try train("ncdhw", 6, bf16 + ["--gpu-layout", "ncdhw"], environment: ["IFCN_CUDA_EMULATOR_GUARD": "front"]))
        XCTAssertEqual(try train("ndhwc", 6, bf16 + ["--gpu-layout", "ndhwc"]), ncdhw, "the layout changed the trained weights")
        XCTAssertNotEqual(try train("float32", 6, ["--gpu-activations", "fp32", "--gpu-layout", "ncdhw"]), ncdhw,
                          "float32 activations trained the same weights")
        XCTAssertEqual(try train("default", 6, []), ncdhw, "bf16 math's defaults are not bfloat16 activations in NCDHW")
        _ = try train("resumed", 3, bf16 + ["--gpu-layout", "ncdhw"])
        XCTAssertEqual(try train("resumed", 6, bf16 + ["--gpu-layout", "ncdhw", "--resume"]), ncdhw, "the resumed run differs")
        XCTAssertEqual(try train("slots", 6, bf16 + ["--gpu-layout", "ncdhw"], environment: ["IFCN_CUDA_UPLOAD_SLOT_BYTES": "4096"]),
                       ncdhw, "uploads through pinned slots changed the weights")
        // Validation segments the held-out scan with the training network itself, its patches and probabilities in
        // bfloat16: on VerSe at 4 mm (sub-verse008 held out), 30 iterations find the vertebrae as float32 activations
        // do (validation Dice 0.374 against 0.367 here; patches written as float32 into bfloat16 memory gave 0).
        let verse = work.appendingPathComponent("verse").path
        let p = try ifcn(["preprocess", "--input", TestPaths.repositoryRoot.appendingPathComponent("data/verse").path,
                          "--output", verse, "--spacing", "4", "--validation", "sub-verse008"])
        XCTAssertEqual(p.status, 0, p.summary)
        var dice: [String: Double] = [:]
        for activations in ["fp32", "bf16"] {
            let r = try ifcn(["train", "--backend", "cuda", "--gpu-math", "bf16", "--gpu-activations", activations, "--data", verse,
                              "--output", path("verse-" + activations), "--channels", "4", "--patch", "16", "--iterations", "30",
                              "--iters-per-epoch", "30", "--lr-steps", "22", "--seed", "4", "--progress-seconds", "1000"])
            XCTAssertEqual(r.status, 0, r.summary)
            let last = r.stdout.split(separator: "\n").last { $0.contains("val Dice") }.map(String.init) ?? ""
            let words = last.split(separator: " ")
            dice[activations] = words.indices.first { $0 > 0 && $0 + 1 < words.count && words[$0 - 1] == "val" && words[$0] == "Dice" }
                .flatMap { Double(words[$0 + 1]) }
        }
        XCTAssertGreaterThan(try XCTUnwrap(dice["fp32"]), 0.2, "\(dice)")
        XCTAssertGreaterThan(try XCTUnwrap(dice["bf16"]), 0.2, "\(dice)")
        let refused = try ifcn(["bench", "--backend", "cuda", "--gpu-math", "tf32", "--gpu-activations", "bf16", "--channels", "4",
                                "--patch", "16", "--steps", "1"])
        XCTAssertNotEqual(refused.status, 0, refused.summary)
        XCTAssertTrue(refused.stderr.contains("--gpu-activations bf16 needs --gpu-math bf16"), refused.summary)
    }

    /// A launch whose arguments do not match the kernel's C parameters stops with both lists (every kernel's
    /// parameters parse from the source).
    func testEveryKernelsParametersParse() {
        for kernel in CUDAKernel.allCases { XCTAssertNotNil(CUDAKernelSource.parameters[kernel], kernel.rawValue) }
        // Each instance over bfloat16 activations takes its float32 instance's parameters (launches pass one list).
        let instances = CUDAKernel.allCases.compactMap { k in k.bfloat16Instance.map { (k, $0) } }
        XCTAssertEqual(instances.count, 32)
        for (kernel, name) in instances {
            XCTAssertEqual(CUDAKernelSource.parameterKinds(of: name), kernel.parameters, name)
        }
        XCTAssertEqual(CUDAKernel.fromBFloat16.parameters, [.pointer, .pointer, .int32, .int64])
        XCTAssertEqual(CUDAKernel.fromChannelsLastBFloat16.parameters, [.pointer, .pointer, .int32, .int32, .int64, .int32])
        XCTAssertEqual(CUDAKernel.scale.parameters, [.pointer, .float, .int64])
        XCTAssertEqual(CUDAKernelSource.parameterKind("const unsigned long long* partial"), .pointer)
        XCTAssertEqual(CUDAKernelSource.parameterKind(" long long voxels"), .int64)
        XCTAssertNil(CUDAKernelSource.parameterKind("short s"))
    }
}

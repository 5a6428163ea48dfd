import CCUDA
import Foundation
@testable import IFCNCompute
import XCTest

/// The CUDA backend's seam on any machine: library search, the factory's choices and errors,
/// NVRTC compiling every kernel (where NVRTC is installed) and the declared constants against
/// NVIDIA's headers (where pip's nvidia-* headers are installed). Without a GPU nothing here needs one.
final class CUDAEnvironmentTests: XCTestCase {
    /// pip's NVIDIA library and header folders on this machine (any Python environment under /opt).
    static func nvidiaFolders(_ leaf: String) -> [String] {
        let fm = FileManager.default
        var out: [String] = []
        for env in ((try? fm.contentsOfDirectory(atPath: "/opt")) ?? []).sorted() {
            for venv in ["", "/.venv", "/venv"] {
                for lib in ["lib", "lib64"] {
                    let base = "/opt/\(env)\(venv)/\(lib)"
                    for py in ((try? fm.contentsOfDirectory(atPath: base)) ?? []) where py.hasPrefix("python3") {
                        let root = "\(base)/\(py)/site-packages/nvidia"
                        for pkg in ((try? fm.contentsOfDirectory(atPath: root)) ?? []) {
                            let dir = "\(root)/\(pkg)/\(leaf)"
                            if fm.fileExists(atPath: dir) { out.append(dir) }
                        }
                    }
                }
            }
        }
        return out
    }

    func testAutoTakesCUDAWhenUsableElseTheCPUWithAReason() throws {
        let usable = CUDAInventory.probe().usable
        var note: String?
        let backend = try Backends.make(.auto, threads: 1) { note = $0 }
        if usable {
            XCTAssertEqual(backend.name, "cuda")
            XCTAssertNil(note)
        } else {
            XCTAssertEqual(backend.name, "cpu")
            XCTAssertTrue(note?.hasPrefix("backend: cpu (CUDA not usable: ") ?? false, note ?? "no note")
        }
        XCTAssertEqual(try Backends.make(.cpu, threads: 1).name, "cpu")
    }

    func testCUDAWhereNoneIsUsableIsAClearError() throws {
        let inventory = CUDAInventory.probe()
        if inventory.usable { throw XCTSkip("a GPU is usable here") }
        XCTAssertFalse(inventory.problems.isEmpty)
        XCTAssertThrowsError(try Backends.make(.cuda)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix("CUDA is not usable: "), text)
            // It names what is missing: each library that did not load, or the driver's answer.
            XCTAssertTrue(inventory.problems.allSatisfy { text.contains($0) }, text)
        }
    }

    func testBackendFromTheEnvironment() throws {
        XCTAssertEqual(try Backends.resolve(.cpu), .cpu)
        setenv("IFCN_BACKEND", "gpu", 1)
        defer { unsetenv("IFCN_BACKEND") }
        XCTAssertThrowsError(try Backends.resolve(nil)) { XCTAssertTrue("\($0)".contains("auto, cpu, cuda"), "\($0)") }
        setenv("IFCN_BACKEND", "cpu", 1)
        XCTAssertEqual(try Backends.resolve(nil), .cpu)
        unsetenv("IFCN_BACKEND")
        XCTAssertEqual(try Backends.resolve(nil), .auto)
    }

    /// `IFCN_CUDNN_ALGORITHMS`: deterministic unless asked; a bad value stops any backend from being built, naming it.
    func testConvolutionAlgorithmPolicyFromTheEnvironment() throws {
        XCTAssertEqual(try CUDAAlgorithmPolicy.fromEnvironment([:]), .deterministic)
        XCTAssertEqual(try CUDAAlgorithmPolicy.fromEnvironment(["IFCN_CUDNN_ALGORITHMS": ""]), .deterministic)
        XCTAssertEqual(try CUDAAlgorithmPolicy.fromEnvironment(["IFCN_CUDNN_ALGORITHMS": "fastest"]), .fastest)
        XCTAssertThrowsError(try CUDAAlgorithmPolicy.fromEnvironment(["IFCN_CUDNN_ALGORITHMS": "fast"])) {
            XCTAssertTrue("\($0)".contains("IFCN_CUDNN_ALGORITHMS='fast' is not one of deterministic, fastest"), "\($0)")
        }
        setenv("IFCN_CUDNN_ALGORITHMS", "any", 1)
        defer { unsetenv("IFCN_CUDNN_ALGORITHMS") }
        XCTAssertThrowsError(try Backends.make(.cpu, threads: 1)) { XCTAssertTrue("\($0)".contains("IFCN_CUDNN_ALGORITHMS='any'"), "\($0)") }
        setenv("IFCN_CUDNN_ALGORITHMS", "fastest", 1)
        XCTAssertEqual(try Backends.make(.cpu, threads: 1).name, "cpu")  // a GPU setting: the CPU backend ignores it
    }

    func testUploadSlotSizeFromTheEnvironment() throws {
        let key = CUDABackend.uploadSlotEnvironmentKey
        XCTAssertEqual(try CUDABackend.uploadSlotBytes([:]), 16 << 20)
        XCTAssertEqual(try CUDABackend.uploadSlotBytes([key: ""]), 16 << 20)
        XCTAssertEqual(try CUDABackend.uploadSlotBytes([key: "0"]), nil)
        XCTAssertEqual(try CUDABackend.uploadSlotBytes([key: "4096"]), 4096)
        for bad in ["-1", "100", "16MiB", "\((16 << 20) + 1)"] {
            XCTAssertThrowsError(try CUDABackend.uploadSlotBytes([key: bad])) {
                XCTAssertTrue("\($0)".contains("\(key)='\(bad)' is not 0 (no pinned slots) or a number of bytes"), "\($0)")
            }
        }
        setenv(key, "lots", 1)
        defer { unsetenv(key) }
        XCTAssertThrowsError(try Backends.make(.cpu, threads: 1)) { XCTAssertTrue("\($0)".contains("\(key)='lots'"), "\($0)") }
    }

    /// The algorithm search's workspace bound holds every workspace the fastest deterministic algorithms wanted on the
    /// H200 at the paper's size (`bench --conv-sweep`, any precision and layout; bench/results/gpu_check_h200.json),
    /// and no more than four times a convolution's largest tensor (at least 64 MiB).
    func testSearchWorkspaceBoundHoldsWhatTheFastestAlgorithmsWanted() {
        func shape(_ cin: Int, _ cout: Int, _ side: Int) -> ConvolutionShape {
            ConvolutionShape(inChannels: cin, outChannels: cout, extent: Extent3(cube: side))
        }
        XCTAssertEqual(CUDABackend.searchWorkspaceBound(shape(128, 64, 128)), 4 << 30)
        XCTAssertEqual(CUDABackend.searchWorkspaceBound(shape(2, 64, 128)), 2 << 30)
        XCTAssertEqual(CUDABackend.searchWorkspaceBound(shape(64, 64, 16)), 64 << 20)
        // The most bytes any variant's fastest deterministic algorithm wanted, per shape (tf32 NCDHW, except 2->64:
        // tf32 NDHWC with the input padded to 8 channels).
        let wanted: [(ConvolutionShape, Int)] = [
            (shape(128, 64, 128), 1_624_080_947), (shape(64, 64, 128), 1_075_954_163), (shape(2, 64, 128), 608_919_119),
            (shape(128, 64, 64), 205_881_855), (shape(64, 64, 64), 136_430_067), (shape(128, 64, 32), 33_128_947),
            (shape(64, 64, 32), 18_989_555), (shape(64, 64, 16), 4_309_491), (shape(64, 64, 8), 704_528)]
        for (s, bytes) in wanted {
            XCTAssertLessThanOrEqual(bytes, CUDABackend.searchWorkspaceBound(s), "\(s)")
        }
    }

    /// Channels-last staging (`--gpu-layout ndhwc`): the operands a convolution hands cuDNN, their sizes and padding.
    func testStagedOperandsOfAConvolution() {
        let first = ConvolutionShape(inChannels: 2, outChannels: 64, extent: Extent3(4, 6, 8))
        let padded = ConvolutionVariant(.tf32, .ndhwc).paddedInChannels(2)
        XCTAssertEqual(padded, 8)
        XCTAssertNil(ConvolutionVariant(.tf32, .ndhwc).paddedInChannels(64))
        XCTAssertNil(ConvolutionVariant(.bf16, .ncdhw).paddedInChannels(2))
        let o = StagedOperand.operands(of: first, paddedTo: 8)
        XCTAssertEqual(o.input, StagedOperand(batches: 1, channels: 2, stride: 8, voxels: 192))
        XCTAssertEqual(o.output, StagedOperand(batches: 1, channels: 64, stride: 64, voxels: 192))
        XCTAssertEqual(o.filter, StagedOperand(batches: 64, channels: 2, stride: 8, voxels: 27))
        XCTAssertEqual([o.input.count, o.input.stagedCount], [384, 1536])       // ifcn's [2, 4, 6, 8]; cuDNN's [4, 6, 8, 8]
        XCTAssertEqual([o.filter.count, o.filter.stagedCount], [3456, 13824])  // [64, 2, 27]; [64, 27, 8]
        XCTAssertEqual(ConvolutionPrecision.allCases.map(\.bytes), [4, 4, 2])
    }

    /// cuDNN 9's libcudnn.so.9 aborts the process at its first call when a sub-library is missing ("Invalid handle.
    /// Cannot load symbol ..."; seen with pip's dispatcher alone). Loading it checks them first: such an install is
    /// unusable, with the reason, and nothing of it is called (here every function of the stand-in aborts).
    func testABrokenCuDNNInstallIsUnusableNotACrash() throws {
        guard ifcn_cuda_is_open(CUDALibrary.cudnn.rawValue) == 0 else { throw XCTSkip("cuDNN is already loaded in this process") }
        if let real = dlopen("libcudnn_graph.so.9", RTLD_NOW) {
            dlclose(real)
            throw XCTSkip("a cuDNN sub-library is on the loader's path here: no install lacks it")
        }
        guard let compiler = ["cc", "clang", "gcc"].lazy.compactMap(Self.executable).first else {
            throw XCTSkip("no C compiler to build the stand-in dispatcher")
        }
        let dir = NSTemporaryDirectory() + "ifcn-cudnn-dispatcher-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let library = CUDALibrary.cudnn.rawValue
        let names = (0..<ifcn_cuda_symbol_count(library)).map { String(cString: ifcn_cuda_symbol_name(library, $0)) }
        XCTAssertTrue(names.contains("cudnnGetVersion") && names.contains("cudnnFindConvolutionBackwardFilterAlgorithmEx"))
        XCTAssertNil(ifcn_cuda_symbol_name(library, Int32(names.count)))
        let source = "#include <stdlib.h>\n" + names.map { "void \($0)(void) { abort(); }\n" }.joined()
        try source.write(toFile: dir + "/dispatcher.c", atomically: true, encoding: .utf8)
        let cc = Process()
        cc.executableURL = URL(fileURLWithPath: compiler)
        cc.arguments = ["-shared", "-fPIC", "-o", dir + "/libcudnn.so.9", dir + "/dispatcher.c"]
        try cc.run()
        cc.waitUntilExit()
        XCTAssertEqual(cc.terminationStatus, 0, "\(compiler) failed")
        var msg = [CChar](repeating: 0, count: 1024)
        XCTAssertEqual(ifcn_cuda_open(library, dir + "/libcudnn.so.9", &msg, Int32(msg.count)), -1)
        let problem = String(cString: msg)
        XCTAssertTrue(problem.contains("libcudnn.so.9 loads, but its sub-library libcudnn_graph.so.9 does not"), problem)
        XCTAssertEqual(ifcn_cuda_is_open(library), 0)
        XCTAssertEqual(ifcn_cudnn_version(), 0)  // no function of the stand-in is bound
    }

    /// The convolution descriptors of every precision and layout `bench --conv-sweep` times, as cuDNN itself accepts
    /// them (descriptors need no GPU). Where pip's cuDNN is installed with its sub-libraries.
    func testConvolutionDescriptorsOfEveryVariantAreAcceptedByCuDNN() throws {
        guard let lib = Self.nvidiaFolders("lib").first(where: { dir in
            ["libcudnn.so.9", "libcudnn_graph.so.9", "libcudnn_ops.so.9", "libcudnn_cnn.so.9"]
                .allSatisfy { FileManager.default.fileExists(atPath: dir + "/" + $0) }
        }) else { throw XCTSkip("cuDNN is not installed here (pip install nvidia-cudnn-cu13)") }
        setenv("IFCN_CUDA_LIBRARY_PATH", lib, 1)
        defer { unsetenv("IFCN_CUDA_LIBRARY_PATH") }
        let status = CUDALoader.load(.cudnn)
        XCTAssertTrue(status.loaded, status.problem ?? "")
        XCTAssertGreaterThanOrEqual(ifcn_cudnn_version(), 90000)
        for precision in ConvolutionPrecision.allCases {
            for layout in TensorLayout.allCases {
                for (cin, cout, side) in [(2, 64, 32), (8, 64, 32), (128, 64, 16)] {
                    var conv: OpaquePointer?
                    let r = ifcn_conv3_create_variant(&conv, Int32(cin), Int32(cout), Int32(side), Int32(side), Int32(side),
                                                      precision.shimCode, layout.shimCode)
                    XCTAssertEqual(r, 0, "\(precision) \(layout) \(cin)->\(cout): \(String(cString: ifcn_cudnn_error_string(r)))")
                    XCTAssertNotNil(conv)
                    XCTAssertEqual(ifcn_conv3_algorithm(conv, 0), -1)
                    // float32 math runs no FFT or Winograd algorithm (cuDNN 9's numbers per direction, of 8, 6 and 7
                    // algorithms: cudnn_cnn.h), and only under FMA math (cudnnMathType_t: 0 default, which allows
                    // TF32, 1 tensor-op, 3 FMA); the others any algorithm under any math type.
                    let transforms: [[Int32]] = [[4, 5, 6, 7], [2, 3, 4, 5], [2, 4, 5, 6]], counts: [Int32] = [8, 6, 7]
                    for direction in 0..<3 {
                        for algorithm in 0..<counts[direction] {
                            for math: Int32 in [0, 1, 3] {
                                let allowed = precision != .fp32 || (!transforms[direction].contains(algorithm) && math == 3)
                                XCTAssertEqual(ifcn_conv3_allows(conv, Int32(direction), algorithm, math) != 0, allowed,
                                               "\(precision) direction \(direction) algorithm \(algorithm) math \(math)")
                            }
                        }
                    }
                    // Each direction runs its algorithm under the math type Find listed it with; -1: the precision's.
                    let own: Int32 = precision == .fp32 ? 3 : precision == .tf32 ? 0 : 1
                    XCTAssertEqual((0..<3).map { ifcn_conv3_math_type(conv, $0) }, [own, own, own])
                    ifcn_conv3_set_algorithm(conv, 1, 1, 0)
                    ifcn_conv3_set_algorithm(conv, 2, 0, -1)
                    XCTAssertEqual((0..<3).map { ifcn_conv3_algorithm(conv, $0) }, [-1, 1, 0])
                    XCTAssertEqual((0..<3).map { ifcn_conv3_math_type(conv, $0) }, [own, 0, own])
                    ifcn_conv3_destroy(conv)
                }
            }
        }
        // Each --gpu-math with each --gpu-layout runs one of them; ifcn's own code for a variant that does not exist.
        XCTAssertEqual(GPUMath.allCases.map(\.convolutionPrecision), [.fp32, .tf32, .bf16])
        XCTAssertEqual(TensorLayout.allCases.map(\.shimCode), [0, 1])
        var conv: OpaquePointer?
        XCTAssertEqual(ifcn_conv3_create_variant(&conv, 2, 16, 8, 8, 8, 3, 0), IFCN_CUDNN_BAD_VARIANT)
        XCTAssertEqual(String(cString: ifcn_cudnn_error_string(IFCN_CUDNN_BAD_VARIANT)), "unknown convolution precision or layout")
    }

    static func executable(_ name: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let path = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    func testLibrarySearchOrder() throws {
        let root = NSTemporaryDirectory() + "ifcn-cuda-search-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let site = "\(root)/venv/lib/python3.12/site-packages/nvidia"
        for pkg in ["cudnn", "cu13"] {
            try FileManager.default.createDirectory(atPath: "\(site)/\(pkg)/lib", withIntermediateDirectories: true)
        }
        let folders = CUDALoader.searchFolders(environment: ["IFCN_CUDA_LIBRARY_PATH": "/a:/b", "VIRTUAL_ENV": "\(root)/venv"])
        XCTAssertEqual(Array(folders.prefix(4)), ["/a", "/b", "\(site)/cu13/lib", "\(site)/cudnn/lib"])
        XCTAssertTrue(folders.contains("/usr/local/nvidia/lib64"))
    }

    func testEveryKernelCompilesWithNVRTC() throws {
        if !CUDALoader.load(.nvrtc).loaded, let dir = Self.nvidiaFolders("lib").first(where: { dir in
            ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).contains { $0.hasPrefix("libnvrtc.so.1") }
        }) {
            setenv("IFCN_CUDA_LIBRARY_PATH", dir, 1)
        }
        defer { unsetenv("IFCN_CUDA_LIBRARY_PATH") }
        guard CUDALoader.load(.nvrtc).loaded else {
            throw XCTSkip("NVRTC is not installed here (pip install nvidia-cuda-nvrtc)")
        }
        XCTAssertGreaterThanOrEqual(CUDAKernelCompiler.kernelNames.count, 30)
        for arch in ["sm_80", "sm_90"] {
            let result = try CUDAKernelCompiler.compile(architecture: arch)
            XCTAssertGreaterThan(result.cubin.count, 10_000, arch)
            XCTAssertEqual(result.log.trimmingCharacters(in: .whitespacesAndNewlines), "", "NVRTC warnings for \(arch)")
            // Every kernel the backend launches is in the cubin (its symbol table holds the names).
            let image = String(decoding: result.cubin.map { $0 == 0 ? 10 : $0 }, as: UTF8.self)
            for name in CUDAKernelCompiler.kernelNames { XCTAssertTrue(image.contains(name), "\(name) missing for \(arch)") }
        }
        // A compile error is reported with NVRTC's log.
        XCTAssertThrowsError(try CUDAKernelCompiler.compile(architecture: "sm_1"))
    }

    func testDeclaredConstantsMatchNVIDIAHeaders() throws {
        var checked = 0
        func value(in header: String, _ name: String) -> Int? {
            // Decimal or hexadecimal (cuda.h writes its event flags as 0x2).
            guard let r = header.range(of: "\\b\(name)\\s*=\\s*(0x[0-9A-Fa-f]+|\\d+)", options: .regularExpression) else { return nil }
            let literal = header[r].split(separator: "=").last!.trimmingCharacters(in: .whitespaces)
            return literal.hasPrefix("0x") ? Int(literal.dropFirst(2), radix: 16) : Int(literal)
        }
        if let dir = Self.nvidiaFolders("include").first(where: { FileManager.default.fileExists(atPath: $0 + "/cuda.h") }) {
            let header = try String(contentsOfFile: dir + "/cuda.h", encoding: .utf8)
            XCTAssertEqual(value(in: header, "CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT"), Int(CUDADeviceAttribute.multiprocessorCount))
            XCTAssertEqual(value(in: header, "CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR"), Int(CUDADeviceAttribute.computeCapabilityMajor))
            XCTAssertEqual(value(in: header, "CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR"), Int(CUDADeviceAttribute.computeCapabilityMinor))
            XCTAssertEqual(value(in: header, "CUDA_SUCCESS"), 0)
            for name in ["CU_EVENT_DEFAULT", "CU_EVENT_DISABLE_TIMING", "CUDA_ERROR_NOT_FOUND"] {
                var declared: Int64 = 0
                XCTAssertEqual(ifcn_cuda_declared_constant(name, &declared), 0, name)
                XCTAssertEqual(value(in: header, name).map(Int64.init), declared, name)
            }
            checked += 1
        }
        let cudnnHeaders = Self.nvidiaFolders("include").flatMap { dir in
            ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasPrefix("cudnn") }.map { dir + "/" + $0 }
        }
        if !cudnnHeaders.isEmpty {
            let text = try cudnnHeaders.map { try String(contentsOfFile: $0, encoding: .utf8) }.joined(separator: "\n")
            for name in ["CUDNN_DATA_FLOAT", "CUDNN_DATA_BFLOAT16", "CUDNN_TENSOR_NCHW", "CUDNN_TENSOR_NHWC", "CUDNN_CROSS_CORRELATION",
                         "CUDNN_DEFAULT_MATH", "CUDNN_TENSOR_OP_MATH", "CUDNN_FMA_MATH", "CUDNN_DETERMINISTIC"] {
                var declared: Int64 = 0
                XCTAssertEqual(ifcn_cuda_declared_constant(name, &declared), 0, name)
                // Enumerators without "= N" count from the previous one; the ones ifcn uses are all explicit or first.
                if let v = value(in: text, name) { XCTAssertEqual(Int64(v), declared, name) }
            }
            checked += 1
        }
        if let dir = Self.nvidiaFolders("include").first(where: { FileManager.default.fileExists(atPath: $0 + "/nccl.h") }) {
            let header = try String(contentsOfFile: dir + "/nccl.h", encoding: .utf8)
            for name in ["ncclFloat32", "ncclAvg"] {
                var declared: Int64 = 0
                XCTAssertEqual(ifcn_cuda_declared_constant(name, &declared), 0, name)
                XCTAssertEqual(value(in: header, name).map(Int64.init), declared, name)
            }
            var bytes: Int64 = 0
            XCTAssertEqual(ifcn_cuda_declared_constant("NCCL_UNIQUE_ID_BYTES", &bytes), 0)
            XCTAssertTrue(header.contains("#define NCCL_UNIQUE_ID_BYTES \(bytes)"), "NCCL_UNIQUE_ID_BYTES is not \(bytes)")
            checked += 1
        }
        if checked == 0 { throw XCTSkip("no NVIDIA headers here (pip install nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-nccl-cu13)") }
    }

    /// NCCL (optional) loads from pip's layout with every symbol ifcn binds, and reports the version its header declares.
    func testNCCLLoadsAndReportsItsHeadersVersion() throws {
        guard let lib = Self.nvidiaFolders("lib").first(where: { FileManager.default.fileExists(atPath: $0 + "/libnccl.so.2") }),
              let include = Self.nvidiaFolders("include").first(where: { FileManager.default.fileExists(atPath: $0 + "/nccl.h") })
        else { throw XCTSkip("NCCL is not installed here (pip install nvidia-nccl-cu13)") }
        setenv("IFCN_CUDA_LIBRARY_PATH", lib, 1)
        defer { unsetenv("IFCN_CUDA_LIBRARY_PATH") }
        let status = NCCLCommunicator.load()
        XCTAssertTrue(status.loaded, status.problem ?? "")
        let header = try String(contentsOfFile: include + "/nccl.h", encoding: .utf8)
        func define(_ name: String) -> String? {
            header.range(of: "#define \(name) +[0-9]+", options: .regularExpression).map {
                String(header[$0].split(separator: " ").last!)
            }
        }
        let expected = [define("NCCL_MAJOR"), define("NCCL_MINOR"), define("NCCL_PATCH")].compactMap { $0 }.joined(separator: ".")
        XCTAssertEqual(NCCLCommunicator.version, expected)
        // Optional: its absence is not a reason the CUDA backend is unusable.
        let inventory = CUDAInventory.probe(everything: true)
        XCTAssertTrue(inventory.libraries.contains { $0.library == .nccl && $0.loaded })
        XCTAssertEqual(inventory.ncclVersion.map { "\($0 / 10000).\(($0 % 10000) / 100).\($0 % 100)" }, expected)
        XCTAssertFalse(inventory.problems.contains { $0.hasPrefix("NCCL") })
    }
}

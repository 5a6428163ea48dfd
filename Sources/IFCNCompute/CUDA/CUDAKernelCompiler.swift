import CCUDA
import Foundation
import IFCNSupport

/// Compiles `CUDAKernelSource.text` with NVRTC straight to a cubin for the device's exact
/// architecture (not PTX: PTX from a newer NVRTC does not load on an older driver) and caches the
/// cubin on disk, keyed by the source's hash, the architecture and the NVRTC version.
/// Cache folder: `IFCN_CACHE_DIR`, else `$XDG_CACHE_HOME/ifcn`, else `~/.cache/ifcn`.
public enum CUDAKernelCompiler {
    /// Names of every kernel the backend launches.
    public static var kernelNames: [String] { CUDAKernel.allCases.map(\.rawValue) }

    public static func options(architecture: String) -> [String] {
        ["--gpu-architecture=\(architecture)", "--std=c++17", "-default-device"]
    }

    public static var cacheFolder: String {
        let env = ProcessInfo.processInfo.environment
        if let d = env["IFCN_CACHE_DIR"], !d.isEmpty { return d }
        if let x = env["XDG_CACHE_HOME"], !x.isEmpty { return x + "/ifcn" }
        return (env["HOME"] ?? NSTemporaryDirectory()) + "/.cache/ifcn"
    }

    /// FNV-1a 64 of the source and options: the cache key (not a security measure).
    static func sourceHash(_ text: String) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in text.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return String(h, radix: 16)
    }

    /// Compiles every kernel for `architecture`; returns the cubin, or throws with NVRTC's log.
    public static func compile(architecture: String) throws -> (cubin: [UInt8], log: String) {
        let status = CUDALoader.load(.nvrtc)
        guard status.loaded else { throw CUDAError("NVRTC: \(status.problem ?? "not loaded")") }
        let opts = options(architecture: architecture)
        var cstrings = opts.map { strdup($0) }
        defer { cstrings.forEach { free($0) } }
        var cubin: UnsafeMutableRawPointer?
        var size = 0
        var log: UnsafeMutablePointer<CChar>?
        let r = cstrings.withUnsafeMutableBufferPointer { b -> Int32 in
            b.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: b.count) { p in
                ifcn_nvrtc_compile(CUDAKernelSource.text, "ifcn_kernels.cu", p, Int32(b.count), &cubin, &size, &log)
            }
        }
        defer { ifcn_cuda_free(cubin); ifcn_cuda_free(log) }
        let logText = log.map { String(cString: $0) } ?? ""
        guard r == 0, let cubin else {
            throw CUDAError("NVRTC compile for \(architecture) failed: \(String(cString: ifcn_nvrtc_error_string(r)))\n\(logText)")
        }
        return (Array(UnsafeRawBufferPointer(start: cubin, count: size)), logText)
    }

    /// Loads the kernels' module into the current context, compiling on a cache miss.
    static func loadModule(architecture: String) throws -> UnsafeMutableRawPointer {
        var major: Int32 = 0, minor: Int32 = 0
        _ = ifcn_nvrtc_version(&major, &minor)
        let key = "kernels-\(sourceHash(CUDAKernelSource.text + options(architecture: architecture).joined()))-\(architecture)-nvrtc\(major).\(minor).cubin"
        let path = cacheFolder + "/" + key
        var image: [UInt8]
        if let data = FileManager.default.contents(atPath: path), !data.isEmpty {
            image = [UInt8](data)
        } else {
            image = try compile(architecture: architecture).cubin
            // Cache write is best effort: a read-only home only costs a compile per run.
            try? FileManager.default.createDirectory(atPath: cacheFolder, withIntermediateDirectories: true)
            try? AtomicFile.write(Data(image), to: path)
        }
        var module: UnsafeMutableRawPointer?
        let r = image.withUnsafeBytes { ifcn_cu_module_load_data(&module, $0.baseAddress!) }
        if r != 0 { unlink(path) }  // a stale or corrupt cache entry is recompiled next time
        try CUDAError.check(r, "cuModuleLoadData (\(architecture) cubin)")
        return module!
    }
}

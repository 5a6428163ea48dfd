import CCUDA
import Foundation

/// The NVIDIA libraries the CUDA backend loads at run time (NCCL only for gradient averaging across GPUs,
/// and optional), found in this order:
/// `IFCN_CUDA_LIBRARY_PATH` (folders, ':'-separated), the `site-packages/nvidia/*/lib` folders of the
/// active Python environment (`VIRTUAL_ENV`) and of common ones (`/opt/*`, `/opt/*/.venv`, `/opt/*/venv`,
/// `~/.venv`, `/usr/local/lib/python3*/dist-packages`), then the plain SONAME (the system's loader
/// paths). pip's folder layout stays intact, so cuDNN's sub-libraries find cuBLASLt through their RUNPATH.
public enum CUDALibrary: Int32, CaseIterable, Sendable {
    case driver = 0, cudnn = 1, nvrtc = 2, nccl = 3

    public var name: String {
        switch self {
        case .driver: return "CUDA driver"
        case .cudnn: return "cuDNN"
        case .nvrtc: return "NVRTC"
        case .nccl: return "NCCL"
        }
    }

    /// Whether the CUDA backend needs it (NCCL is optional: without it gradients are averaged through MPI).
    public var required: Bool { self != .nccl }

    /// SONAMEs tried, newest first.
    public var sonames: [String] {
        switch self {
        case .driver: return ["libcuda.so.1"]
        case .cudnn: return ["libcudnn.so.9"]
        case .nvrtc: return ["libnvrtc.so.13", "libnvrtc.so.12"]
        case .nccl: return ["libnccl.so.2"]
        }
    }
}

/// Outcome of loading one library.
public struct CUDALibraryStatus: Sendable {
    public let library: CUDALibrary
    /// Resolved absolute path when loaded.
    public let path: String?
    /// Why it did not load (every candidate tried), when it did not.
    public let problem: String?
    public var loaded: Bool { path != nil }
}

public enum CUDALoader {
    nonisolated(unsafe) private static var statuses: [CUDALibrary: CUDALibraryStatus] = [:]
    private static let lock = NSLock()

    /// Candidate folders in search order.
    public static func searchFolders(environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        var folders: [String] = []
        if let p = environment["IFCN_CUDA_LIBRARY_PATH"] {
            folders += p.split(separator: ":").map(String.init).filter { !$0.isEmpty }
        }
        var environments: [String] = []
        if let v = environment["VIRTUAL_ENV"] { environments.append(v) }
        let fm = FileManager.default
        for parent in ["/opt"] {
            for entry in ((try? fm.contentsOfDirectory(atPath: parent)) ?? []).sorted() {
                // /opt/NAME itself a venv, or holding one
                for venv in ["", "/.venv", "/venv"] { environments.append("\(parent)/\(entry)\(venv)") }
            }
        }
        if let home = environment["HOME"] { environments.append(home + "/.venv") }
        for env in environments {
            for lib in ["lib", "lib64"] {
                let base = "\(env)/\(lib)"
                for py in ((try? fm.contentsOfDirectory(atPath: base)) ?? []).sorted() where py.hasPrefix("python3") {
                    folders += nvidiaLibFolders(in: "\(base)/\(py)/site-packages")
                }
            }
        }
        for base in ["/usr/local/lib", "/usr/lib"] {
            for py in ((try? fm.contentsOfDirectory(atPath: base)) ?? []).sorted() where py.hasPrefix("python3") {
                folders += nvidiaLibFolders(in: "\(base)/\(py)/dist-packages")
                folders += nvidiaLibFolders(in: "\(base)/\(py)/site-packages")
            }
        }
        // Where container runtimes mount the driver.
        folders += ["/usr/local/nvidia/lib64", "/usr/local/nvidia/lib"]
        var seen = Set<String>()
        return folders.filter { seen.insert($0).inserted }
    }

    private static func nvidiaLibFolders(in sitePackages: String) -> [String] {
        let root = sitePackages + "/nvidia"
        let fm = FileManager.default
        var out: [String] = []
        for pkg in ((try? fm.contentsOfDirectory(atPath: root)) ?? []).sorted() {
            // pip's layouts: nvidia/<pkg>/lib (CUDA 12 wheels) and nvidia/cu13/lib (CUDA 13 wheels)
            let lib = "\(root)/\(pkg)/lib"
            var isDir: ObjCBool = false
            if fm.fileExists(atPath: lib, isDirectory: &isDir), isDir.boolValue { out.append(lib) }
        }
        return out
    }

    /// Loads one library (once per process) and reports where from, or why not. A library that
    /// did not load is searched for again on the next call (the environment may have changed).
    @discardableResult
    public static func load(_ library: CUDALibrary) -> CUDALibraryStatus {
        lock.lock(); defer { lock.unlock() }
        if let s = statuses[library], s.loaded { return s }
        var problems: [String] = []
        var candidates: [String] = []
        for folder in searchFolders() {
            for so in library.sonames where FileManager.default.fileExists(atPath: "\(folder)/\(so)") {
                candidates.append("\(folder)/\(so)")
            }
        }
        candidates += library.sonames
        var status = CUDALibraryStatus(library: library, path: nil,
                                       problem: "not found (tried \(library.sonames.joined(separator: ", ")))")
        for candidate in candidates {
            var msg = [CChar](repeating: 0, count: 1024)
            if ifcn_cuda_open(library.rawValue, candidate, &msg, Int32(msg.count)) == 0 {
                var path = [CChar](repeating: 0, count: 4096)
                ifcn_cuda_resolved_path(library.rawValue, &path, Int32(path.count))
                status = CUDALibraryStatus(library: library, path: String(cString: path), problem: nil)
                break
            }
            problems.append(String(cString: msg))
        }
        if !status.loaded, !problems.isEmpty {
            status = CUDALibraryStatus(library: library, path: nil, problem: problems.joined(separator: "; "))
        }
        statuses[library] = status
        return status
    }
}

/// CUdevice_attribute values ifcn reads (cuda.h).
enum CUDADeviceAttribute {
    static let multiprocessorCount: Int32 = 16
    static let computeCapabilityMajor: Int32 = 75
    static let computeCapabilityMinor: Int32 = 76
    static let pciBusID: Int32 = 33
    static let pciDeviceID: Int32 = 34
    static let pciDomainID: Int32 = 50
}

/// One GPU as the driver reports it.
public struct CUDADeviceInfo: Sendable {
    public let ordinal: Int
    public let name: String
    public let computeCapability: (major: Int, minor: Int)
    public let memoryBytes: Int
    public let multiprocessors: Int
    /// PCI address, domain:bus:device (as nvidia-smi prints it): unique per GPU within one host.
    public let pciAddress: String
    public var architecture: String { "sm_\(computeCapability.major)\(computeCapability.minor)" }
}

/// What `ifcn devices` prints: the libraries, the driver, the GPUs, and why CUDA is unusable if it is.
public struct CUDAInventory: Sendable {
    public var libraries: [CUDALibraryStatus] = []
    public var driverVersion: Int?
    public var cudnnVersion: Int?
    public var nvrtcVersion: (major: Int, minor: Int)?
    /// major * 10000 + minor * 100 + patch, when NCCL loaded.
    public var ncclVersion: Int?
    public var devices: [CUDADeviceInfo] = []
    public var problems: [String] = []
    public var usable: Bool { problems.isEmpty && !devices.isEmpty }

    /// What the CUDA backend can use here. The driver comes first: without it or without a GPU nothing else is
    /// loaded (a CPU-only machine maps no NVIDIA library), unless `everything` (`ifcn devices`, which also
    /// reports the optional NCCL).
    public static func probe(everything: Bool = false) -> CUDAInventory {
        var inv = CUDAInventory()
        let driver = CUDALoader.load(.driver)
        inv.libraries.append(driver)
        if driver.loaded { inv.probeDevices() } else { inv.problems.append("\(driver.library.name): \(driver.problem ?? "not loaded")") }
        guard everything || !inv.devices.isEmpty else { return inv }
        for library in CUDALibrary.allCases where library != .driver && (everything || library.required) {
            let s = CUDALoader.load(library)
            inv.libraries.append(s)
            if !s.loaded && library.required { inv.problems.append("\(library.name): \(s.problem ?? "not loaded")") }
        }
        if ifcn_cuda_is_open(CUDALibrary.cudnn.rawValue) != 0 { inv.cudnnVersion = Int(ifcn_cudnn_version()) }
        if ifcn_cuda_is_open(CUDALibrary.nvrtc.rawValue) != 0 {
            var major: Int32 = 0, minor: Int32 = 0
            if ifcn_nvrtc_version(&major, &minor) == 0 { inv.nvrtcVersion = (Int(major), Int(minor)) }
        }
        if ifcn_cuda_is_open(CUDALibrary.nccl.rawValue) != 0 {
            var v: Int32 = 0
            if ifcn_nccl_version(&v) == 0 { inv.ncclVersion = Int(v) }
        }
        return inv
    }

    /// The driver's version and GPUs (the driver is loaded).
    private mutating func probeDevices() {
        var r = ifcn_cu_init()
        guard r == 0 else {
            problems.append("cuInit failed: \(String(cString: ifcn_cu_error_string(r))) (\(r)); no usable GPU or driver")
            return
        }
        var v: Int32 = 0
        if ifcn_cu_driver_version(&v) == 0 { driverVersion = Int(v) }
        var count: Int32 = 0
        r = ifcn_cu_device_count(&count)
        guard r == 0 else {
            problems.append("cuDeviceGetCount failed: \(String(cString: ifcn_cu_error_string(r)))")
            return
        }
        if count == 0 { problems.append("the driver sees no GPU (CUDA_VISIBLE_DEVICES='\(ProcessInfo.processInfo.environment["CUDA_VISIBLE_DEVICES"] ?? "")')") }
        for i in 0..<Int(count) {
            var name = [CChar](repeating: 0, count: 256)
            _ = ifcn_cu_device_name(Int32(i), &name, Int32(name.count))
            var major: Int32 = 0, minor: Int32 = 0, sms: Int32 = 0
            _ = ifcn_cu_device_attribute(CUDADeviceAttribute.computeCapabilityMajor, Int32(i), &major)
            _ = ifcn_cu_device_attribute(CUDADeviceAttribute.computeCapabilityMinor, Int32(i), &minor)
            _ = ifcn_cu_device_attribute(CUDADeviceAttribute.multiprocessorCount, Int32(i), &sms)
            var mem = 0
            _ = ifcn_cu_device_total_mem(Int32(i), &mem)
            var domain: Int32 = 0, bus: Int32 = 0, slot: Int32 = 0
            _ = ifcn_cu_device_attribute(CUDADeviceAttribute.pciDomainID, Int32(i), &domain)
            _ = ifcn_cu_device_attribute(CUDADeviceAttribute.pciBusID, Int32(i), &bus)
            _ = ifcn_cu_device_attribute(CUDADeviceAttribute.pciDeviceID, Int32(i), &slot)
            devices.append(CUDADeviceInfo(ordinal: i, name: String(cString: name),
                                          computeCapability: (Int(major), Int(minor)),
                                          memoryBytes: mem, multiprocessors: Int(sms),
                                          pciAddress: String(format: "%08x:%02x:%02x", domain, bus, slot)))
        }
    }
}

/// A failure of a CUDA, cuDNN or NVRTC call, with the call and the library's own message.
public struct CUDAError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }

    static func check(_ code: Int32, _ call: @autoclosure () -> String) throws {
        guard code != 0 else { return }
        throw CUDAError("\(call()) failed: \(String(cString: ifcn_cu_error_string(code))) (CUresult \(code))")
    }

    static func checkDNN(_ code: Int32, _ call: @autoclosure () -> String) throws {
        guard code != 0 else { return }
        throw CUDAError("\(call()) failed: \(String(cString: ifcn_cudnn_error_string(code))) (cudnnStatus \(code))")
    }
}

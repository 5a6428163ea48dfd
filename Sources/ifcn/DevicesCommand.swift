import ArgumentParser
import Foundation
import IFCNCompute

/// `ifcn devices`: what the CUDA backend would find here.
struct DevicesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devices",
        abstract: "List the NVIDIA libraries and GPUs ifcn can use, or say why it cannot.",
        discussion: """
            Libraries are searched in IFCN_CUDA_LIBRARY_PATH, then the site-packages/nvidia/*/lib folders of \
            VIRTUAL_ENV and of /opt/*/.venv, then the system loader paths. NCCL (libnccl.so.2) is optional: \
            without it, training averages gradients through MPI. --compile-kernels compiles every \
            kernel with NVRTC for --arch (no GPU needed) and exits non-zero on a compile error.
            """)

    @Flag(name: .customLong("compile-kernels"), help: "Compile every CUDA kernel with NVRTC (no GPU needed).")
    var compileKernels = false

    @Option(help: "GPU architecture for --compile-kernels, e.g. sm_90 (default: each GPU's own).")
    var arch: String?

    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        let inv = CUDAInventory.probe(everything: true)
        var compiled: [[String: Any]] = []
        var compileFailed = false
        if compileKernels {
            let archs = arch.map { [$0] } ?? Array(Set(inv.devices.map(\.architecture))).sorted()
            if archs.isEmpty {
                throw CLIError("--compile-kernels: no GPU here to take the architecture from; give --arch (e.g. sm_90)")
            }
            for a in archs {
                do {
                    let r = try CUDAKernelCompiler.compile(architecture: a)
                    compiled.append(["arch": a, "ok": true, "cubin_bytes": r.cubin.count, "kernels": CUDAKernelCompiler.kernelNames.count,
                                     "log": r.log.trimmingCharacters(in: .whitespacesAndNewlines)])
                } catch {
                    compileFailed = true
                    compiled.append(["arch": a, "ok": false, "error": "\(error)"])
                }
            }
        }
        if json {
            var obj: [String: Any] = [
                "libraries": inv.libraries.map { s -> [String: Any] in
                    ["name": s.library.name, "loaded": s.loaded, "path": s.path ?? NSNull(), "problem": s.problem ?? NSNull()]
                },
                "driver_version": inv.driverVersion.map(Self.cudaVersion) ?? NSNull(),
                "cudnn_version": inv.cudnnVersion ?? NSNull(),
                "nvrtc_version": inv.nvrtcVersion.map { "\($0.major).\($0.minor)" } ?? NSNull(),
                "nccl_version": inv.ncclVersion.map(Self.ncclVersion) ?? NSNull(),
                "devices": inv.devices.map { d -> [String: Any] in
                    ["ordinal": d.ordinal, "name": d.name, "arch": d.architecture, "memory_bytes": d.memoryBytes,
                     "multiprocessors": d.multiprocessors, "pci": d.pciAddress]
                },
                "usable": inv.usable, "problems": inv.problems,
            ]
            if compileKernels { obj["compile"] = compiled }
            let d = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
            print(String(decoding: d, as: UTF8.self))
        } else {
            for s in inv.libraries {
                print(String(format: "%-12@ %@", s.library.name as NSString,
                             s.loaded ? s.path! : "not loaded: \(s.problem ?? "?")"
                                + (s.library.required ? "" : " (optional: gradients are then averaged through MPI)")))
            }
            if let v = inv.driverVersion { print("driver       CUDA \(Self.cudaVersion(v))") }
            if let v = inv.cudnnVersion { print("cuDNN        \(v)") }
            if let v = inv.nvrtcVersion { print("NVRTC        \(v.major).\(v.minor)") }
            if let v = inv.ncclVersion { print("NCCL         \(Self.ncclVersion(v))") }
            for d in inv.devices {
                print(String(format: "GPU %d        %@  %@  %.1f GiB  %d SMs  PCI %@", d.ordinal, d.name, d.architecture,
                             Double(d.memoryBytes) / 1_073_741_824, d.multiprocessors, d.pciAddress))
            }
            for p in inv.problems { print("unusable: \(p)") }
            print(inv.usable ? "CUDA backend: usable" : "CUDA backend: not usable here (the CPU backend is used)")
            for c in compiled {
                if c["ok"] as? Bool == true {
                    print("compiled \(c["kernels"]!) kernels for \(c["arch"]!): \(c["cubin_bytes"]!) bytes of cubin"
                          + ((c["log"] as? String).map { $0.isEmpty ? "" : "\n\($0)" } ?? ""))
                } else {
                    print("compile for \(c["arch"]!) FAILED: \(c["error"]!)")
                }
            }
        }
        if compileFailed { throw ExitCode(1) }
    }

    static func cudaVersion(_ v: Int) -> String { "\(v / 1000).\((v % 1000) / 10)" }
    static func ncclVersion(_ v: Int) -> String { "\(v / 10000).\((v % 10000) / 100).\(v % 100)" }
}

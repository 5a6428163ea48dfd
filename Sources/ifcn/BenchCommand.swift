import ArgumentParser
import Foundation
import IFCNCompute
import IFCNEngine
import IFCNSupport

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time training steps (forward, loss, backward, Adam) and forward passes of the engine.")

    @Option(help: "Network variant.") var variant: Variant = .paper
    @Option(help: "Channels C.") var channels: Int = 16
    @Option(help: "Patch size P (power of two >= 16).") var patch: Int = 64
    @Option(help: "Timed training steps (after one warm-up step).") var steps: Int = 5
    @Option(help: "Compute threads (default: all cores).") var threads: Int?
    @Flag(help: "Time only eval-mode forward passes (no training step): for sizes where a step takes minutes.")
    var forwardOnly = false
    @Flag(help: "Then run as many steps and forward passes again with each backend call marked (CUDA events on a GPU, the host clock on the CPU) and print the time per kind of kernel.")
    var profile = false
    @Flag(help: "Then time the network's 3x3x3 convolutions (those of one step; of one forward pass with --forward-only) in cuDNN as the backend runs them (--gpu-math, --gpu-layout) and as the speed levers would (tf32 and bf16, each in NCDHW and channels-last NDHWC), with the fastest deterministic algorithm and the fastest of all (needs --backend cuda).")
    var convSweep = false
    @Option(help: "Wall-clock seconds the convolution sweep may take; variants left when they are spent are listed as not timed.")
    var sweepSeconds: Double = 150
    @Flag(help: "Print one JSON line.") var json = false
    @OptionGroup var compute: BackendOptions

    func validate() throws {
        if let threads, let problem = ThreadCount.problem(threads) { throw ValidationError(problem) }
    }

    func run() throws {
        guard steps >= 1 else { throw ValidationError("--steps must be >= 1") }
        guard sweepSeconds > 0, sweepSeconds.isFinite else { throw ValidationError("--sweep-seconds must be a positive number") }
        let config = try NetworkConfig(variant: variant, channels: channels, patch: patch)
        let base = try compute.make(threads: threads, defaultMath: .tf32)
        if convSweep && !(base is CUDABackend) {
            throw CLIError("--conv-sweep times cuDNN's convolutions on a GPU, but this bench runs on the \(base.name) backend: "
                           + "give --backend cuda on a machine with an NVIDIA GPU (`ifcn devices` says what was found)")
        }
        // With --profile (and --conv-sweep, which takes the step's convolutions from it) the network runs on the
        // marking wrapper, switched off for the timed runs.
        let profiler = profile || convSweep ? Backends.profiling(base) : nil
        profiler?.enabled = false
        let backend: any ComputeBackend = profiler ?? base
        let net = Network(config: config, backend: backend, seed: 1, use: forwardOnly ? .inference : .training)
        let adam = Adam(network: net)
        var rng = SeededGenerator(seed: 2)
        let V = config.voxels
        let image = (0..<V).map { _ in Float(rng.normal()) }
        let memory = (0..<V).map { _ in Float(rng.uniform() < 0.2 ? 1 : 0) }
        let target = (0..<V).map { _ in Float(rng.uniform() < 0.3 ? 1 : 0) }
        let weight = (0..<V).map { _ in Float(1 + 8 * rng.uniform()) }
        image.withUnsafeBufferPointer { i in memory.withUnsafeBufferPointer { net.setInput(image: i.baseAddress!, memory: $0.baseAddress!) } }

        // A step is timed as training runs it: queued whole, with one wait at its end (as PyTorch's step in
        // bench/pytorch_step.py). Its split into the forward pass and the rest comes from marks in the backend's
        // order of work (CUDA events on a GPU), so measuring it adds no wait inside the step.
        let split = backend.makeClock()
        func step() -> (Double, Double, Double) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            split.record(0)
            target.withUnsafeBufferPointer { t in weight.withUnsafeBufferPointer { net.setTargets(target: t.baseAddress!, weight: $0.baseAddress!) } }
            net.forward(training: true)
            split.record(1)
            net.zeroGradients()
            net.backward(completenessLabel: 1)
            adam.update()
            split.record(2)
            backend.synchronize()
            let t2 = DispatchTime.now().uptimeNanoseconds
            return (Double(t2 - t0) / 1e9, split.seconds(from: 0, to: 1), split.seconds(from: 1, to: 2))
        }
        func forward() -> Double {
            let t0 = DispatchTime.now().uptimeNanoseconds
            net.forward(training: false)
            backend.synchronize()
            return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        }
        var stepTimes: [Double] = [], fwdTrain: [Double] = [], bwd: [Double] = []
        if !forwardOnly { _ = step() }
        let cuda = base as? CUDABackend
        let staging = (bytes: cuda?.stagingBytes ?? 0, reused: cuda?.stagingCopiesReused ?? 0, ahead: cuda?.uploadsAheadQueued ?? 0)
        for i in 0..<(forwardOnly ? 0 : steps) {
            let (s, f, b) = step()
            stepTimes.append(s); fwdTrain.append(f); bwd.append(b)
            if !json { StandardError.write("step \(i + 1)/\(steps): \(String(format: "%.3f", s)) s") }
        }
        // What a step's convolutions copy to and from their staged operands (bf16 math, channels-last layout).
        // Uploads a step queued on the copy engine's stream (the loss's maps, `Network.setTargets`).
        let uploadsAheadPerStep = forwardOnly ? 0 : cuda.map { ($0.uploadsAheadQueued - staging.ahead) / steps } ?? 0
        let stagingPerStep = forwardOnly ? nil : cuda.map {
            (bytes: ($0.stagingBytes - staging.bytes) / steps, reused: ($0.stagingCopiesReused - staging.reused) / steps)
        }
        _ = forward()
        let forwardTimes = (0..<steps).map { _ in forward() }
        var profiles: [(title: String, key: String, profile: KernelProfile)] = []
        if let profiler, profile {
            profiler.enabled = true
            if !forwardOnly {
                for i in 0..<steps {
                    _ = step()
                    profiler.collect()
                    if !json { StandardError.write("profiled step \(i + 1)/\(steps)") }
                }
                profiles.append(("training step", "step", profiler.profile(reset: true)))
            }
            for _ in 0..<steps { _ = forward(); profiler.collect() }
            profiles.append(("forward (eval)", "forward", profiler.profile(reset: true)))
            profiler.enabled = false
        }
        var sweep: ConvolutionSweep?
        if convSweep, let profiler, let cuda {
            profiler.enabled = true
            if forwardOnly { _ = forward() } else { _ = step() }
            profiler.collect()
            let calls = profiler.profile(reset: true).convolutions
            profiler.enabled = false
            sweep = cuda.sweepConvolutions(calls, budgetSeconds: sweepSeconds) { if !json { StandardError.write($0) } }
        }
        func median(_ a: [Double]) -> Double { let s = a.sorted(); if s.isEmpty { return .nan }; return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2 }
        let ms = median(stepTimes), mf = median(forwardTimes)
        let rss = peakRSSBytes()
        let stepGflops = net.trainingStepFLOPs / ms / 1e9, fwdGflops = net.forwardFLOPs / mf / 1e9
        if json {
            var obj: [String: Any] = [
                "engine": "ifcn", "variant": variant.rawValue, "channels": channels, "patch": patch, "threads": backend.threads,
                "steps": steps, "step_seconds_median": ms, "forward_seconds_median": mf,
                "train_forward_seconds_median": median(fwdTrain), "backward_adam_seconds_median": median(bwd),
                "step_gflops": stepGflops, "forward_gflops": fwdGflops, "peak_rss_bytes": rss,
                "parameters": net.parameters.count, "backend": base.name,
                "device": cuda?.device.name ?? "cpu",
                "gpu_math": cuda?.math.rawValue ?? "n/a",
                "gpu_layout": cuda?.layout.rawValue ?? "n/a",
                "gpu_activations": cuda?.activationFormat.rawValue ?? "n/a",
                "gpu_staging_bytes_per_step": stagingPerStep?.bytes ?? 0,
                "gpu_staging_copies_reused_per_step": stagingPerStep?.reused ?? 0,
                "gpu_uploads_ahead_per_step": uploadsAheadPerStep,
                "gpu_upload_slot_bytes": cuda?.pinnedUploadSlotBytes ?? 0,
                "device_peak_bytes": cuda?.peakAllocatedBytes ?? 0,
                "network_bytes": net.allocatedBytes,
                "cpu_convolutions": base is CPUBackend ? ConvolutionAlgorithm.policy : "n/a",
            ]
            if !profiles.isEmpty {
                obj["profile"] = Dictionary(uniqueKeysWithValues: profiles.map { ($0.key, $0.profile.json) })
            }
            if let sweep { obj["conv_sweep"] = sweep.json }
            if forwardOnly {
                for key in ["step_seconds_median", "train_forward_seconds_median", "backward_adam_seconds_median", "step_gflops"] {
                    obj[key] = nil
                }
                obj["forward_only"] = true
            }
            let d = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
            print(String(decoding: d, as: UTF8.self))
        } else {
            print("\(config), \(backend.threads) threads, \(net.parameters.count) parameters")
            if !forwardOnly {
                print(String(format: "training step  median %.3f s  (forward %.3f s, backward+Adam %.3f s)  %.1f GFLOP/s",
                             ms, median(fwdTrain), median(bwd), stepGflops))
            }
            print(String(format: "forward (eval) median %.3f s  %.1f GFLOP/s", mf, fwdGflops))
            print(String(format: "peak RSS %.0f MiB; network %.0f MiB (arena, parameters and gradients, patches)",
                         Double(rss) / 1048576, Double(net.allocatedBytes) / 1048576))
            if let cuda {
                print(String(format: "peak device memory held %.0f MiB", Double(cuda.peakAllocatedBytes) / 1048576))
            }
            if let s = stagingPerStep, s.bytes > 0 {
                print(String(format: "convolution operand copies per step: %.1f MiB read and written, %d copies reused",
                             Double(s.bytes) / 1048576, s.reused))
            }
            for p in profiles { print(p.profile.table(title: "profile of a \(p.title)")) }
            if let sweep { print(sweep.table()) }
        }
    }
}

/// Peak resident set size of this process in bytes.
func peakRSSBytes() -> Int {
    var u = rusage()
    getrusage(RUSAGE_SELF.rawValue, &u)
    return u.ru_maxrss * 1024
}

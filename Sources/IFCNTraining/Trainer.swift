import Foundation
import IFCNCompute
import IFCNDistributed
import IFCNEngine
import IFCNSupport
import IFCNVolume

/// Result of validating a model on whole validation scans.
public struct ValidationOutcome: Sendable {
    public var diceSum = 0.0
    public var vertebrae = 0
    public var assdSum = 0.0
    public var assdCount = 0
    public var evaluations = 0
    public init() {}
}

/// Segments validation cases with the current weights and scores them.
public typealias Validator = (_ network: Network, _ info: ModelInfo, _ cases: [TrainingCase]) throws -> ValidationOutcome

/// Data-parallel training: every rank draws its own sample, gradients are averaged by one
/// allreduce of the flat gradient buffer, and every rank applies the same Adam step.
public final class Trainer {
    let options: TrainingOptions
    let comm: Communicator
    let log: (String) -> Void
    let validator: Validator

    public init(options: TrainingOptions, communicator: Communicator, validator: @escaping Validator,
                log: @escaping (String) -> Void = { print($0); fflush(stdout) }) {
        self.options = options
        comm = communicator
        self.validator = validator
        self.log = log
    }

    func rootLog(_ s: String) { if comm.isRoot { log(s) } }

    /// Every rank stops together on an error that any rank found (the lowest such rank's message).
    func agree(_ error: String?) throws {
        let first = comm.allreduceMin(error == nil ? Double(comm.size) : Double(comm.rank))
        guard first < Double(comm.size) else { return }
        let message = try comm.broadcast(error ?? "", root: Int(first))
        throw TrainingError(comm.size > 1 && Int(first) != 0 ? "rank \(Int(first)): \(message)" : message, collective: true)
    }

    public func run() throws {
        let o = options
        let config = try NetworkConfig(variant: o.variant, channels: o.channels, patch: o.patch)
        guard o.iterations >= 1, o.iterationsPerEpoch >= 1 else { throw TrainingError("--iterations and --iters-per-epoch must be >= 1", collective: true) }
        let run = RunDirectory(path: o.outputDir)
        let threads = o.threads ?? Backends.defaultThreads(ranksOnNode: comm.localSize)
        var fallback: String?
        let backend: any ComputeBackend
        do {
            backend = try Backends.make(o.backend, threads: threads, localRank: comm.localRank, gpuMath: o.gpuMath) { fallback = $0 }
        } catch {
            throw TrainingError("rank \(comm.rank): \(error)", collective: false)
        }
        if let fallback, comm.isRoot { log(fallback) }
        log("rank \(comm.rank): \(Backends.describe(backend))")
        let net = Network(config: config, backend: backend, seed: o.seed)
        let adam = Adam(network: net, learningRate: o.learningRate)

        // Output folder and data, checked before anything is trained.
        var prepError: String?
        if comm.isRoot {
            let ckptBytes = 4 * (3 * net.parameters.count + net.buffers.count) + 65536
            do { try run.prepare(neededBytes: (o.keepCheckpoints + 3) * ckptBytes) } catch { prepError = "\(error)" }
        }
        try agree(prepError)
        var data: TrainingData?
        var loadError: String?
        do { data = try TrainingData.load(from: o.dataDir, maxValidationCases: o.validationCases) } catch { loadError = "\(error)" }
        try agree(loadError)
        guard let data else { throw TrainingError("no data") }
        let spacing = data.manifest.spacing
        let info = ModelInfo(config: config, spacingMM: spacing, intensity: .paper)

        // Resume: rank 0 reads the checkpoint and broadcasts it, so nodes need no shared disk.
        var start = 0
        var bestDice = -1.0
        var resumeError: String?
        var loaded: LoadedCheckpoint?
        if o.resume && comm.isRoot {
            if FileManager.default.fileExists(atPath: run.latest) {
                do {
                    loaded = try Checkpoint.load(path: run.latest, config: config)
                    if loaded?.training == nil { resumeError = "\(run.latest): holds no training state" }
                } catch { resumeError = "\(error)" }
            } else {
                resumeError = "\(run.latest): --resume given but no checkpoint exists"
            }
        }
        try agree(resumeError)
        if o.resume {
            var params = loaded?.parameters ?? [], stats = loaded?.buffers ?? []
            var m = loaded?.training?.firstMoment ?? [], v = loaded?.training?.secondMoment ?? []
            var header = [Double(loaded?.training?.iteration ?? 0), Double(loaded?.training?.adamStep ?? 0),
                          loaded?.metadata["best_val_dice"].flatMap(Double.init) ?? -1]
            try comm.broadcast(&header, root: 0)
            try comm.broadcast(&params, root: 0); try comm.broadcast(&stats, root: 0)
            try comm.broadcast(&m, root: 0); try comm.broadcast(&v, root: 0)
            net.loadParameters(params); net.loadBuffers(stats)
            adam.restore(step: Int(header[1]), firstMoment: m, secondMoment: v)
            start = Int(header[0]); bestDice = header[2]
            rootLog("resumed from \(run.latest) at iteration \(start)")
        } else {
            var params = net.readParameters()
            try comm.broadcast(&params, root: 0)
            net.loadParameters(params)
        }
        guard start < o.iterations else {
            rootLog("nothing to do: checkpoint is at iteration \(start), --iterations is \(o.iterations)")
            return
        }

        rootLog("training \(config) on \(data.training.count) cases (\(data.validation.count) validation) at \(spacing) mm; "
                + "\(comm.size) rank(s) x \(backend is CPUBackend ? "\(threads) thread(s)" : backend.name); iterations \(start + 1)...\(o.iterations), epoch \(o.iterationsPerEpoch)")

        let sampler = PatchSampler(cases: data.training, patch: o.patch, intensity: info.intensity, seed: o.seed,
                                   rank: o.sampleRank ?? comm.rank, augmentations: o.augmentations)
        let prefetcher = Prefetcher(sampler: sampler)
        prefetcher.prefetch(start + 1)

        var epoch = EpochStats()
        var lastProgress = Date()
        let runStart = Date()
        var epochStart = Date()

        for it in (start + 1)...o.iterations {
            let sample = prefetcher.take(it)
            if it < o.iterations { prefetcher.prefetch(it + 1) }
            if let d = o.dieAt, d.rank == comm.rank, d.iteration == it {
                StandardError.write("rank \(comm.rank): injected failure at iteration \(it)")
                exit(3)
            }
            let t0 = Date()
            sample.image.withUnsafeBufferPointer { im in sample.memory.withUnsafeBufferPointer { net.setInput(image: im.baseAddress!, memory: $0.baseAddress!) } }
            net.forward(training: true)
            net.zeroGradients()
            let loss = sample.target.withUnsafeBufferPointer { t in
                sample.weight.withUnsafeBufferPointer { net.backward(target: t.baseAddress!, weight: $0.baseAddress!, completenessLabel: sample.completeness) }
            }
            let t1 = Date()
            try backend.withHostMemory(net.gradients) { try comm.averageGradients($0, count: net.gradients.count) }
            let t2 = Date()
            if let dump = o.dumpGradients, it == start + 1 {
                var w = SafeTensorsWriter()
                w.add("gradients", floats: net.readGradients(), shape: [net.gradients.count])
                w.add("loss", floats: [Float(loss.total)], shape: [1])
                try w.write(to: "\(dump).rank\(comm.rank).safetensors")
            }
            adam.learningRate = o.learningRate(at: it)
            adam.update()
            let t3 = Date()

            epoch.add(loss: loss, sample: sample, overlap: net.trainingOverlap(), computeSeconds: t1.timeIntervalSince(t0) + t3.timeIntervalSince(t2),
                      allreduceSeconds: t2.timeIntervalSince(t1))

            if comm.isRoot && Date().timeIntervalSince(lastProgress) >= o.progressInterval {
                lastProgress = Date()
                let done = it - start, rate = Double(done) / Date().timeIntervalSince(runStart)
                let eta = Double(o.iterations - it) / max(rate, 1e-9)
                log(String(format: "  iter %d/%d  loss %.1f  %.2f it/s  ETA %@", it, o.iterations, epoch.meanLoss, rate, formatDuration(eta)))
            }

            if it % o.iterationsPerEpoch == 0 || it == o.iterations {
                try endEpoch(iteration: it, net: net, adam: adam, info: info, data: data, run: run, stats: &epoch,
                             epochSeconds: Date().timeIntervalSince(epochStart), bestDice: &bestDice)
                epoch = EpochStats()
                epochStart = Date()
            }
        }
        if let dump = o.dumpWeights {
            var w = SafeTensorsWriter()
            w.add("parameters", floats: net.readParameters(), shape: [net.parameters.count])
            try w.write(to: "\(dump).rank\(comm.rank).safetensors")
        }
    }

    func endEpoch(iteration it: Int, net: Network, adam: Adam, info: ModelInfo, data: TrainingData, run: RunDirectory,
                  stats: inout EpochStats, epochSeconds: Double, bestDice: inout Double) throws {
        let o = options
        // Pool the epoch's statistics over ranks.
        var s = stats.vector
        comm.allreduceSum(&s)
        let pooled = EpochStats(vector: s)

        // Weights must be identical everywhere.
        let same = try net.backend.withHostMemory(net.parameters) { try comm.checkIdentical($0, count: net.parameters.count) }
        guard same else {
            throw TrainingError("weights differ across ranks at iteration \(it): ranks diverged (different binaries, thread counts or hardware?)", collective: true)
        }
        // One model for validation and checkpoints: rank 0's running statistics everywhere.
        var stats0 = net.readBuffers()
        try comm.broadcast(&stats0, root: 0)
        net.loadBuffers(stats0)

        // Validation: cases shared round-robin among ranks, results summed.
        let vStart = Date()
        let mine = data.validation.enumerated().filter { $0.offset % comm.size == comm.rank }.map(\.element)
        var v = ValidationOutcome()
        var vError: String?
        do { if !mine.isEmpty { v = try validator(net, info, mine) } } catch { vError = "validation failed: \(error)" }
        try agree(vError)
        var vv = [v.diceSum, Double(v.vertebrae), v.assdSum, Double(v.assdCount), Double(v.evaluations)]
        comm.allreduceSum(&vv)
        let valDice: Double? = vv[1] > 0 ? vv[0] / vv[1] : nil
        let valASSD: Double? = vv[3] > 0 ? vv[2] / vv[3] : nil
        let valSeconds = Date().timeIntervalSince(vStart)

        if comm.isRoot {
            let isBest = (valDice ?? -pooled.meanLoss) > bestDice
            if isBest { bestDice = valDice ?? -pooled.meanLoss }
            let st = adam.readState()
            try Checkpoint.save(network: net, info: info,
                                training: TrainingState(iteration: it, adamStep: st.step, firstMoment: st.firstMoment,
                                                        secondMoment: st.secondMoment,
                                                        metadata: ["seed": String(o.seed), "ranks": String(comm.size),
                                                                   "best_val_dice": String(bestDice),
                                                                   "rng": "counter-based: stream(seed, rank, iteration)"]),
                                to: run.latest)
            try run.archiveLatest(iteration: it, isBest: isBest, keep: o.keepCheckpoints)
            let epochIndex = (it + o.iterationsPerEpoch - 1) / o.iterationsPerEpoch
            let samplesPerSecond = Double(pooled.samples) / max(epochSeconds, 1e-9)
            let allreduceShare = pooled.allreduceSeconds / max(pooled.allreduceSeconds + pooled.computeSeconds, 1e-12)
            var obj: [String: Any] = [
                "epoch": epochIndex, "iteration": it, "train_loss": pooled.meanLoss,
                "train_dice": pooled.meanDice as Any, "completeness_accuracy": pooled.completenessAccuracy,
                "val_dice": valDice as Any, "val_assd_mm": valASSD as Any, "val_evaluations": Int(vv[4]),
                "seconds": epochSeconds, "validation_seconds": valSeconds, "samples_per_second": samplesPerSecond,
                "allreduce_share": allreduceShare, "ranks": comm.size, "learning_rate": Double(o.learningRate(at: it)),
            ]
            obj = obj.mapValues { ($0 as Any?) ?? NSNull() }
            if valDice == nil { obj["val_dice"] = NSNull() }
            if valASSD == nil { obj["val_assd_mm"] = NSNull() }
            if pooled.meanDice == nil { obj["train_dice"] = NSNull() }
            try run.appendMetrics(obj)
            func f(_ x: Double?, _ fmt: String = "%.4f") -> String { x.map { String(format: fmt, $0) } ?? "n/a" }
            log("epoch \(epochIndex)  iter \(it)  loss \(f(pooled.meanLoss, "%.2f"))  train Dice \(f(pooled.meanDice))  "
                + "compl. acc \(f(pooled.completenessAccuracy, "%.3f"))  val Dice \(f(valDice))  val ASSD \(f(valASSD, "%.2f")) mm  "
                + String(format: "%.1f s  %.2f samples/s  allreduce %.1f%%", epochSeconds, samplesPerSecond, 100 * allreduceShare)
                + (isBest ? "  *best" : ""))
        }
        // Everyone leaves the epoch together (the checkpoint is complete before anyone goes on).
        comm.barrier()
    }
}

/// Running sums of one epoch on one rank (a flat vector so ranks pool it with one allreduce).
struct EpochStats {
    var lossSum = 0.0, samples = 0, diceSum = 0.0, diceCount = 0, correct = 0
    var computeSeconds = 0.0, allreduceSeconds = 0.0

    init() {}
    init(vector v: [Double]) {
        lossSum = v[0]; samples = Int(v[1]); diceSum = v[2]; diceCount = Int(v[3]); correct = Int(v[4])
        computeSeconds = v[5]; allreduceSeconds = v[6]
    }
    var vector: [Double] { [lossSum, Double(samples), diceSum, Double(diceCount), Double(correct), computeSeconds, allreduceSeconds] }

    var meanLoss: Double { lossSum / Double(max(samples, 1)) }
    var meanDice: Double? { diceCount > 0 ? diceSum / Double(diceCount) : nil }
    var completenessAccuracy: Double { Double(correct) / Double(max(samples, 1)) }

    mutating func add(loss: Loss, sample: TrainingSample, overlap: (predicted: Int, reference: Int, intersection: Int),
                      computeSeconds: Double, allreduceSeconds: Double) {
        lossSum += loss.total; samples += 1
        if (loss.completeness > 0.5) == (sample.completeness > 0.5) { correct += 1 }
        if !sample.isEmptyExample {
            let sum = overlap.predicted + overlap.reference
            if sum > 0 { diceSum += 2 * Double(overlap.intersection) / Double(sum); diceCount += 1 }
        }
        self.computeSeconds += computeSeconds
        self.allreduceSeconds += allreduceSeconds
    }
}

func formatDuration(_ s: Double) -> String {
    guard s.isFinite else { return "?" }
    let t = Int(s.rounded())
    return t >= 3600 ? String(format: "%dh%02dm", t / 3600, (t % 3600) / 60) : String(format: "%dm%02ds", t / 60, t % 60)
}

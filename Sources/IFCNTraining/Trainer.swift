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
///
/// `run` is the loop; each named step is a short method: prepare, resume, step, and at the end of
/// every epoch validate, checkpoint, log.
public final class Trainer {
    let options: TrainingOptions
    let comm: Communicator
    let log: (String) -> Void
    let validator: Validator
    /// Called on rank 0 after each epoch's checkpoint and metrics line (`ifcn train` writes RUN/report.html).
    public var afterEpoch: ((EpochEnd) -> Void)?

    public init(options: TrainingOptions, communicator: Communicator, validator: @escaping Validator,
                log: @escaping (String) -> Void = { print($0); fflush(stdout) }) {
        self.options = options
        comm = communicator
        self.validator = validator
        self.log = log
    }

    /// What a run works with once prepared.
    final class Session {
        let config: NetworkConfig
        let backend: any ComputeBackend
        let threads: Int
        let net: Network
        let adam: Adam
        let run: RunDirectory
        let data: TrainingData
        let info: ModelInfo
        var bestDice = -1.0
        /// The iteration of the newest checkpoint on disk (nil before the first).
        var lastCheckpoint: Int?
        /// Rank 0's hold on the run folder, released when the session ends.
        var lock: RunLock?
        /// How the ranks' gradients are averaged (`--allreduce`).
        var averaging = GradientAveraging.mpi
        init(config: NetworkConfig, backend: any ComputeBackend, threads: Int, net: Network, adam: Adam,
             run: RunDirectory, data: TrainingData, info: ModelInfo) {
            self.config = config; self.backend = backend; self.threads = threads; self.net = net; self.adam = adam
            self.run = run; self.data = data; self.info = info
        }
    }

    @discardableResult
    public func run() throws -> TrainingOutcome {
        let stopSignal = StopSignal(announce: comm.isRoot)
        defer { stopSignal.stop() }
        let session = try prepare()
        comm.collectiveTimeout = options.collectiveTimeout
        defer { comm.collectiveTimeout = nil }
        guard let start = try resume(session) else { return .finished }
        let o = options
        rootLog("training \(session.config) on \(session.data.training.count) cases (\(session.data.validation.count) validation) "
                + "at \(session.info.spacingMM) mm; \(comm.size) rank(s) x "
                + "\(session.backend is CPUBackend ? "\(session.threads) thread(s)" : session.backend.name); "
                + "iterations \(start + 1)...\(o.iterations), epoch \(o.iterationsPerEpoch); learning rate "
                + String(format: "%g", Double(o.learningRate(at: o.warmupIterations, ranks: comm.size)))
                + (o.learningRateScaling == .none ? "" : " (\(o.learningRateScaling.rawValue) scaling for \(comm.size) rank(s), "
                   + "warm-up \(o.warmupIterations) iterations from " + String(format: "%g", Double(o.learningRate)) + ")"))
        let sampler = PatchSampler(cases: session.data.training, patch: o.patch, intensity: session.info.intensity, seed: o.seed,
                                   rank: o.testHooks.sampleRank ?? comm.rank, augmentations: o.augmentations)
        let prefetcher = Prefetcher(sampler: sampler)
        prefetcher.prefetch(start + 1)
        var epoch = EpochStats()
        var lastProgress = Date()
        let runStart = Date()
        var epochStart = Date()
        // On a GPU the next sample is taken, and its input staged in pinned memory, while the device runs the
        // backward pass (`Network.backward`'s whileQueued), so the next step starts by queueing its transfer.
        var upcoming: (iteration: Int, sample: TrainingSample, staged: Network.StagedInput)?
        for it in (start + 1)...o.iterations {
            let sample: TrainingSample, staged: Network.StagedInput
            if let u = upcoming, u.iteration == it {
                (sample, staged) = (u.sample, u.staged)
            } else {
                sample = prefetcher.take(it)
                if it < o.iterations { prefetcher.prefetch(it + 1) }
                staged = Network.StagedInput()
            }
            upcoming = nil
            if it == start + 1 { rootLog(String(format: "first step starts %.2f s after the process started", processAgeSeconds())) }
            let stageNext = { [net = session.net] in
                let next = prefetcher.take(it + 1)
                if it + 1 < o.iterations { prefetcher.prefetch(it + 2) }
                let st = next.image.withUnsafeBufferPointer { i in
                    next.memory.withUnsafeBufferPointer { net.stageInput(image: i.baseAddress!, memory: $0.baseAddress!) }
                }
                upcoming = (it + 1, next, st)
            }
            let stop = try step(session, sample: sample, staged: staged, iteration: it, first: it == start + 1, stopSignal: stopSignal,
                                stats: &epoch, whileQueued: it < o.iterations && session.backend.stagesUploads ? stageNext : {})
            if comm.isRoot && Date().timeIntervalSince(lastProgress) >= o.progressInterval {
                lastProgress = Date()
                let rate = Double(it - start) / Date().timeIntervalSince(runStart)
                log(String(format: "  iter %d/%d  loss %.1f  %.2f it/s  ETA %@", it, o.iterations, epoch.meanLoss, rate,
                           formatDuration(Double(o.iterations - it) / max(rate, 1e-9))))
            }
            let epochEnds = it % o.iterationsPerEpoch == 0 || it == o.iterations
            if epochEnds {
                try endEpoch(session, iteration: it, stats: epoch, epochSeconds: Date().timeIntervalSince(epochStart))
                epoch = EpochStats()
                epochStart = Date()
            }
            if let stop, it < o.iterations { return try stopEarly(session, signal: stop, iteration: it, checkpointed: epochEnds) }
        }
        rootLog(prefetcher.summary)
        log("rank \(comm.rank): \(memorySummary())")
        if let dump = o.testHooks.dumpWeights {
            var w = SafeTensorsWriter()
            w.add("parameters", floats: session.net.readParameters(), shape: [session.net.parameters.count])
            try w.write(to: "\(dump).rank\(comm.rank).safetensors")
        }
        return .finished
    }

    // MARK: steps

    /// Backend, network and optimiser; the output folder and the data, checked on every rank
    /// before anything is trained.
    func prepare() throws -> Session {
        let o = options
        let config = try NetworkConfig(variant: o.variant, channels: o.channels, patch: o.patch)
        try o.validate()
        let threads = o.threads ?? Backends.defaultThreads(ranksOnNode: comm.localSize)
        do { try TrainingOptions.checkThreads(threads, source: o.threads == nil ? "IFCN_THREADS" : "--threads") } catch {
            throw TrainingError("rank \(comm.rank): \(error)", collective: false)
        }
        var fallback: String?
        let backend: any ComputeBackend
        do {
            backend = try Backends.make(o.backend, threads: threads, localRank: comm.localRank, gpuMath: o.gpuMath,
                                        gpuLayout: o.gpuLayout, gpuActivations: o.gpuActivations) { fallback = $0 }
        } catch {
            throw TrainingError("rank \(comm.rank): \(error)", collective: false)
        }
        if let fallback, comm.isRoot { log(fallback) }
        log("rank \(comm.rank): \(Backends.describe(backend))")
        DeviceFailure.owner = "rank \(comm.rank) of \(comm.size) on host \(comm.processorName)"
        DeviceFailure.terminate = { [comm] code, message in comm.abort(code: code, message: message) }
        let net = Network(config: config, backend: backend, seed: o.seed)
        let run = RunDirectory(path: o.outputDir)
        let lock = try collectively(onlyRoot: true) { () -> RunLock in
            let checkpointBytes = 4 * (3 * net.parameters.count + net.buffers.count) + 65536
            try run.prepare(neededBytes: (o.keepCheckpoints + 3) * checkpointBytes)
            return try claim(run)
        }
        guard let data = try collectively(body: { try TrainingData.load(from: o.dataDir, maxValidationCases: o.validationCases) })
        else { throw TrainingError("no data") }
        if comm.isRoot { data.notes.forEach(log) }
        let info = ModelInfo(config: config, spacingMM: data.manifest.spacing, intensity: .paper)
        let session = Session(config: config, backend: backend, threads: threads, net: net,
                              adam: Adam(network: net, learningRate: o.learningRate), run: run, data: data, info: info)
        session.lock = lock
        session.averaging = try GradientAveraging.choose(o.allreduce, backend: backend, comm: comm, note: log)
        rootLog(session.averaging.describe(backend: backend, ranks: comm.size))
        noteRecovery(session)
        return session
    }

    /// The iteration to continue after: rank 0 reads `latest` and broadcasts it (no shared disk
    /// needed), or everyone starts from rank 0's initial weights. nil when there is nothing to do.
    func resume(_ s: Session) throws -> Int? {
        let o = options
        var start = 0
        if o.resume {
            let loaded = try collectively(onlyRoot: true) { try loadResumable(s) }
            var params = loaded?.parameters ?? [], stats = loaded?.buffers ?? []
            var m = loaded?.training?.firstMoment ?? [], v = loaded?.training?.secondMoment ?? []
            var header = [Double(loaded?.training?.iteration ?? 0), Double(loaded?.training?.adamStep ?? 0),
                          loaded?.metadata["best_val_dice"].flatMap(Double.init) ?? -1]
            try comm.broadcast(&header, root: 0)
            try comm.broadcast(&params, root: 0); try comm.broadcast(&stats, root: 0)
            try comm.broadcast(&m, root: 0); try comm.broadcast(&v, root: 0)
            s.net.loadParameters(params); s.net.loadBuffers(stats)
            s.adam.restore(step: Int(header[1]), firstMoment: m, secondMoment: v)
            start = Int(header[0]); s.bestDice = header[2]; s.lastCheckpoint = start
            noteRecovery(s)
            s.net.setBatchesTracked(start)
            rootLog("resumed from \(loaded?.path ?? s.run.latest) at iteration \(start)")
        } else {
            var params = s.net.readParameters()
            try comm.broadcast(&params, root: 0)
            s.net.loadParameters(params)
        }
        guard start < o.iterations else {
            rootLog("nothing to do: checkpoint is at iteration \(start), --iterations is \(o.iterations)")
            return nil
        }
        return start
    }

    /// One iteration: forward, loss and backward on this rank's sample, the gradient allreduce, the
    /// ranks' agreement (divergence, stop signal: `agree`), the Adam step; the sample's statistics go into
    /// `stats`. Returns the stop signal when the ranks agreed to stop after this iteration.
    func step(_ s: Session, sample: TrainingSample, staged: Network.StagedInput, iteration it: Int, first: Bool,
              stopSignal: StopSignal, stats: inout EpochStats, whileQueued: () -> Void) throws -> Int32? {
        let o = options, net = s.net
        comm.activity = "iteration \(it)"
        if let d = o.testHooks.dieAt, d.rank == comm.rank, d.iteration == it {
            StandardError.write("rank \(comm.rank): injected failure at iteration \(it)")
            exit(3)
        }
        if let r = o.testHooks.raiseAt, r.rank == comm.rank, r.iteration == it {
            StandardError.write("rank \(comm.rank): injected signal \(r.signal) at iteration \(it)")
            raise(r.signal)
        }
        if let d = o.testHooks.deviceFailureAt, d.rank == comm.rank, d.iteration == it {
            DeviceFailure.stop(device: Backends.deviceDescription(s.backend), call: "iteration \(it)", reason: "injected device failure")
        }
        let t0 = Date()
        sample.image.withUnsafeBufferPointer { im in
            sample.memory.withUnsafeBufferPointer { net.setInput(image: im.baseAddress!, memory: $0.baseAddress!, staged: staged) }
        }
        sample.target.withUnsafeBufferPointer { t in
            sample.weight.withUnsafeBufferPointer { net.setTargets(target: t.baseAddress!, weight: $0.baseAddress!) }
        }
        net.forward(training: true)
        net.zeroGradients()
        let loss = net.backward(completenessLabel: sample.completeness, whileQueued: whileQueued)
        s.backend.synchronize()  // a device backend queues the backward pass: time it as compute
        let t1 = Date()
        let gradientNormSquared = try s.averaging.average(net.gradients, backend: s.backend, comm: comm)
        let stop = try agree(s, iteration: it, loss: loss.total, gradientNormSquared: gradientNormSquared,
                             signal: stopSignal.requested)
        let t2 = Date()
        if let dump = o.testHooks.dumpGradients, first {
            var w = SafeTensorsWriter()
            w.add("gradients", floats: net.readGradients(), shape: [net.gradients.count])
            w.add("loss", floats: [Float(loss.total)], shape: [1])
            try w.write(to: "\(dump).rank\(comm.rank).safetensors")
        }
        s.adam.learningRate = o.learningRate(at: it, ranks: comm.size)
        s.adam.update()
        let overlap = net.trainingOverlap()
        let t3 = Date()
        stats.add(loss: loss, sample: sample, overlap: overlap, computeSeconds: t1.timeIntervalSince(t0) + t3.timeIntervalSince(t2),
                  allreduceSeconds: t2.timeIntervalSince(t1))
        return stop
    }

    /// Pools the epoch's statistics, checks the ranks agree, validates, checkpoints and logs.
    func endEpoch(_ s: Session, iteration it: Int, stats: EpochStats, epochSeconds: Double) throws {
        var vector = stats.vector
        comm.allreduceSum(&vector)
        let pooled = EpochStats(vector: vector)
        try synchroniseModel(s, iteration: it)
        // Ranks validate different cases for different times: wait for the slowest without a limit (sleeping).
        let validation = try comm.withCollectiveTimeout(.infinity) { try validate(s) }
        if comm.isRoot {
            let isBest = (validation.dice ?? -pooled.meanLoss) > s.bestDice
            if isBest { s.bestDice = validation.dice ?? -pooled.meanLoss }
            try checkpoint(s, iteration: it, isBest: isBest)
            try logEpoch(iteration: it, pooled: pooled, validation: validation, epochSeconds: epochSeconds, isBest: isBest, run: s.run)
            finishEpoch(s, iteration: it, isBest: isBest)
        }
        // Everyone leaves the epoch together (the checkpoint is complete before anyone goes on).
        comm.barrier()
        s.lastCheckpoint = it
        noteRecovery(s)
    }

    /// Weights must be identical everywhere; rank 0's running statistics become everyone's, so
    /// validation and checkpoints use one model.
    func synchroniseModel(_ s: Session, iteration it: Int) throws {
        let same = try s.backend.withHostMemory(s.net.parameters) { try comm.checkIdentical($0, count: s.net.parameters.count) }
        guard same else {
            throw TrainingError("weights differ across ranks at iteration \(it): ranks diverged (different binaries, thread counts or hardware?)", collective: true)
        }
        var stats0 = s.net.readBuffers()
        try comm.broadcast(&stats0, root: 0)
        s.net.loadBuffers(stats0)
    }

    struct ValidationSummary {
        let dice: Double?
        let assd: Double?
        let evaluations: Int
        let seconds: Double
    }

    /// Validation cases shared round-robin among the ranks, segmented and scored, results summed.
    func validate(_ s: Session) throws -> ValidationSummary {
        let start = Date()
        let mine = s.data.validation.enumerated().filter { $0.offset % comm.size == comm.rank }.map(\.element)
        let v = try collectively(context: "validation failed") { mine.isEmpty ? ValidationOutcome() : try validator(s.net, s.info, mine) }
            ?? ValidationOutcome()
        var sums = [v.diceSum, Double(v.vertebrae), v.assdSum, Double(v.assdCount), Double(v.evaluations)]
        comm.allreduceSum(&sums)
        return ValidationSummary(dice: sums[1] > 0 ? sums[0] / sums[1] : nil, assd: sums[3] > 0 ? sums[2] / sums[3] : nil,
                                 evaluations: Int(sums[4]), seconds: Date().timeIntervalSince(start))
    }

    /// Rank 0 writes `latest` atomically, then the iteration and best links.
    func checkpoint(_ s: Session, iteration it: Int, isBest: Bool) throws {
        let o = options, st = s.adam.readState()
        try Self.checkFinite(["weights": s.net.readParameters(), "running statistics": s.net.readBuffers(),
                              "Adam first moment": st.firstMoment, "Adam second moment": st.secondMoment], iteration: it)
        try Checkpoint.save(network: s.net, info: s.info,
                            training: TrainingState(iteration: it, adamStep: st.step, firstMoment: st.firstMoment,
                                                    secondMoment: st.secondMoment,
                                                    metadata: ["seed": String(o.seed), "ranks": String(comm.size),
                                                               "best_val_dice": String(s.bestDice),
                                                               DownsamplingFilter.metadataKey: (s.data.manifest.downsampling ?? .none).rawValue,
                                                               "rng": "counter-based: stream(seed, rank, iteration)"]),
                            to: s.run.latest)
        s.lastCheckpoint = it
        try s.run.archiveLatest(iteration: it, isBest: isBest, keep: o.keepCheckpoints)
    }

    /// What a rank that loses its device says stays safe (`DeviceFailure`): checkpoints are written atomically.
    func noteRecovery(_ s: Session) {
        let last = s.lastCheckpoint.map { "iteration \($0) in \(s.run.latest)" } ?? "none written yet"
        DeviceFailure.recovery = "The last checkpoint (\(last)) stays resumable: run the same command with --resume"
    }

    /// One line of metrics.jsonl and one human-readable epoch line.
    func logEpoch(iteration it: Int, pooled: EpochStats, validation v: ValidationSummary, epochSeconds: Double,
                  isBest: Bool, run: RunDirectory) throws {
        let o = options
        let epochIndex = (it + o.iterationsPerEpoch - 1) / o.iterationsPerEpoch
        let samplesPerSecond = Double(pooled.samples) / max(epochSeconds, 1e-9)
        let allreduceShare = pooled.allreduceSeconds / max(pooled.allreduceSeconds + pooled.computeSeconds, 1e-12)
        let metrics = EpochMetrics(
            epoch: epochIndex, iteration: it, trainLoss: pooled.meanLoss, trainDice: pooled.meanDice,
            completenessAccuracy: pooled.completenessAccuracy, valDice: v.dice, valASSDmm: v.assd,
            valEvaluations: v.evaluations, seconds: epochSeconds, validationSeconds: v.seconds,
            samplesPerSecond: samplesPerSecond, allreduceShare: allreduceShare, ranks: comm.size,
            learningRate: Double(o.learningRate(at: it, ranks: comm.size)))
        try run.appendMetrics(metrics)
        func f(_ x: Double?, _ fmt: String = "%.4f") -> String { x.map { String(format: fmt, $0) } ?? "n/a" }
        log("epoch \(epochIndex)  iter \(it)  loss \(f(pooled.meanLoss, "%.2f"))  train Dice \(f(pooled.meanDice))  "
            + "compl. acc \(f(pooled.completenessAccuracy, "%.3f"))  val Dice \(f(v.dice))  val ASSD \(f(v.assd, "%.2f")) mm  "
            + String(format: "%.1f s  %.2f samples/s  allreduce %.1f%%", epochSeconds, samplesPerSecond, 100 * allreduceShare)
            + (isBest ? "  *best" : ""))
    }

    // MARK: helpers

    func rootLog(_ s: String) { if comm.isRoot { log(s) } }

    /// Runs `body` (on rank 0 only when `onlyRoot`), then every rank stops together if any rank
    /// failed, with the lowest failing rank's message. Returns the body's value (nil where it did not run).
    @discardableResult
    func collectively<T>(onlyRoot: Bool = false, context: String? = nil, body: () throws -> T) throws -> T? {
        var value: T?
        var failure: String?
        if !onlyRoot || comm.isRoot {
            do { value = try body() } catch { failure = context.map { "\($0): \(error)" } ?? "\(error)" }
        }
        let first = comm.allreduceMin(failure == nil ? Double(comm.size) : Double(comm.rank))
        guard first < Double(comm.size) else { return value }
        let message = try comm.broadcast(failure ?? "", root: Int(first))
        throw TrainingError(comm.size > 1 && Int(first) != 0 ? "rank \(Int(first)): \(message)" : message, collective: true)
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

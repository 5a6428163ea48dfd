import ArgumentParser
import Foundation
import IFCNCompute
import IFCNDistributed
import IFCNEngine
import IFCNReport
import IFCNSupport
import IFCNTraining

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train the iterative FCN, data-parallel over MPI ranks (or as one process).",
        discussion: """
        Start under mpirun for several ranks (see launch/), or alone for a single-rank run.
        RUN/checkpoints/latest.safetensors is written every epoch (atomically), with the last few
        iter-N checkpoints and best.safetensors (by validation Dice); RUN/metrics.jsonl holds one
        JSON object per epoch. Only one job may use a run folder at a time (RUN/.lock).
        SIGTERM, SIGINT or SIGUSR1 (the one mpirun passes on without killing the ranks): all
        ranks finish the current step, rank 0 writes latest, and the job exits with status 75;
        continue with --resume. A diverging run (non-finite loss or
        gradient) stops with status 1 before its weights change.
        """)

    @Option(help: "Preprocessed data set folder (ifcn preprocess output).") var data: String
    @Option(help: "Run folder for checkpoints and metrics.") var output: String
    @Option(help: "Network variant.") var variant: Variant = .paper
    @Option(help: "Channels C.") var channels: Int = 64
    @Option(help: "Patch size P (power of two >= 16).") var patch: Int = 128
    @Option(help: "Total iterations.") var iterations: Int = 25_000
    @Option(name: .customLong("iters-per-epoch"), help: "Iterations per epoch (validation + checkpoint).") var itersPerEpoch: Int = 500
    @Option(help: "Learning rate.") var lr: Float = 1e-3
    @Option(name: .customLong("lr-steps"), help: "Iterations after which the learning rate drops tenfold, e.g. 10000,20000.") var lrSteps: String?
    @Option(name: .customLong("lr-scaling"),
            help: "How the learning rate follows the number of ranks N (global batch N): none, linear (x N) or sqrt (x sqrt(N)).")
    var lrScaling: LearningRateScaling = .none
    @Option(name: .customLong("warmup-iterations"),
            help: "Iterations over which the learning rate rises linearly from --lr to its scaled value.")
    var warmupIterations: Int = 0
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Compute threads per rank (default: IFCN_THREADS, else cores / ranks on the node).") var threads: Int?
    @Option(name: .customLong("val-cases"), help: "Validate on at most N validation cases.") var valCases: Int?
    @Flag(help: "Continue from RUN/checkpoints/latest.safetensors.") var resume = false
    @Option(help: ArgumentHelp("Augmentations, comma-separated from " + Augmentation.allCases.map(\.rawValue).joined(separator: ",")
                               + " (each with probability 0.5; parameters in mm, docs/ACCURACY.md). (default: "
                               + Augmentation.allCases.filter(Augmentation.defaults.contains).map(\.rawValue).joined(separator: ",") + ")"),
            transform: AugmentationList.init(parsing:))
    var augment: AugmentationList = .defaults
    @Flag(name: .customLong("no-augment"), help: "Disable augmentation.") var noAugment = false
    @Option(help: "Checkpoints to keep besides latest and best.") var keep: Int = 3
    @Option(name: .customLong("progress-seconds"), help: "Seconds between progress lines.") var progressSeconds: Double = 10
    @Option(name: .customLong("collective-timeout"),
            help: "Seconds a rank waits for the others in a training step before the job ends naming the ranks that did not answer.")
    var collectiveTimeout: Double = 300
    @Option(help: ArgumentHelp("How gradients are averaged across ranks: nccl (on each GPU, no host copy; needs libnccl.so.2 "
                               + "and one GPU per rank), mpi (through host memory), or auto (nccl where it can run, else mpi)."))
    var allreduce: AllreduceMethod = .auto
    @OptionGroup var compute: BackendOptions
    @Option(name: .customLong("inject-failure"), help: .hidden) var injectFailure: String?
    @Option(name: .customLong("inject-signal"), help: .hidden) var injectSignal: String?
    @Option(name: .customLong("inject-device-failure"), help: .hidden) var injectDeviceFailure: String?
    @Option(name: .customLong("sample-rank"), help: .hidden) var sampleRank: Int?
    @Option(name: .customLong("dump-gradients"), help: .hidden) var dumpGradients: String?
    @Option(name: .customLong("dump-weights"), help: .hidden) var dumpWeights: String?

    func run() throws {
        var o = TrainingOptions(dataDir: data, outputDir: output)
        o.variant = variant; o.channels = channels; o.patch = patch; o.iterations = iterations
        o.iterationsPerEpoch = itersPerEpoch; o.learningRate = lr; o.seed = seed; o.threads = threads
        o.learningRateScaling = lrScaling; o.warmupIterations = warmupIterations; o.allreduce = allreduce
        o.validationCases = valCases; o.resume = resume;  o.keepCheckpoints = keep
        o.progressInterval = progressSeconds; o.collectiveTimeout = collectiveTimeout
        do { o.backend = try Backends.resolve(compute.backend) } catch { throw CLIError("\(error)") }
        if let m = compute.gpuMath { o.gpuMath = m }
        if let l = compute.gpuLayout { o.gpuLayout = l }
        if let a = compute.gpuActivations { o.gpuActivations = a }
        if let s = lrSteps {
            let steps = s.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard steps.allSatisfy({ $0 != nil }) else { throw ValidationError("--lr-steps must be integers like 10000,20000") }
            o.learningRateSteps = steps.compactMap { $0 }
        }
        o.augmentations = noAugment ? [] : augment.augmentations
        o.testHooks.sampleRank = sampleRank
        o.testHooks.dumpGradients = dumpGradients
        o.testHooks.dumpWeights = dumpWeights
        if let f = injectFailure {
            let p = f.split(separator: ":").compactMap { Int($0) }
            guard p.count == 2 else { throw ValidationError("--inject-failure RANK:ITERATION") }
            o.testHooks.dieAt = (p[0], p[1])
        }
        if let f = injectDeviceFailure {
            let p = f.split(separator: ":").compactMap { Int($0) }
            guard p.count == 2 else { throw ValidationError("--inject-device-failure RANK:ITERATION") }
            o.testHooks.deviceFailureAt = (p[0], p[1])
        }
        if let f = injectSignal {
            let p = f.split(separator: ":").map(String.init)
            let names: [String: Int32] = ["TERM": SIGTERM, "INT": SIGINT, "USR1": SIGUSR1, "STOP": SIGSTOP]
            guard p.count == 3, let r = Int(p[0]), let i = Int(p[1]), let sig = names[p[2]] else {
                throw ValidationError("--inject-signal RANK:ITERATION:TERM|INT|STOP")
            }
            o.testHooks.raiseAt = (r, i, sig)
        }
        do { try o.validate() } catch { throw CLIError("\(error)") }
        let comm: Communicator
        do { comm = try Communicator.initialize() } catch { throw CLIError("MPI: \(error)") }
        let recorder = ValidationRecorder(run: RunDirectory(path: o.outputDir), dataDir: o.dataDir)
        let trainer = Trainer(options: o, communicator: comm, validator: segmentationValidator(recorder: recorder))
        trainer.afterEpoch = { [o] end in  // RUN/report.html, current after every epoch
            do { try RunReport.epochEnded(end, options: o) } catch { StandardError.write("warning: report: \(error)") }
        }
        do {
            if case .stopped = try trainer.run() {
                comm.finalize()
                throw ExitCode(StopSignal.exitCode)
            }
        } catch let code as ExitCode {
            throw code
        } catch {
            if let e = error as? TrainingError, e.collective {
                // every rank stopped on the same error: report once, leave MPI cleanly
                if comm.isRoot { StandardError.write("error: \(e)") }
                comm.finalize()
                throw ExitCode(1)
            }
            // one rank failed alone: end the whole job instead of leaving the others waiting
            comm.abort(code: 1, message: "\(error)")
        }
        comm.finalize()
    }
}

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
        JSON object per epoch.
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
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Compute threads per rank (default: IFCN_THREADS, else cores / ranks on the node).") var threads: Int?
    @Option(name: .customLong("val-cases"), help: "Validate on at most N validation cases.") var valCases: Int?
    @Flag(help: "Continue from RUN/checkpoints/latest.safetensors.") var resume = false
    @Option(help: "Augmentations, comma-separated from elastic,blur,noise,crop (each with probability 0.5). (default: elastic,blur,noise,crop)",
            transform: AugmentationList.init(parsing:))
    var augment: AugmentationList = .all
    @Flag(name: .customLong("no-augment"), help: "Disable augmentation.") var noAugment = false
    @Option(help: "Checkpoints to keep besides latest and best.") var keep: Int = 3
    @Option(name: .customLong("progress-seconds"), help: "Seconds between progress lines.") var progressSeconds: Double = 10
    @OptionGroup var compute: BackendOptions
    @Option(name: .customLong("inject-failure"), help: .hidden) var injectFailure: String?
    @Option(name: .customLong("sample-rank"), help: .hidden) var sampleRank: Int?
    @Option(name: .customLong("dump-gradients"), help: .hidden) var dumpGradients: String?
    @Option(name: .customLong("dump-weights"), help: .hidden) var dumpWeights: String?

    func run() throws {
        var o = TrainingOptions(dataDir: data, outputDir: output)
        o.variant = variant; o.channels = channels; o.patch = patch; o.iterations = iterations
        o.iterationsPerEpoch = itersPerEpoch; o.learningRate = lr; o.seed = seed; o.threads = threads
        o.validationCases = valCases; o.resume = resume;  o.keepCheckpoints = keep
        o.progressInterval = progressSeconds
        do { o.backend = try Backends.resolve(compute.backend) } catch { throw CLIError("\(error)") }
        if let m = compute.gpuMath { o.gpuMath = m }
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
        let comm: Communicator
        do { comm = try Communicator.initialize() } catch { throw CLIError("MPI: \(error)") }
        let recorder = ValidationRecorder(run: RunDirectory(path: o.outputDir), dataDir: o.dataDir)
        let trainer = Trainer(options: o, communicator: comm, validator: segmentationValidator(recorder: recorder))
        trainer.afterEpoch = { [o] end in  // RUN/report.html, current after every epoch
            do { try RunReport.epochEnded(end, options: o) } catch { StandardError.write("warning: report: \(error)") }
        }
        do {
            try trainer.run()
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

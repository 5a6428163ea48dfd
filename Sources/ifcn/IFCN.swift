import ArgumentParser

@main
struct IFCN: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ifcn",
        abstract: "Iterative FCN for vertebra segmentation in CT: preprocess, train (MPI), segment, evaluate.",
        subcommands: [
            SynthCommand.self, PreprocessCommand.self, StoreCommand.self,
            TrainCommand.self, SegmentCommand.self, EvaluateCommand.self, ReportCommand.self,
            BenchCommand.self, CheckReferenceCommand.self, MPICheckCommand.self, DevicesCommand.self, CheckBackendsCommand.self,
        ])
}

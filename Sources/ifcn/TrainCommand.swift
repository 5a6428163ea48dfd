import ArgumentParser

// Placeholder until the owning module lands; replaced by the real command.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train")
    func run() throws { throw ValidationError("train is not built yet") }
}

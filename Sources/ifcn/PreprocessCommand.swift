import ArgumentParser

// Placeholder until the owning module lands; replaced by the real command.
struct PreprocessCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "preprocess")
    func run() throws { throw ValidationError("preprocess is not built yet") }
}

import ArgumentParser

// Placeholder until the owning module lands; replaced by the real command.
struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "evaluate")
    func run() throws { throw ValidationError("evaluate is not built yet") }
}

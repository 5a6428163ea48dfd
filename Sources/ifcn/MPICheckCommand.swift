import ArgumentParser

// Placeholder until the owning module lands; replaced by the real command.
struct MPICheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "m-p-i-check")
    func run() throws { throw ValidationError("m-p-i-check is not built yet") }
}

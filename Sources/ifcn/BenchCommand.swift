import ArgumentParser

// Placeholder until the owning module lands; replaced by the real command.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench")
    func run() throws { throw ValidationError("bench is not built yet") }
}

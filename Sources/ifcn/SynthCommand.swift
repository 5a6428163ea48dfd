import ArgumentParser

// Placeholder until the owning module lands; replaced by the real command.
struct SynthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "synth")
    func run() throws { throw ValidationError("synth is not built yet") }
}

import ArgumentParser

// Placeholder until the owning module lands; replaced by the real command.
struct CheckReferenceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "check-reference")
    func run() throws { throw ValidationError("check-reference is not built yet") }
}

import ArgumentParser

// Placeholder until the owning module lands; replaced by the real command.
struct SegmentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "segment")
    func run() throws { throw ValidationError("segment is not built yet") }
}

import ArgumentParser

/// A user-facing error: printed as "error: <message>", exit code 1.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

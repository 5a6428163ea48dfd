/// An error about one file: its path and what is wrong with it, e.g. "cannot write: No space left on device".
/// Printed as "path: message".
public struct FileError: Error, CustomStringConvertible {
    /// The file concerned.
    public let path: String
    /// What is wrong, without the path.
    public let message: String

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
}

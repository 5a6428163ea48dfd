import Foundation

/// Diagnostics on the standard error stream.
public enum StandardError {
    /// Writes `line` and a newline to stderr at once (unbuffered, one write).
    public static func write(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}

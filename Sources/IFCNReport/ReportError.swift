import Foundation
import IFCNSupport

/// A report failure, with a message that names the file and the problem.
public struct ReportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Writes `data` to `path` atomically (AtomicFile), as a `ReportError` naming the file on failure.
func writeFile(_ data: Data, to path: String) throws {
    do {
        try AtomicFile.write(data, to: path)
    } catch let error as FileError {
        throw ReportError(error.description)
    }
}

import CMPIShim

/// An MPI call that failed: which operation, the MPI (or shim) error code and its message.
public struct MPIError: Error, CustomStringConvertible, Sendable {
    /// The operation that failed, e.g. "allreduce(sum, float)".
    public let operation: String
    /// The MPI error code, or one of the shim's negative IFCN_MPI_ERR_* codes.
    public let code: Int32
    /// Human-readable message for `code` (from MPI_Error_string for MPI codes).
    public let message: String

    /// Builds an error for `code`, looking up its message.
    public init(operation: String, code: Int32) {
        self.operation = operation
        self.code = code
        self.message = MPIError.message(for: code)
    }

    /// Builds an error with an explicit message (for failures detected above MPI, e.g. size mismatches).
    public init(operation: String, message: String) {
        self.operation = operation
        self.code = IFCN_MPI_ERR_ARGUMENT
        self.message = message
    }

    public var description: String { "MPI \(operation) failed (code \(code)): \(message)" }

    /// The message MPI (or the shim) gives for an error code.
    public static func message(for code: Int32) -> String {
        shimString(capacity: 1024) { ifcn_mpi_error_string(code, $0, $1) }
    }

    /// Throws an `MPIError` unless `code` is success.
    static func check(_ code: Int32, _ operation: @autoclosure () -> String) throws {
        if code != IFCN_MPI_SUCCESS { throw MPIError(operation: operation(), code: code) }
    }
}

/// A NUL-terminated string that a shim function writes into a buffer of `capacity` bytes.
func shimString(capacity: Int, _ fill: (UnsafeMutablePointer<CChar>?, Int32) -> Void) -> String {
    var buffer = [CChar](repeating: 0, count: capacity)
    buffer.withUnsafeMutableBufferPointer { fill($0.baseAddress, Int32(capacity)) }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

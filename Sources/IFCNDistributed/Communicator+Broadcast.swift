import Foundation

extension Communicator {
    /// Returns rank `root`'s `string` on every rank (other ranks' arguments are ignored).
    public func broadcast(_ string: String, root: Int = 0) throws -> String {
        let data = try broadcast(Data(string.utf8), root: root)
        return String(decoding: data, as: UTF8.self)
    }

    /// Returns rank `root`'s `data` on every rank (other ranks' arguments are ignored).
    public func broadcast(_ data: Data, root: Int = 0) throws -> Data {
        var bytes = [UInt8](data)
        try broadcast(&bytes, root: root)
        return Data(bytes)
    }

    /// Replaces `values` on every rank with rank `root`'s array; the length travels too,
    /// so other ranks may pass an array of any length.
    public func broadcast<T: BitwiseCopyable>(_ values: inout [T], root: Int = 0) throws {
        try checkRoot(root, "broadcast")
        var length = Int64(values.count)
        try broadcast(&length, bytes: MemoryLayout<Int64>.size, root: root)
        guard length >= 0, length <= Int64(Int.max / max(MemoryLayout<T>.stride, 1)) else {
            throw MPIError(operation: "broadcast", message: "rank \(root) sent an invalid length \(length)")
        }
        if rank != root && values.count != Int(length) {
            values = [T](repeating: values.first ?? zeroValue(T.self), count: Int(length))
        }
        let bytes = values.count * MemoryLayout<T>.stride
        try values.withUnsafeMutableBytes { raw in
            guard let base = raw.baseAddress else { return }
            try broadcast(base, bytes: bytes, root: root)
        }
    }

    /// Replaces `value` on every rank with rank `root`'s value.
    public func broadcast<T: BitwiseCopyable>(_ value: inout T, root: Int = 0) throws {
        try checkRoot(root, "broadcast")
        try withUnsafeMutableBytes(of: &value) { raw in
            guard let base = raw.baseAddress else { return }
            try broadcast(base, bytes: raw.count, root: root)
        }
    }
}

/// An all-zero-bits value of a bitwise-copyable type (a placeholder that the broadcast overwrites).
private func zeroValue<T: BitwiseCopyable>(_ type: T.Type) -> T {
    let raw = UnsafeMutableRawPointer.allocate(byteCount: max(MemoryLayout<T>.size, 1),
                                               alignment: MemoryLayout<T>.alignment)
    defer { raw.deallocate() }
    raw.initializeMemory(as: UInt8.self, repeating: 0, count: max(MemoryLayout<T>.size, 1))
    return raw.load(as: T.self)
}

import Foundation

/// Whole-file output that never leaves a half-written file under the final name: the content goes to a
/// temporary file in the destination's folder, is flushed to disk (fsync), and is then renamed over the
/// destination in one step. Readers see the old file or the new one, never a mix. Failures throw a
/// `FileError` naming the destination, with the system's error text; no temporary file is left behind.
public enum AtomicFile {
    /// A fresh temporary path beside `path` (hidden, with a random token) that ends in `ext`, for writers
    /// that choose the format by the file name.
    public static func temporaryPath(for path: String, keepingExtension ext: String = "") -> String {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        return dir + "/." + url.lastPathComponent + ".tmp-" + UUID().uuidString.prefix(8) + ext
    }

    /// True for the name (last path component) of a temporary file made by `temporaryPath`: one that a
    /// killed writer left behind when it is found while no writer runs.
    public static func isTemporaryName(_ name: String) -> Bool {
        name.hasPrefix(".") && name.contains(".tmp-")
    }

    /// Makes `path` an independent copy of the file at `source` (its own blocks, not a link: damage to
    /// one leaves the other intact), atomically like `write`.
    public static func copy(from source: String, to path: String) throws {
        try write(to: path) { temp in
            let input = open(source, O_RDONLY)
            guard input >= 0 else { throw FileError(path: source, message: "cannot read: \(errnoText())") }
            defer { close(input) }
            let output = open(temp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            guard output >= 0 else { throw FileError(path: path, message: "cannot write: \(errnoText()) (creating \(temp))") }
            defer { close(output) }
            var buffer = [UInt8](repeating: 0, count: 1 << 22)
            while true {
                let n = buffer.withUnsafeMutableBytes { Foundation.read(input, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n < 0 { throw FileError(path: source, message: "cannot read: \(errnoText())") }
                if n == 0 { break }
                try buffer.withUnsafeBytes { try writeAll(output, $0.baseAddress!, n, path: path) }
            }
        }
    }

    /// Writes `data` to `path` atomically (temporary file, fsync, rename).
    public static func write(_ data: Data, to path: String) throws {
        let temp = temporaryPath(for: path)
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else {
            throw FileError(path: path, message: "cannot write: \(errnoText()) (creating \(temp))")
        }
        var failure: String?
        do {
            try data.withUnsafeBytes { raw in
                if raw.count > 0 { try writeAll(fd, raw.baseAddress!, raw.count, path: path) }
            }
        } catch let error as FileError {
            failure = error.message
        }
        if failure == nil && fsync(fd) != 0 { failure = "cannot write: \(errnoText()) (fsync)" }
        close(fd)
        if let failure {
            unlink(temp)
            throw FileError(path: path, message: failure)
        }
        try moveIntoPlace(temp, to: path)
    }

    /// Creates `path` atomically through a writer that takes a file name: `body` writes the temporary path it
    /// is given (ending in `ext`), which is then flushed and renamed to `path`. An error thrown by `body`
    /// is rethrown as it is, after the temporary file is removed.
    public static func write(to path: String, keepingExtension ext: String = "",
                             using body: (_ temporaryPath: String) throws -> Void) throws {
        let temp = temporaryPath(for: path, keepingExtension: ext)
        do {
            try body(temp)
        } catch {
            unlink(temp)
            throw error
        }
        let fd = open(temp, O_RDONLY)
        guard fd >= 0, fsync(fd) == 0 else {
            let failure = "cannot write: \(errnoText()) (fsync)"
            if fd >= 0 { close(fd) }
            unlink(temp)
            throw FileError(path: path, message: failure)
        }
        close(fd)
        try moveIntoPlace(temp, to: path)
    }

    /// Renames the finished file `temp` over `path` (replacing it), in one step, and flushes the folder.
    /// On failure `temp` is removed.
    public static func moveIntoPlace(_ temp: String, to path: String) throws {
        guard rename(temp, path) == 0 else {
            let reason = errnoText()
            unlink(temp)
            throw FileError(path: path, message: "cannot move the finished file into place: \(reason)")
        }
        let dir = open(URL(fileURLWithPath: path).deletingLastPathComponent().path, O_RDONLY)
        if dir >= 0 {
            fsync(dir)
            close(dir)
        }
    }

    /// Writes `count` bytes at `bytes` to `fd`, retrying short writes and EINTR.
    private static func writeAll(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int, path: String) throws {
        var done = 0
        while done < count {
            let n = Foundation.write(fd, bytes + done, count - done)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { throw FileError(path: path, message: "cannot write: \(errnoText())") }
            done += n
        }
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}

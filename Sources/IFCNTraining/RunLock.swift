import Foundation

/// One `ifcn train` job per run folder: rank 0 holds an exclusive `flock` on RUN/.lock for the whole
/// run, and the file names the holder as "host pid". The kernel drops the lock when the holder ends,
/// however it ends, so a second job is refused only while the first one lives; a file that still names
/// a holder but is not locked was left by a job that died, and is taken over with a note.
public final class RunLock {
    public let path: String
    /// The holder named by a lock file that nobody held ("host pid"), when there was one.
    public let staleHolder: String?
    private var descriptor: Int32

    /// Takes the lock of `folder` (which must exist), or throws naming the job that holds it.
    public init(folder: String) throws {
        path = folder + "/.lock"
        descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw TrainingError("\(path): cannot open the run lock: \(String(cString: strerror(errno)))")
        }
        if flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            let busy = errno == EWOULDBLOCK
            let reason = String(cString: strerror(errno))
            let holder = Self.read(descriptor)
            close(descriptor)
            guard busy else { throw TrainingError("\(path): cannot lock the run folder: \(reason)") }
            throw TrainingError("\(folder) is in use by another ifcn train (\(Self.describe(holder))): "
                                + "wait for it to end, or give another --output")
        }
        let previous = Self.read(descriptor)
        staleHolder = previous.isEmpty ? nil : previous
        let me = "\(Self.hostName()) \(getpid())\n"
        let written = ftruncate(descriptor, 0) == 0 && me.withCString { pwrite(descriptor, $0, strlen($0), 0) } == me.utf8.count
        guard written, fsync(descriptor) == 0 else {
            let reason = String(cString: strerror(errno))
            close(descriptor)
            throw TrainingError("\(path): cannot write the run lock: \(reason)")
        }
    }

    deinit { release() }

    /// Empties the file and drops the lock (a clean end leaves no holder named).
    public func release() {
        guard descriptor >= 0 else { return }
        _ = ftruncate(descriptor, 0)
        flock(descriptor, LOCK_UN)
        close(descriptor)
        descriptor = -1
    }

    /// The note for a lock left by a job that died.
    public var staleNote: String? {
        staleHolder.map { "\(path): taking over a stale lock of \(Self.describe($0)), which no longer holds it (it ended without cleaning up)" }
    }

    static func describe(_ holder: String) -> String {
        let parts = holder.split(separator: " ")
        guard parts.count == 2 else { return holder.isEmpty ? "holder unknown" : "holder \(holder)" }
        return "host \(parts[0]), pid \(parts[1])"
    }

    private static func read(_ fd: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        return String(decoding: buffer.prefix(max(n, 0)), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private static func hostName() -> String {
        var name = [CChar](repeating: 0, count: 256)
        guard gethostname(&name, name.count - 1) == 0 else { return "unknown-host" }
        return String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

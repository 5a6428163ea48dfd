import Foundation
import IFCNEngine
import IFCNSupport

/// A training run's folder: checkpoints/{latest,best,iter-N}.safetensors and metrics.jsonl.
public struct RunDirectory: Sendable {
    public let path: String
    public var checkpoints: String { path + "/checkpoints" }
    public var latest: String { checkpoints + "/latest.safetensors" }
    public var best: String { checkpoints + "/best.safetensors" }
    public var metrics: String { path + "/metrics.jsonl" }
    public func iterationCheckpoint(_ i: Int) -> String { checkpoints + String(format: "/iter-%07d.safetensors", i) }

    public init(path: String) { self.path = path }

    /// Creates the folders and proves they are writable with room for `neededBytes`;
    /// errors say what is wrong before any training starts.
    public func prepare(neededBytes: Int) throws {
        let fm = FileManager.default
        do {
            try fm.createDirectory(atPath: checkpoints, withIntermediateDirectories: true)
        } catch {
            throw TrainingError("\(path): cannot create the output folder (\(error.localizedDescription))")
        }
        let probe = checkpoints + "/.write-probe-\(getpid())"
        guard fm.createFile(atPath: probe, contents: Data(count: 4096)) else {
            throw TrainingError("\(checkpoints): output folder is not writable")
        }
        try? fm.removeItem(atPath: probe)
        var st = statvfs()
        if statvfs(checkpoints, &st) == 0 {
            let free = Int(st.f_bavail) * Int(st.f_frsize)
            if free < neededBytes {
                throw TrainingError("\(checkpoints): disk full: only \(formatBytes(free)) free, checkpoints need about \(formatBytes(neededBytes))")
            }
        }
    }

    /// After `latest` was written: keep a copy as iter-N (a separate file, so damage to one does not
    /// reach the other; none when `keep` is 0), prune old ones, and copy it to `best` when it is the best
    /// so far. Every name flips atomically.
    public func archiveLatest(iteration: Int, isBest: Bool, keep: Int) throws {
        let fm = FileManager.default
        do {
            if keep > 0 { try AtomicFile.copy(from: latest, to: iterationCheckpoint(iteration)) }
            if isBest { try AtomicFile.copy(from: latest, to: best) }
        } catch let error as FileError {
            throw TrainingError(error.description)
        }
        for name in iterationCheckpointNames().dropFirst(keep) { try? fm.removeItem(atPath: checkpoints + "/" + name) }
    }

    /// The iter-N checkpoints' file names, newest first.
    public func iterationCheckpointNames() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: checkpoints)) ?? []
        return names.filter { $0.hasPrefix("iter-") && $0.hasSuffix(".safetensors") }.sorted(by: >)
    }

    /// Removes what killed writes left in the checkpoint folder (temporary files of atomic writes, write
    /// probes) and returns their names. Only while this job holds the run lock: no other writer runs.
    public func removeStaleTemporaries() -> [String] {
        let fm = FileManager.default
        let names = (try? fm.contentsOfDirectory(atPath: checkpoints)) ?? []
        let stale = names.filter { AtomicFile.isTemporaryName($0) || $0.hasPrefix(".write-probe-") }.sorted()
        for name in stale { try? fm.removeItem(atPath: checkpoints + "/" + name) }
        return stale
    }

    /// Appends one epoch's metrics as a JSON line, flushed to disk.
    public func appendMetrics(_ epoch: EpochMetrics) throws {
        let data = try epoch.jsonLine() + Data("\n".utf8)
        let fd = open(metrics, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        guard fd >= 0 else { throw TrainingError("\(metrics): cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let ok = data.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) == $0.count }
        guard ok, fsync(fd) == 0 else { throw TrainingError("\(metrics): write failed: \(String(cString: strerror(errno)))") }
    }
}

func formatBytes(_ n: Int) -> String {
    n >= 1 << 30 ? String(format: "%.1f GiB", Double(n) / Double(1 << 30))
        : n >= 1 << 20 ? String(format: "%.1f MiB", Double(n) / Double(1 << 20)) : "\(n / 1024) KiB"
}

public struct TrainingError: Error, CustomStringConvertible {
    public let description: String
    /// Every rank raised this same error together (no rank is left waiting).
    public var collective = false
    public init(_ d: String, collective: Bool = false) { description = d; self.collective = collective }
}

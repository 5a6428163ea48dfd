import Foundation

/// A per-process scratch folder for fuzz inputs the readers take by path (in /dev/shm when there is one), with
/// a fixed companion data file (`d.raw`, 64 bytes) that MetaImage headers may name.
public enum ScratchFile {
    public static let folder: String = {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm/" : NSTemporaryDirectory()
        let dir = base + "ifcn-fuzz-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let companion = [UInt8]((0..<64).map { UInt8($0) })
        companion.withUnsafeBytes { write(dir + "/d.raw", $0.baseAddress!, $0.count) }
        return dir
    }()

    /// Writes the input to `folder/input<ext>` with plain POSIX calls (no atomic rename, no sync: this runs
    /// thousands of times a second) and returns the path.
    public static func write(_ start: UnsafeRawPointer, _ count: Int, ext: String) -> String {
        let path = folder + "/input" + ext
        write(path, start, count)
        return path
    }

    private static func write(_ path: String, _ start: UnsafeRawPointer, _ count: Int) {
        guard let f = fopen(path, "wb") else { fatalError("cannot write \(path)") }
        if count > 0 { _ = fwrite(start, 1, count, f) }
        fclose(f)
    }
}

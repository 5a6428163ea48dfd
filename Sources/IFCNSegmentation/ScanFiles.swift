import Foundation
import IFCNVolume

/// Finding the scans to segment and naming their outputs.
public enum ScanFiles {
    /// File-name stem endings of label maps, which are not scans.
    public static let labelSuffixes = ["_label", "_seg", "_seg-vert_msk", "_msk"]

    /// `path` itself when it is a file; for a directory every readable image file in it (sorted by name),
    /// without label maps and hidden files.
    public static func list(_ path: String) throws -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw VolumeError(path: path, message: "no such file or directory")
        }
        guard isDirectory.boolValue else { return [path] }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: path)
        } catch {
            throw VolumeError(path: path, message: "cannot list the directory: \(error.localizedDescription)")
        }
        let scans = names.sorted().filter { name in
            guard !name.hasPrefix("."), let (stem, _) = VolumeIO.splitExtension(name) else { return false }
            return !labelSuffixes.contains { stem.lowercased().hasSuffix($0) }
        }
        guard !scans.isEmpty else {
            throw VolumeError(path: path, message: "no scans (.nii, .nii.gz, .mhd, .mha) in the directory")
        }
        let paths = scans.map { URL(fileURLWithPath: path).appendingPathComponent($0).path }
        // Two scans with one case name (c.mhd and c.nii.gz, or c.nii.gz and c_ct.nii.gz) would write one output.
        var byCase: [String: String] = [:]
        for p in paths {
            let name = caseName(p)
            if let other = byCase[name] {
                throw VolumeError(path: path, message: "\(URL(fileURLWithPath: other).lastPathComponent) and "
                                  + "\(URL(fileURLWithPath: p).lastPathComponent) are both case '\(name)' and would both be "
                                  + "written to \(name).nii.gz; rename or move one of them")
            }
            byCase[name] = p
        }
        return paths
    }

    /// Case name of a scan: the file name without its extension and without a `_ct` suffix.
    public static func caseName(_ path: String) -> String {
        let file = URL(fileURLWithPath: path).lastPathComponent
        var stem = VolumeIO.splitExtension(file)?.stem ?? file
        if stem.lowercased().hasSuffix("_ct"), stem.count > 3 { stem = String(stem.dropLast(3)) }
        return stem
    }
}

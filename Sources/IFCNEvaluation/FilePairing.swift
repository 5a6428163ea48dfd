import Foundation

/// Case names from file names: volume extensions and the usual image/label suffixes are stripped.
public enum CaseNaming {
    /// Recognised volume file extensions (matched case-insensitively).
    public static let extensions = [".nii.gz", ".nii", ".mhd", ".mha"]
    /// Suffixes stripped after the extension (at most one, longest first).
    public static let suffixes = ["_seg-vert_msk", "_label", "_seg", "_ct"]
    /// Suffixes that mark a label file; preferred when a directory holds several files of one case.
    static let labelSuffixes = ["_seg-vert_msk", "_label", "_seg"]

    /// The file name without its volume extension; nil when it has none of `extensions`.
    static func stem(ofFile path: String) -> String? {
        let name = (path as NSString).lastPathComponent
        let lower = name.lowercased()
        guard let ext = extensions.first(where: { lower.hasSuffix($0) }), name.count > ext.count else { return nil }
        return String(name.dropLast(ext.count))
    }

    /// Case name of a volume file ("sub-verse005_seg-vert_msk.nii.gz" -> "sub-verse005",
    /// "case3_label.mhd" -> "case3"); nil when the file is not a volume file.
    public static func caseName(forFile path: String) -> String? {
        guard let stem = stem(ofFile: path) else { return nil }
        for suffix in suffixes where stem.hasSuffix(suffix) && stem.count > suffix.count {
            return String(stem.dropLast(suffix.count))
        }
        return stem
    }

    /// True when the file name ends in one of `labelSuffixes` before its extension.
    static func isLabelFile(_ path: String) -> Bool {
        guard let stem = stem(ofFile: path) else { return false }
        return labelSuffixes.contains { stem.hasSuffix($0) }
    }
}

/// A reference file and the prediction file of the same case.
public struct FilePair: Equatable, Sendable {
    public var name: String
    public var reference: String
    public var prediction: String

    public init(name: String, reference: String, prediction: String) {
        self.name = name
        self.reference = reference
        self.prediction = prediction
    }
}

/// The cases to evaluate, and prediction files that have no reference.
public struct FilePairing: Equatable, Sendable {
    /// Pairs sorted by case name.
    public var pairs: [FilePair]
    /// Prediction files whose case has no reference (to be reported as a warning), sorted.
    public var unpairedPredictions: [String]

    public init(pairs: [FilePair], unpairedPredictions: [String]) {
        self.pairs = pairs
        self.unpairedPredictions = unpairedPredictions
    }
}

/// Pairs reference and prediction files by case name. Non-volume files are ignored. When several files of one
/// side map to the same case, the one with a label suffix (`_seg-vert_msk`, `_label`, `_seg`) is used (so a folder
/// holding both `X_ct.nii.gz` and `X_seg-vert_msk.nii.gz` works); otherwise that is an error naming the files.
/// Throws when a reference has no prediction, naming the reference file.
public func pairCases(referenceFiles: [String], predictionFiles: [String]) throws -> FilePairing {
    let references = try filesByCase(referenceFiles, side: "reference")
    let predictions = try filesByCase(predictionFiles, side: "prediction")
    guard !references.isEmpty else {
        throw EvaluationError("no reference volumes (\(CaseNaming.extensions.joined(separator: ", "))) found")
    }
    var pairs: [FilePair] = []
    for (name, reference) in references.sorted(by: { $0.key < $1.key }) {
        guard let prediction = predictions[name] else {
            throw EvaluationError("\(reference): no prediction for case \(name)")
        }
        pairs.append(FilePair(name: name, reference: reference, prediction: prediction))
    }
    let unpaired = predictions.filter { references[$0.key] == nil }.values.sorted()
    return FilePairing(pairs: pairs, unpairedPredictions: unpaired)
}

/// Pairs the files given on the command line: two files form one case (named after the reference), two
/// directories are paired by case name (`pairCases(referenceFiles:predictionFiles:)`).
public func pairCases(reference: String, prediction: String) throws -> FilePairing {
    let referenceIsDirectory = try isDirectory(reference), predictionIsDirectory = try isDirectory(prediction)
    switch (referenceIsDirectory, predictionIsDirectory) {
    case (false, false):
        let name = CaseNaming.caseName(forFile: reference) ?? (reference as NSString).lastPathComponent
        return FilePairing(pairs: [FilePair(name: name, reference: reference, prediction: prediction)],
                           unpairedPredictions: [])
    case (true, true):
        return try pairCases(referenceFiles: listDirectory(reference), predictionFiles: listDirectory(prediction))
    default:
        throw EvaluationError("--reference \(reference) and --prediction \(prediction) must both be files or both "
                              + "be directories")
    }
}

/// Groups volume files by case name, resolving duplicates in favour of label files.
private func filesByCase(_ files: [String], side: String) throws -> [String: String] {
    var groups: [String: [String]] = [:]
    for file in files {
        if let name = CaseNaming.caseName(forFile: file) { groups[name, default: []].append(file) }
    }
    var result: [String: String] = [:]
    for (name, group) in groups {
        let candidates = group.count > 1 ? group.filter(CaseNaming.isLabelFile) : group
        guard candidates.count == 1 else {
            throw EvaluationError("\(side) files \(group.sorted().joined(separator: ", ")) all belong to case \(name); "
                                  + "keep one label file per case")
        }
        result[name] = candidates[0]
    }
    return result
}

private func isDirectory(_ path: String) throws -> Bool {
    var directory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &directory) else {
        throw EvaluationError("\(path): no such file or directory")
    }
    return directory.boolValue
}

private func listDirectory(_ path: String) throws -> [String] {
    do {
        return try FileManager.default.contentsOfDirectory(atPath: path).map { (path as NSString).appendingPathComponent($0) }
    } catch {
        throw EvaluationError("\(path): cannot list directory (\(error.localizedDescription))")
    }
}

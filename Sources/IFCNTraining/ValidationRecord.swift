import Foundation
import IFCNEvaluation
import IFCNSupport
import IFCNVolume

/// RUN/validation/<epoch folder>/<case>.json: one validation case's evaluation and where its files are (the
/// preprocessed CT and reference, the predicted label map beside this file), for reports.
public struct ValidationRecord: Codable, Sendable {
    public var evaluation: CaseEvaluation
    public var image: String
    public var reference: String
    public var prediction: String
    public var iteration: Int?

    public init(evaluation: CaseEvaluation, image: String, reference: String, prediction: String, iteration: Int? = nil) {
        self.evaluation = evaluation; self.image = image; self.reference = reference; self.prediction = prediction
        self.iteration = iteration
    }
}

/// Writes each validated case's predicted label map and evaluation into RUN/validation/latest; rank 0 moves that
/// folder to RUN/validation/best when the epoch is the best so far (`RunDirectory.promoteValidation`).
/// Ranks on other nodes without a shared disk keep their cases in their own run folder.
public struct ValidationRecorder: Sendable {
    public let run: RunDirectory
    public let dataDir: String

    public init(run: RunDirectory, dataDir: String) {
        self.run = run
        self.dataDir = dataDir
    }

    public func record(name: String, prediction: LabelVolume, evaluation: CaseEvaluation) throws {
        let manifest = try DatasetManifest.load(from: dataDir)
        guard let entry = manifest.cases.first(where: { $0.name == name }) else {
            throw TrainingError("\(dataDir): case \(name) is not in \(DatasetManifest.fileName)")
        }
        let dir = run.validationLatest
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        } catch {
            throw TrainingError("\(dir): cannot create the validation folder (\(error.localizedDescription))")
        }
        let base = URL(fileURLWithPath: dataDir)
        let labelPath = dir + "/" + name + ".nii.gz"
        try VolumeIO.write(prediction, to: labelPath, as: prediction.fileType)
        let record = ValidationRecord(evaluation: evaluation, image: base.appendingPathComponent(entry.image).path,
                                      reference: base.appendingPathComponent(entry.label).path, prediction: labelPath)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        do {
            try AtomicFile.write(try encoder.encode(record), to: dir + "/" + name + ".json")
        } catch let error as FileError {
            throw TrainingError(error.description)
        }
    }
}

extension RunDirectory {
    /// The validation cases of the epoch just validated.
    public var validationLatest: String { path + "/validation/latest" }
    /// The validation cases of the best epoch so far.
    public var validationBest: String { path + "/validation/best" }
    /// The HTML report kept current during training.
    public var report: String { path + "/report.html" }

    /// Makes the latest validation folder the best one (the old best is removed; the label maps inside are
    /// renamed with their folder, so each record's `prediction` path is rewritten), stamping the iteration.
    public func promoteValidation(iteration: Int) throws {
        let fm = FileManager.default
        guard fm.fileExists(atPath: validationLatest) else { return }
        try? fm.removeItem(atPath: validationBest)
        do {
            try fm.moveItem(atPath: validationLatest, toPath: validationBest)
        } catch {
            throw TrainingError("\(validationBest): cannot move the validation results there (\(error.localizedDescription))")
        }
        let decoder = JSONDecoder(), encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        for name in (try? fm.contentsOfDirectory(atPath: validationBest)) ?? [] where name.hasSuffix(".json") {
            let file = validationBest + "/" + name
            guard let data = fm.contents(atPath: file), var record = try? decoder.decode(ValidationRecord.self, from: data) else {
                continue
            }
            record.prediction = validationBest + "/" + (record.prediction as NSString).lastPathComponent
            record.iteration = iteration
            try? AtomicFile.write(try encoder.encode(record), to: file)
        }
    }
}

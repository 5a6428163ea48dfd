import ArgumentParser
import IFCNEngine
import IFCNSegmentation
import IFCNTraining
import IFCNVolume

// Values of the command line that are parsed into types: a typo fails while the arguments are
// parsed, with the valid values in the message.

extension Variant: ExpressibleByArgument {}
extension CropMode: ExpressibleByArgument {}
extension DownsamplingFilter: ExpressibleByArgument {}
extension LabelResampling: ExpressibleByArgument {}
extension LearningRateScaling: ExpressibleByArgument {}
extension AllreduceMethod: ExpressibleByArgument {}

/// `preprocess --image-type`: the voxel types images may be written as.
enum ImageType: String, CaseIterable, ExpressibleByArgument {
    case float32, int16

    var voxelType: VoxelType {
        switch self {
        case .float32: return .float32
        case .int16: return .int16
        }
    }
}

/// `segment --overlap`: how the scans of a folder share the machine.
enum ScanOverlap: String, CaseIterable, ExpressibleByArgument {
    /// Scans in flight: the next scan is read and resampled, and the previous one's outputs written, while the
    /// network works on the current one (at most three scans in memory).
    case scans
    /// One scan at a time: read, resample, network, write, then the next (to measure what the overlap gains).
    case off
}

/// `train --augment elastic,blur`: a comma-separated set of augmentations. Read through
/// `@Option(transform: AugmentationList.init(parsing:))` rather than `ExpressibleByArgument`, whose
/// failable `init?(argument:)` cannot say which item is wrong.
struct AugmentationList: Sendable, Equatable {
    var augmentations: Set<Augmentation>

    static let defaults = AugmentationList(augmentations: Augmentation.defaults)

    init(augmentations: Set<Augmentation>) { self.augmentations = augmentations }

    /// Parses a comma-separated list; blanks around names and empty items are ignored, so "" is no augmentation.
    init(parsing text: String) throws {
        var chosen = Set<Augmentation>()
        for name in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !name.isEmpty {
            guard let a = Augmentation(rawValue: name) else {
                throw ValidationError("unknown augmentation '\(name)' (choose comma-separated from "
                                      + Augmentation.allCases.map(\.rawValue).joined(separator: ", ") + ")")
            }
            chosen.insert(a)
        }
        augmentations = chosen
    }
}

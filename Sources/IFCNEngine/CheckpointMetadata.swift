import IFCNSupport

/// The model description in a checkpoint's metadata, parsed strictly: a key that is present must hold a valid
/// value (a garbled `spacing_mm` is an error, not a silent default), and every number is bounded where it
/// enters (channels and patch by `NetworkConfig`, spacing by `ModelInfo.spacingRange`, intensity finite).
public enum CheckpointMetadata {
    /// The model of a checkpoint at `path` with metadata `m`. A file without `variant`, `channels` and `patch`
    /// (a plain PyTorch export) needs `override`; when both exist they must agree. `spacingMM` and `intensity`
    /// are used only where the metadata has none.
    public static func modelInfo(_ m: [String: String], path: String, override: NetworkConfig? = nil,
                                 spacingMM: Double? = nil, intensity: IntensityNormaliser? = nil) throws -> ModelInfo {
        func fail(_ s: String) -> EngineError { .checkpoint(path: path, message: s) }
        let shapeKeys = ["variant", "channels", "patch"]
        let present = shapeKeys.filter { m[$0] != nil }
        var config: NetworkConfig
        if present.isEmpty {
            guard let o = override else {
                throw fail("no ifcn metadata (variant, channels, patch): a plain PyTorch export needs --variant, --channels and --patch")
            }
            config = o
        } else {
            guard present.count == shapeKeys.count else {
                throw fail("metadata has \(present.joined(separator: ", ")) but not "
                           + shapeKeys.filter { m[$0] == nil }.joined(separator: ", "))
            }
            let v = m["variant"]!, c = m["channels"]!, p = m["patch"]!
            guard let variant = Variant(rawValue: v) else { throw fail("unknown variant \(quoted(v))") }
            guard let channels = Int(c) else { throw fail("metadata channels \(quoted(c)) is not a whole number") }
            guard let patch = Int(p) else { throw fail("metadata patch \(quoted(p)) is not a whole number") }
            do {
                config = try NetworkConfig(variant: variant, channels: channels, patch: patch)
            } catch let error as EngineError {
                if case .invalidConfig(let message) = error { throw fail(message) }
                throw error
            }
            if let o = override, o != config {
                throw fail("checkpoint holds \(config) but \(o) was asked for")
            }
        }
        let spacing: Double
        if let text = m["spacing_mm"] {
            guard let value = Double(text) else { throw fail("metadata spacing_mm \(quoted(text)) is not a number") }
            spacing = value
        } else {
            spacing = spacingMM ?? 1.0
        }
        if let problem = ModelInfo.spacingProblem(spacing) { throw fail(problem) }
        let norm: IntensityNormaliser
        do {
            norm = try m["intensity"].map(IntensityNormaliser.parse)
                ?? intensity ?? (config.variant == .paper ? .paper : .identity)
        } catch let error as EngineError {
            if case .invalidConfig(let message) = error { throw fail(message) }
            throw error
        }
        return ModelInfo(config: config, spacingMM: spacing, intensity: norm)
    }
}

extension ModelInfo {
    /// Voxel spacings (mm) a model may work at: CT is acquired at 0.1 to 10 mm; outside this range a value
    /// can only be a mistake (and a tiny one would make a canonical grid of billions of voxels).
    public static let spacingRange = 0.01...100.0

    /// Nil when `spacing` is a usable model spacing, else what is wrong with it (the value named `name`).
    public static func spacingProblem(_ spacing: Double, name: String = "spacing_mm") -> String? {
        spacingRange.contains(spacing) ? nil
            : "\(name) must be a number of mm in \(spacingRange.lowerBound)...\(spacingRange.upperBound), got \(spacing)"
    }
}

import IFCNEngine

/// The checkpoint-metadata parser: the input is `key=value` lines (the safetensors `__metadata__` strings), parsed
/// into a model description with and without a configuration given on the command line.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCheckpointMetadata(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let text = String(decoding: UnsafeRawBufferPointer(start: start, count: count), as: UTF8.self)
    var metadata: [String: String] = [:]
    for line in text.split(separator: "\n") {
        guard let eq = line.firstIndex(of: "=") else { continue }
        metadata[String(line[..<eq])] = String(line[line.index(after: eq)...])
    }
    _ = try? CheckpointMetadata.modelInfo(metadata, path: "input")
    let override = try? NetworkConfig(variant: .seed, channels: 4, patch: 32)
    _ = try? CheckpointMetadata.modelInfo(metadata, path: "input", override: override, spacingMM: 2, intensity: .identity)
    return 0
}

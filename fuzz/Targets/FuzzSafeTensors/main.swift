import FuzzSupport
import Foundation
import IFCNEngine

/// safetensors reader and checkpoint loading: the input is a whole .safetensors file. Every tensor it declares is
/// decoded, and the file is loaded as a checkpoint (metadata parsed, tensors gathered and checked).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensors(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    guard let file = try? SafeTensorsFile(data: Data(bytes: start, count: count), path: "input.safetensors") else { return 0 }
    for (name, info) in file.tensors {
        switch info.dtype {
        case .f32, .f64: _ = try? file.floats(name)
        case .i64, .u64: _ = try? file.uint64s(name)
        default: break
        }
    }
    let path = ScratchFile.write(start, count, ext: ".safetensors")
    _ = try? Checkpoint.load(path: path)
    return 0
}

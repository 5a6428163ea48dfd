import FuzzSupport
import IFCNVolume

/// MetaImage reader: the input is a .mha file (header, then LOCAL data); its header may also name the 64-byte
/// `d.raw` beside it, or any other path (refused without allowExternalData, which stays off).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMetaImage(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let path = ScratchFile.write(start, count, ext: ".mha")
    _ = try? VolumeIO.readGrid(path)
    _ = try? VolumeIO.readScan(path)
    return 0
}

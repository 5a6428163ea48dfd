import FuzzSupport
import IFCNVolume

/// NIfTI reader (nifticlib header, ifcn's checks and voxel loader): the input is a .nii file, or a .nii.gz
/// when it starts with the gzip magic. Any error is fine; a crash, a sanitizer report or a huge allocation is not.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNIfTI(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: start, count: count)
    let gz = count >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B
    let path = ScratchFile.write(start, count, ext: gz ? ".nii.gz" : ".nii")
    _ = try? VolumeIO.readGrid(path)
    if let v = try? VolumeIO.read(path) { _ = try? LabelVolume(v) }
    return 0
}

import CNIfTI
import Foundation
import IFCNSupport

/// NIfTI-1/-2 reading and NIfTI-1 writing through nifticlib (the CNIfTI shim).
/// NIfTI world coordinates are RAS; ifcn works in LPS, so x and y are negated on the way in and out.
enum NIfTIFormat {
    /// Largest expansion of deflate (zlib, gzip): a compressed stream of n bytes inflates to at most
    /// about 1032 n bytes, so a .nii.gz whose header claims more voxel bytes than that is truncated.
    static let maxDeflateRatio = 1032

    /// An opened file whose header has been read and checked; the voxels are not read yet.
    struct Header {
        let file: OpaquePointer
        let grid: Grid
        let count: Int
    }

    /// Reads and checks the header: dimensions, datatype, transform, vox_offset, and that the file is large
    /// enough to hold the voxels it declares (for .nii.gz: within deflate's largest expansion). The caller
    /// closes `file` with `ifcn_nifti_close`.
    static func open(_ path: String) throws -> Header {
        var header = ifcn_nifti_header()
        var err = [CChar](repeating: 0, count: 512)
        guard let file = ifcn_nifti_open(path, &header, &err, err.count) else {
            throw VolumeError(path: path, message: message(err))
        }
        do {
            let (grid, count) = try check(header, path: path)
            return Header(file: file, grid: grid, count: count)
        } catch {
            ifcn_nifti_close(file)
            throw error
        }
    }

    private static func check(_ header: ifcn_nifti_header, path: String) throws -> (Grid, Int) {
        let dims = withUnsafeBytes(of: header.dim) { Array($0.bindMemory(to: Int64.self)) }
        let ndim = Int(dims[0])
        guard ndim >= 3, ndim <= 7 else {
            throw VolumeError(path: path, message: "expected a 3-D image, header says \(ndim) dimension(s)")
        }
        if ndim > 3, (4...ndim).contains(where: { dims[$0] != 1 }) {
            throw VolumeError(path: path, message: "expected a 3-D image, got dimensions \(dims[1...ndim].map { $0 })")
        }
        guard (1...3).allSatisfy({ dims[$0] >= 1 && dims[$0] <= Int64(VolumeIO.maxDimension) }) else {
            throw VolumeError(path: path, message: "image size \(dims[1...3].map { $0 }) out of range (each axis 1...\(VolumeIO.maxDimension))")
        }
        let size = [Int(dims[1]), Int(dims[2]), Int(dims[3])]
        let count = size[0] * size[1] * size[2]  // at most 10^12: no overflow
        let bpv = Int(header.bytes_per_voxel)
        guard bpv > 0 else { throw VolumeError(path: path, message: "unsupported NIfTI datatype \(header.datatype)") }
        let fileSize = VolumeIO.regularFileSize(path)?.bytes ?? 0
        let needed = Int(header.data_offset) + count * bpv
        if header.compressed == 0 {
            guard fileSize >= needed else {
                throw VolumeError(path: path, message: "file is truncated: header needs \(needed) bytes, file has \(fileSize)")
            }
        } else if needed / maxDeflateRatio > fileSize {
            throw VolumeError(path: path, message: "file is truncated: the header declares \(needed) bytes "
                              + "(\(size[0])x\(size[1])x\(size[2]) voxels of \(bpv) bytes), more than \(fileSize) compressed "
                              + "bytes can hold (deflate expands at most \(maxDeflateRatio):1)")
        }
        // The caps after the consistency checks: a truncated file is reported as such on every machine.
        try VolumeIO.validateSize(size, path: path)

        let useSform = header.sform_code > 0
        let affine = withUnsafeBytes(of: useSform ? header.sto_xyz : header.qto_xyz) {
            Array($0.bindMemory(to: Double.self))
        }
        // RAS -> LPS: negate rows 0 and 1.
        let flip: [Double] = [-1, -1, 1]
        var matrix = [Double](repeating: 0, count: 9)
        for r in 0..<3 {
            for c in 0..<3 { matrix[r * 3 + c] = flip[r] * affine[r * 4 + c] }
        }
        let origin = SIMD3(flip[0] * affine[3], flip[1] * affine[7], flip[2] * affine[11])
        let grid = try VolumeIO.grid(size: SIMD3(size[0], size[1], size[2]), matrix: matrix, origin: origin, path: path)
        return (grid, count)
    }

    /// The grid of a NIfTI file, from its header alone (checked as `read` checks it).
    static func readGrid(_ path: String) throws -> Grid {
        let header = try open(path)
        ifcn_nifti_close(header.file)
        return header.grid
    }

    static func read(_ path: String) throws -> Volume {
        let header = try open(path)
        defer { ifcn_nifti_close(header.file) }
        var err = [CChar](repeating: 0, count: 512)
        guard let buffer = ifcn_nifti_load_float(header.file, Int64(header.count), &err, err.count) else {
            throw VolumeError(path: path, message: message(err))
        }
        defer { ifcn_free(buffer) }
        return Volume(grid: header.grid, voxels: Array(UnsafeBufferPointer(start: buffer, count: header.count)))
    }

    static func write(_ volume: Volume, to path: String, as type: VoxelType) throws {
        let grid = volume.grid
        let m = grid.indexToWorldMatrix
        let flip: [Double] = [-1, -1, 1]
        var affine = [Double](repeating: 0, count: 16)
        for r in 0..<3 {
            for c in 0..<3 { affine[r * 4 + c] = flip[r] * m[r * 3 + c] }
            affine[r * 4 + 3] = flip[r] * grid.origin[r]
        }
        affine[15] = 1
        let bytes = VoxelCoding.encode(volume.voxels, as: type)
        let ext = path.lowercased().hasSuffix(".gz") ? ".nii.gz" : ".nii"
        let size: [Int64] = [Int64(grid.size.x), Int64(grid.size.y), Int64(grid.size.z)]
        // nifticlib writes by name and picks the compression from it: the temporary name keeps the extension.
        try AtomicFile.write(to: path, keepingExtension: ext) { temp in
            var err = [CChar](repeating: 0, count: 512)
            let rc = bytes.withUnsafeBytes { raw in
                ifcn_nifti_write(temp, raw.baseAddress, datatype(type), size, affine, &err, err.count)
            }
            guard rc == 0 else { throw VolumeError(path: path, message: message(err)) }
        }
    }

    static func datatype(_ type: VoxelType) -> Int32 {
        switch type {
        case .uint8: return Int32(IFCN_DT_UINT8)
        case .int8: return Int32(IFCN_DT_INT8)
        case .uint16: return Int32(IFCN_DT_UINT16)
        case .int16: return Int32(IFCN_DT_INT16)
        case .uint32: return Int32(IFCN_DT_UINT32)
        case .int32: return Int32(IFCN_DT_INT32)
        case .float32: return Int32(IFCN_DT_FLOAT32)
        case .float64: return Int32(IFCN_DT_FLOAT64)
        }
    }

    private static func message(_ err: [CChar]) -> String {
        let s = err.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        return s.isEmpty ? "unknown NIfTI error" : s
    }
}

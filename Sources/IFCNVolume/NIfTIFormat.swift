import CNIfTI
import Foundation
import IFCNSupport

/// NIfTI-1/-2 reading and NIfTI-1 writing through nifticlib (the CNIfTI shim).
/// NIfTI world coordinates are RAS; ifcn works in LPS, so x and y are negated on the way in and out.
enum NIfTIFormat {
    static func read(_ path: String) throws -> Volume {
        var header = ifcn_nifti_header()
        var err = [CChar](repeating: 0, count: 512)
        guard let file = ifcn_nifti_open(path, &header, &err, err.count) else {
            throw VolumeError(path: path, message: message(err))
        }
        defer { ifcn_nifti_close(file) }

        let dims = withUnsafeBytes(of: header.dim) { Array($0.bindMemory(to: Int64.self)) }
        let ndim = Int(dims[0])
        guard ndim >= 3, ndim <= 7 else {
            throw VolumeError(path: path, message: "expected a 3-D image, header says \(ndim) dimension(s)")
        }
        if ndim > 3, (4...ndim).contains(where: { dims[$0] != 1 }) {
            throw VolumeError(path: path, message: "expected a 3-D image, got dimensions \(dims[1...ndim].map { $0 })")
        }
        let size = [Int(dims[1]), Int(dims[2]), Int(dims[3])]
        try VolumeIO.validateSize(size, path: path)
        let count = size[0] * size[1] * size[2]
        let bpv = Int(header.bytes_per_voxel)
        guard bpv > 0 else { throw VolumeError(path: path, message: "unsupported NIfTI datatype \(header.datatype)") }
        if header.compressed == 0 {
            let attributes = try? FileManager.default.attributesOfItem(atPath: path)
            let fileSize = (attributes?[.size] as? NSNumber)?.intValue ?? 0
            let needed = Int(header.data_offset) + count * bpv
            guard fileSize >= needed else {
                throw VolumeError(path: path, message: "file is truncated: header needs \(needed) bytes, file has \(fileSize)")
            }
        }

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

        guard let buffer = ifcn_nifti_load_float(file, Int64(count), &err, err.count) else {
            throw VolumeError(path: path, message: message(err))
        }
        defer { ifcn_free(buffer) }
        return Volume(grid: grid, voxels: Array(UnsafeBufferPointer(start: buffer, count: count)))
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

import Foundation
import IFCNSupport

/// How volume files are read.
public struct VolumeReadOptions: Sendable, Equatable {
    /// Let a MetaImage header name a data file outside its own folder (an absolute path or one with folders).
    public var allowExternalData = false
    public init(allowExternalData: Bool = false) { self.allowExternalData = allowExternalData }
}

/// Reading and writing volumes: NIfTI (.nii, .nii.gz; NIfTI-1 and -2) and MetaImage (.mhd + data file, .mha).
public enum VolumeIO {
    /// Largest size accepted along any axis.
    public static let maxDimension = 10_000
    /// Largest number of voxels accepted.
    public static let maxVoxels = 1 << 31

    /// Supported file formats, recognised by file name extension.
    enum Format { case nifti, metaImage }

    /// File name extensions of the supported formats (longest first).
    public static let extensions = [".nii.gz", ".nii", ".mhd", ".mha"]

    static func format(of path: String) -> Format? {
        let lower = path.lowercased()
        if lower.hasSuffix(".nii") || lower.hasSuffix(".nii.gz") { return .nifti }
        if lower.hasSuffix(".mhd") || lower.hasSuffix(".mha") { return .metaImage }
        return nil
    }

    /// Splits a file name into (stem, extension) for a supported extension, else nil.
    public static func splitExtension(_ name: String) -> (stem: String, ext: String)? {
        let lower = name.lowercased()
        for ext in extensions where lower.hasSuffix(ext) && name.count > ext.count {
            return (String(name.dropLast(ext.count)), String(name.suffix(ext.count)))
        }
        return nil
    }

    /// Reads a volume from .nii, .nii.gz (NIfTI-1 and -2, via nifticlib), .mhd (+ data file) or .mha.
    /// The header is checked in full (sizes, transform, and that the file can hold the voxels it declares)
    /// before any voxel is read.
    public static func read(_ path: String, options: VolumeReadOptions = .init()) throws -> Volume {
        switch try existingFormat(path) {
        case .nifti: return try NIfTIFormat.read(path)
        case .metaImage: return try MetaImageFormat.read(path, options: options)
        }
    }

    /// The grid of a volume file from its header alone, checked as `read` checks it: cheap, so two files can be
    /// compared before either's voxels are read.
    public static func readGrid(_ path: String, options: VolumeReadOptions = .init()) throws -> Grid {
        switch try existingFormat(path) {
        case .nifti: return try NIfTIFormat.readGrid(path)
        case .metaImage: return try MetaImageFormat.readHeader(path, options: options).grid
        }
    }

    /// Reads a CT scan: as `read`, and every voxel must be a finite number (NaN or infinity is an error
    /// naming the voxel), the rule of both preprocessing and segmentation.
    public static func readScan(_ path: String, options: VolumeReadOptions = .init()) throws -> Volume {
        let volume = try read(path, options: options)
        if let bad = volume.voxels.firstIndex(where: { !$0.isFinite }) {
            let g = volume.grid.size
            let x = bad % g.x, y = (bad / g.x) % g.y, z = bad / (g.x * g.y)
            throw VolumeError(path: path, message: "image holds a non-finite value (\(volume.voxels[bad])) at voxel (\(x), \(y), \(z))")
        }
        return volume
    }

    private static func existingFormat(_ path: String) throws -> Format {
        guard FileManager.default.fileExists(atPath: path) else {
            throw VolumeError(path: path, message: "file not found")
        }
        guard let format = format(of: path) else {
            throw VolumeError(path: path, message: "unsupported file type (expected .nii, .nii.gz, .mhd or .mha)")
        }
        return format
    }

    /// Writes a volume; the format follows the extension. The file appears atomically (temporary name, then rename).
    public static func write(_ volume: Volume, to path: String, as type: VoxelType) throws {
        guard volume.voxels.count == volume.grid.count else {
            throw VolumeError(path: path, message: "voxel count does not match the grid")
        }
        switch format(of: path) {
        case .nifti: try NIfTIFormat.write(volume, to: path, as: type)
        case .metaImage: try MetaImageFormat.write(volume, to: path, as: type, compressed: false)
        case nil:
            throw VolumeError(path: path, message: "unsupported file type (expected .nii, .nii.gz, .mhd or .mha)")
        }
    }

    /// Writes a MetaImage (.mhd + .raw/.zraw, or .mha), optionally zlib-compressed.
    public static func writeMetaImage(_ volume: Volume, to path: String, as type: VoxelType, compressed: Bool) throws {
        try MetaImageFormat.write(volume, to: path, as: type, compressed: compressed)
    }

    /// What `stat` says of the file at `path`, following symbolic links (a linked scan is its target):
    /// whether it is a regular file and its size; nil when it cannot be read.
    static func regularFileSize(_ path: String) -> (regular: Bool, bytes: Int)? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return ((st.st_mode & S_IFMT) == S_IFREG, Int(st.st_size))
    }

    /// Checks sizes against the caps before anything is allocated.
    static func validateSize(_ size: [Int], path: String) throws {
        guard size.count == 3 else { throw VolumeError(path: path, message: "expected a 3-D image") }
        var total = 1
        for n in size {
            guard n >= 1, n <= maxDimension else {
                throw VolumeError(path: path, message: "image size \(size) out of range (each axis 1...\(maxDimension))")
            }
            total *= n
        }
        guard total <= maxVoxels else {
            throw VolumeError(path: path, message: "image has \(total) voxels, more than the limit \(maxVoxels)")
        }
        do {
            try MemoryLimit.check(4 * Double(total), "an image of \(size[0])x\(size[1])x\(size[2]) voxels")
        } catch let error as TooLarge {
            throw VolumeError(path: path, message: error.message)
        }
    }

    /// Builds a grid from an index-to-world matrix (row-major 3x3, columns = direction * spacing) and origin.
    static func grid(size: SIMD3<Int>, matrix m: [Double], origin: SIMD3<Double>, path: String) throws -> Grid {
        var spacing = SIMD3<Double>(repeating: 0)
        var direction = [Double](repeating: 0, count: 9)
        for c in 0..<3 {
            let s = (m[c] * m[c] + m[3 + c] * m[3 + c] + m[6 + c] * m[6 + c]).squareRoot()
            guard s.isFinite, s > 0 else {
                throw VolumeError(path: path, message: "degenerate voxel-to-world transform (zero spacing along axis \(c))")
            }
            spacing[c] = s
            for r in 0..<3 { direction[r * 3 + c] = m[r * 3 + c] / s }
        }
        guard origin.x.isFinite, origin.y.isFinite, origin.z.isFinite,
              invert3x3(direction) != nil else {
            throw VolumeError(path: path, message: "invalid voxel-to-world transform (singular or not finite)")
        }
        return Grid(size: size, spacing: spacing, origin: origin, direction: direction)
    }
}

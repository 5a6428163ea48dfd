import Foundation
import IFCNSupport

/// Where a case's training store file is and what it holds, as recorded in dataset.json (`store`).
public struct CaseStoreEntry: Codable, Sendable, Equatable {
    /// Path relative to the data set folder, e.g. `store/<case>.ifcs`.
    public var file: String
    /// Exact size of the file in bytes.
    public var bytes: Int
    /// Voxel types of the three volumes.
    public var image: VoxelType
    public var labels: VoxelType
    public var weights: VoxelType

    public init(file: String, bytes: Int, image: VoxelType, labels: VoxelType, weights: VoxelType) {
        self.file = file; self.bytes = bytes; self.image = image; self.labels = labels; self.weights = weights
    }
}

/// The training store of one case: image, labels and weights uncompressed on the case's grid, each
/// volume starting on a 4 KiB page, so training can `mmap` the file read-only and touch only the
/// patches it samples (docs/DATA.md).
///
/// Layout, little-endian: a 4096-byte header (`magic`, format version, header size, nx, ny, nz as
/// Int64, the three voxel types as NIfTI datatype codes, the three section offsets and the file
/// size as UInt64), then the image, label and weight volumes (x fastest), each padded to 4 KiB.
/// The image keeps the voxel type of the NIfTI image (`--image-type`), labels are uint8, uint16 or
/// int32 (the smallest that holds them), weights float32: every voxel equals the NIfTI volumes.
public enum CaseStore {
    public static let magic = Array("IFCNSTOR".utf8)
    public static let version: UInt32 = 1
    public static let headerBytes = 4096
    public static let alignment = 4096
    /// Folder of the store files inside a data set folder, and their extension.
    public static let folder = "store"
    public static let fileExtension = ".ifcs"
    /// Weights are stored as float32: exact, so training numbers do not depend on the store.
    public static let weightType = VoxelType.float32

    /// Voxel types a store section may hold.
    static let supportedTypes: [VoxelType] = [.uint8, .int8, .uint16, .int16, .int32, .float32]

    /// The smallest store type holding every label of `labels`.
    public static func labelType(of labels: LabelVolume) -> VoxelType {
        let top = labels.voxels.max() ?? 0
        return top <= 255 ? .uint8 : top <= 65535 ? .uint16 : .int32
    }

    /// Offsets of the three sections and the file size for a grid and voxel types.
    static func layout(count: Int, image: VoxelType, labels: VoxelType, weights: VoxelType) -> (offsets: [Int], total: Int) {
        func up(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }
        let o0 = headerBytes
        let o1 = up(o0 + count * image.byteSize)
        let o2 = up(o1 + count * labels.byteSize)
        return ([o0, o1, o2], up(o2 + count * weights.byteSize))
    }

    /// The header bytes for a grid size, voxel types and layout.
    static func header(size: SIMD3<Int>, types: [VoxelType], offsets: [Int], total: Int) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: headerBytes)
        h.replaceSubrange(0..<8, with: magic)
        func put<T: FixedWidthInteger>(_ v: T, at o: Int) {
            withUnsafeBytes(of: v.littleEndian) { h.replaceSubrange(o..<(o + MemoryLayout<T>.size), with: $0) }
        }
        put(version, at: 8); put(UInt32(headerBytes), at: 12)
        put(Int64(size.x), at: 16); put(Int64(size.y), at: 24); put(Int64(size.z), at: 32)
        for k in 0..<3 { put(UInt32(NIfTIFormat.datatype(types[k])), at: 40 + 4 * k) }
        for k in 0..<3 { put(UInt64(offsets[k]), at: 56 + 8 * k) }
        put(UInt64(total), at: 80)
        return h
    }

    /// Writes the store file of one case atomically (temporary name, fsync, rename) and returns its
    /// index entry (`file` relative to the data set folder is `relativePath`).
    @discardableResult
    public static func write(image: Volume, labels: LabelVolume, weights: Volume, imageType: VoxelType,
                             to path: String, relativePath: String) throws -> CaseStoreEntry {
        let g = image.grid
        guard labels.grid.size == g.size, weights.grid.size == g.size else {
            throw VolumeError(path: path, message: "image, labels and weights differ in size (\(g.size), \(labels.grid.size), \(weights.grid.size))")
        }
        guard supportedTypes.contains(imageType) else {
            throw VolumeError(path: path, message: "the training store cannot hold \(imageType.rawValue) images")
        }
        let types = [imageType, labelType(of: labels), weightType]
        let (offsets, total) = layout(count: g.count, image: types[0], labels: types[1], weights: types[2])
        let sections = [VoxelCoding.encode(image.voxels, as: types[0]), VoxelCoding.encode(labels.voxels.map { Float($0) }, as: types[1]),
                        VoxelCoding.encode(weights.voxels, as: types[2])]
        try AtomicFile.write(to: path) { temp in
            let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            guard fd >= 0 else { throw VolumeError(path: path, message: "cannot write: \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            func put(_ bytes: [UInt8], at offset: Int) throws {
                try bytes.withUnsafeBytes { raw in
                    var done = 0
                    while done < raw.count {
                        let n = pwrite(fd, raw.baseAddress! + done, raw.count - done, off_t(offset + done))
                        if n < 0 && errno == EINTR { continue }
                        guard n > 0 else { throw VolumeError(path: path, message: "cannot write: \(String(cString: strerror(errno)))") }
                        done += n
                    }
                }
            }
            try put(header(size: g.size, types: types, offsets: offsets, total: total), at: 0)
            for k in 0..<3 { try put(sections[k], at: offsets[k]) }
            guard ftruncate(fd, off_t(total)) == 0 else {
                throw VolumeError(path: path, message: "cannot write: \(String(cString: strerror(errno)))")
            }
        }
        return CaseStoreEntry(file: relativePath, bytes: total, image: types[0], labels: types[1], weights: types[2])
    }

    /// Writes the training store of a data set folder written without one (by an older ifcn): every
    /// case's NIfTI volumes are read and written to `store/`, then dataset.json is updated
    /// atomically. Cases that already have a store file of the recorded size are kept.
    @discardableResult
    public static func build(dataset dir: String, progress: @escaping @Sendable (String) -> Void = { _ in }) throws -> DatasetManifest {
        var manifest = try DatasetManifest.load(from: dir)
        func path(_ rel: String) -> String { URL(fileURLWithPath: dir).appendingPathComponent(rel).path }
        do {
            try FileManager.default.createDirectory(atPath: path(folder), withIntermediateDirectories: true)
        } catch {
            throw VolumeError(path: path(folder), message: "cannot create the store folder: \(error.localizedDescription)")
        }
        let cases = manifest.cases
        let results = ResultBox<CaseStoreEntry>(count: cases.count)
        parallelFor(parts: cases.count) { i in
            let e = cases[i]
            _ = results.set(i, Result {
                if let s = e.store, let size = fileSize(path(s.file)), size == s.bytes { return s }
                let t0 = Date()
                let image = try VolumeIO.read(path(e.image))
                let labels = try VolumeIO.readLabels(path(e.label))
                let weights = try VolumeIO.read(path(e.weight))
                let rel = folder + "/" + e.name + fileExtension
                let entry = try write(image: image, labels: labels, weights: weights,
                                      imageType: holdsInt16(image.voxels) ? .int16 : .float32, to: path(rel), relativePath: rel)
                progress(String(format: "%@: %d bytes, %.2f s", rel, entry.bytes, Date().timeIntervalSince(t0)))
                return entry
            })
        }
        for i in cases.indices { manifest.cases[i].store = try results.value(i, path: dir) }
        manifest.storeVersion = Int(version)
        try manifest.save(to: dir)
        return manifest
    }

    /// Whether every value is a whole number in the int16 range (then int16 holds the image exactly).
    static func holdsInt16(_ v: [Float]) -> Bool {
        v.allSatisfy { $0 >= -32768 && $0 <= 32767 && $0 == $0.rounded() }
    }

    /// Size of a file in bytes, nil when it cannot be read.
    public static func fileSize(_ path: String) -> Int? {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : nil
    }
}

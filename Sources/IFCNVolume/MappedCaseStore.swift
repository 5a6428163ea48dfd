import Foundation
import IFCNSupport

/// A case's training store file (`CaseStore`) mapped read-only (`mmap`, `MAP_SHARED`, `PROT_READ`):
/// the processes of a node share one copy in the page cache, and reading a patch touches only the
/// pages of its rows. Opening checks the file against its index entry and grid before mapping and
/// never reads the volumes; nothing is decompressed.
public final class MappedCaseStore: @unchecked Sendable {
    public let path: String
    public let size: SIMD3<Int>
    public let entry: CaseStoreEntry
    private let base: UnsafeRawPointer
    private let length: Int
    private let offsets: [Int]

    /// Maps `path`; a `VolumeError` naming the file when it is missing, truncated, or does not match
    /// `entry` (size, voxel types) and `grid` (the case's grid in dataset.json).
    public init(path: String, entry: CaseStoreEntry, grid: Grid) throws {
        self.path = path
        self.entry = entry
        size = grid.size
        for t in [entry.image, entry.labels, entry.weights] where !CaseStore.supportedTypes.contains(t) {
            throw VolumeError(path: path, message: "dataset.json gives the store voxel type \(t.rawValue), which a store cannot hold")
        }
        let expected = CaseStore.layout(count: grid.count, image: entry.image, labels: entry.labels, weights: entry.weights)
        guard expected.total == entry.bytes else {
            throw VolumeError(path: path, message: "dataset.json says \(entry.bytes) bytes, but a \(grid.size.x)x\(grid.size.y)x\(grid.size.z) "
                              + "store of \(entry.image.rawValue)/\(entry.labels.rawValue)/\(entry.weights.rawValue) needs \(expected.total)")
        }
        guard let actual = CaseStore.fileSize(path) else {
            throw VolumeError(path: path, message: "training store file not found (rebuild it with `ifcn store build`)")
        }
        guard actual == entry.bytes else {
            throw VolumeError(path: path, message: actual < entry.bytes
                              ? "training store file is truncated: \(actual) bytes, dataset.json says \(entry.bytes)"
                              : "training store file has \(actual) bytes, dataset.json says \(entry.bytes): it belongs to another data set or case")
        }
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw VolumeError(path: path, message: "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard let p = mmap(nil, actual, PROT_READ, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            throw VolumeError(path: path, message: "cannot map: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(p)
        length = actual
        offsets = expected.offsets
        do {
            try checkHeader(total: expected.total)
        } catch {
            munmap(UnsafeMutableRawPointer(mutating: base), length)
            throw error
        }
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), length) }

    private func checkHeader(total: Int) throws {
        func u32(_ o: Int) -> UInt32 { UInt32(littleEndian: base.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
        func i64(_ o: Int) -> Int { Int(Int64(littleEndian: base.loadUnaligned(fromByteOffset: o, as: Int64.self))) }
        guard Array(UnsafeRawBufferPointer(start: base, count: 8)) == CaseStore.magic else {
            throw VolumeError(path: path, message: "not an ifcn training store (bad magic)")
        }
        guard u32(8) == CaseStore.version, Int(u32(12)) == CaseStore.headerBytes else {
            throw VolumeError(path: path, message: "training store format version \(u32(8)); this ifcn reads version \(CaseStore.version) "
                              + "(rebuild it with `ifcn store build`)")
        }
        let stored = SIMD3(i64(16), i64(24), i64(32))
        guard stored == size else {
            throw VolumeError(path: path, message: "training store holds a \(stored.x)x\(stored.y)x\(stored.z) grid, dataset.json says "
                              + "\(size.x)x\(size.y)x\(size.z): it belongs to another case or data set")
        }
        let types = [entry.image, entry.labels, entry.weights]
        for k in 0..<3 where Int32(bitPattern: u32(40 + 4 * k)) != NIfTIFormat.datatype(types[k]) {
            throw VolumeError(path: path, message: "training store voxel types differ from dataset.json "
                              + "(\(types.map(\.rawValue).joined(separator: "/")) there)")
        }
        for k in 0..<3 where i64(56 + 8 * k) != offsets[k] {
            throw VolumeError(path: path, message: "training store section offsets differ from its layout (damaged header)")
        }
        guard i64(80) == total else {
            throw VolumeError(path: path, message: "training store header gives \(i64(80)) bytes, expected \(total)")
        }
    }

    /// Number of voxels of each volume.
    public var count: Int { size.x * size.y * size.z }

    /// Image voxels [index, index + n) as Float (exactly the values of the NIfTI image).
    @inline(__always)
    public func imageRow(_ index: Int, _ n: Int, into out: UnsafeMutablePointer<Float>) {
        decode(section: 0, type: entry.image, index, n, out)
    }

    /// Weight voxels [index, index + n) as Float.
    @inline(__always)
    public func weightRow(_ index: Int, _ n: Int, into out: UnsafeMutablePointer<Float>) {
        decode(section: 2, type: entry.weights, index, n, out)
    }

    /// Labels [index, index + n).
    @inline(__always)
    public func labelRow(_ index: Int, _ n: Int, into out: UnsafeMutablePointer<Int32>) {
        let p = base + offsets[1]
        switch entry.labels {
        case .uint8: convert(p, UInt8.self, index, n, out)
        case .uint16: convert(p, UInt16.self, index, n, out)
        case .int16: convert(p, Int16.self, index, n, out)
        case .int8: convert(p, Int8.self, index, n, out)
        default: convert(p, Int32.self, index, n, out)
        }
    }

    private func decode(section: Int, type: VoxelType, _ index: Int, _ n: Int, _ out: UnsafeMutablePointer<Float>) {
        let p = base + offsets[section]
        switch type {
        case .float32: out.update(from: p.assumingMemoryBound(to: Float.self) + index, count: n)
        case .int16: let s = p.assumingMemoryBound(to: Int16.self) + index; for i in 0..<n { out[i] = Float(s[i]) }
        case .uint8: let s = p.assumingMemoryBound(to: UInt8.self) + index; for i in 0..<n { out[i] = Float(s[i]) }
        case .int8: let s = p.assumingMemoryBound(to: Int8.self) + index; for i in 0..<n { out[i] = Float(s[i]) }
        case .uint16: let s = p.assumingMemoryBound(to: UInt16.self) + index; for i in 0..<n { out[i] = Float(s[i]) }
        default: let s = p.assumingMemoryBound(to: Int32.self) + index; for i in 0..<n { out[i] = Float(s[i]) }
        }
    }

    private func convert<T: BinaryInteger>(_ p: UnsafeRawPointer, _: T.Type, _ index: Int, _ n: Int, _ out: UnsafeMutablePointer<Int32>) {
        let s = p.assumingMemoryBound(to: T.self) + index
        for i in 0..<n { out[i] = Int32(s[i]) }
    }

    /// The whole image as a volume on `grid` (a copy: for validation, one case at a time).
    public func image(grid: Grid) -> Volume {
        Volume(grid: grid, voxels: [Float](unsafeUninitializedCapacity: count) { b, n in imageRow(0, count, into: b.baseAddress!); n = count })
    }

    /// The whole label map on `grid` (a copy).
    public func labels(grid: Grid) -> LabelVolume {
        LabelVolume(grid: grid, voxels: [Int32](unsafeUninitializedCapacity: count) { b, n in labelRow(0, count, into: b.baseAddress!); n = count })
    }

    /// The whole weight map on `grid` (a copy).
    public func weights(grid: Grid) -> Volume {
        Volume(grid: grid, voxels: [Float](unsafeUninitializedCapacity: count) { b, n in weightRow(0, count, into: b.baseAddress!); n = count })
    }

    /// Drops this file's pages from the page cache (`posix_fadvise(POSIX_FADV_DONTNEED)`), so the
    /// next reads come from the disk: for cold-cache measurements.
    public func evictFromPageCache() {
        madvise(UnsafeMutableRawPointer(mutating: base), length, MADV_DONTNEED)
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return }
        posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_DONTNEED))
        close(fd)
    }
}

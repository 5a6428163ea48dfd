import CNIfTI
import Foundation
import IFCNSupport

/// MetaImage (.mhd header + data file, or .mha with the data inline), pure Swift except zlib.
/// TransformMatrix is LPS already; its j-th triple is column j of the direction (as ITK writes it).
enum MetaImageFormat {
    static let maxHeaderBytes = 1 << 16

    static let elementTypes: [String: VoxelType] = [
        "MET_CHAR": .int8, "MET_UCHAR": .uint8, "MET_SHORT": .int16, "MET_USHORT": .uint16,
        "MET_INT": .int32, "MET_UINT": .uint32, "MET_FLOAT": .float32, "MET_DOUBLE": .float64,
    ]

    static func elementTypeName(_ type: VoxelType) -> String {
        switch type {
        case .int8: return "MET_CHAR"
        case .uint8: return "MET_UCHAR"
        case .int16: return "MET_SHORT"
        case .uint16: return "MET_USHORT"
        case .int32: return "MET_INT"
        case .uint32: return "MET_UINT"
        case .float32: return "MET_FLOAT"
        case .float64: return "MET_DOUBLE"
        }
    }

    // MARK: reading

    /// A parsed and checked header: geometry, voxel type and where the voxel bytes are.
    struct Header {
        let grid: Grid
        let count: Int
        let type: VoxelType
        let bigEndian: Bool
        let compressed: Bool
        /// The file holding the voxel bytes (the header itself for LOCAL data).
        let dataPath: String
        /// Where the voxel bytes start in `dataPath` (uncompressed) or the compressed stream starts (compressed).
        let start: Int
        /// Compressed bytes to inflate (compressed data only).
        let compressedLength: Int
        /// Bytes of voxel data: count x type size.
        var needed: Int { count * type.byteSize }
    }

    static func read(_ path: String, options: VolumeReadOptions) throws -> Volume {
        let header = try readHeader(path, options: options)
        let payload: Data
        do {
            payload = try Data(contentsOf: URL(fileURLWithPath: header.dataPath), options: .alwaysMapped)
        } catch {
            throw VolumeError(path: header.dataPath, message: "cannot read: \(error.localizedDescription)")
        }
        let needed = header.needed
        var raw: Data
        if header.compressed {
            guard header.start + header.compressedLength <= payload.count else {
                throw VolumeError(path: header.dataPath, message: "file changed while it was read")
            }
            raw = Data(count: needed)
            let produced: Int64 = raw.withUnsafeMutableBytes { out in
                payload.withUnsafeBytes { inp in
                    ifcn_zlib_inflate(inp.baseAddress!.assumingMemoryBound(to: UInt8.self) + header.start, header.compressedLength,
                                      out.baseAddress!.assumingMemoryBound(to: UInt8.self), needed)
                }
            }
            if produced == -2 {
                throw VolumeError(path: header.dataPath, message: "compressed data holds more than DimSize x ElementType (\(needed) bytes)")
            }
            guard produced == Int64(needed) else {
                throw VolumeError(path: header.dataPath, message: produced < 0
                    ? "corrupt or truncated compressed data"
                    : "compressed data holds \(produced) bytes, expected \(needed)")
            }
        } else {
            guard header.start >= 0, payload.count - header.start >= needed else {
                throw VolumeError(path: header.dataPath, message: "data is truncated: needs \(needed) bytes, has \(max(0, payload.count - max(header.start, 0)))")
            }
            raw = payload.subdata(in: header.start..<(header.start + needed))
        }
        let voxels = raw.withUnsafeBytes { VoxelCoding.decode($0, count: header.count, as: header.type, bigEndian: header.bigEndian) }
        return Volume(grid: header.grid, voxels: voxels)
    }

    /// Parses and checks the header, and that the data file exists and is large enough for the voxels it
    /// declares (compressed data: within deflate's largest expansion), before any voxel is read. A data file
    /// must lie beside the header unless `options.allowExternalData`.
    static func readHeader(_ path: String, options: VolumeReadOptions) throws -> Header {
        let headerBytes: Data
        do {
            let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
            defer { try? handle.close() }
            headerBytes = try handle.read(upToCount: maxHeaderBytes + 1) ?? Data()  // one more: a longer file is not all header
        } catch {
            throw VolumeError(path: path, message: "cannot read: \(error.localizedDescription)")
        }
        let (fields, headerEnd) = try parseHeader(headerBytes, path: path)
        func field(_ names: String...) -> String? {
            for n in names { if let v = fields[n.lowercased()] { return v } }
            return nil
        }
        func numbers(_ value: String, count: Int, key: String) throws -> [Double] {
            let parts = value.split(whereSeparator: { $0 == " " || $0 == "\t" })
            let vals = parts.compactMap { Double($0) }
            guard vals.count == count, parts.count == count, vals.allSatisfy({ $0.isFinite }) else {
                throw VolumeError(path: path, message: "\(key) must hold \(count) finite numbers, got \(quoted(value))")
            }
            return vals
        }

        if let type = field("ObjectType"), type.lowercased() != "image" {
            throw VolumeError(path: path, message: "ObjectType is \(quoted(type)), expected Image")
        }
        guard let ndimText = field("NDims") else { throw VolumeError(path: path, message: "missing NDims") }
        guard let ndim = Int(ndimText), ndim == 3 else {
            throw VolumeError(path: path, message: "NDims is \(quoted(ndimText)); only 3-D images are supported")
        }
        guard let dimText = field("DimSize") else { throw VolumeError(path: path, message: "missing DimSize") }
        let dimValues = try numbers(dimText, count: 3, key: "DimSize")
        guard dimValues.allSatisfy({ $0 == $0.rounded() && $0 >= 1 && $0 <= Double(VolumeIO.maxDimension) }) else {
            throw VolumeError(path: path, message: "DimSize \(quoted(dimText)) out of range (each axis 1...\(VolumeIO.maxDimension))")
        }
        let size = dimValues.map { Int($0) }
        try VolumeIO.validateSize(size, path: path)
        let count = size[0] * size[1] * size[2]

        if let channels = field("ElementNumberOfChannels"), Int(channels) != 1 {
            throw VolumeError(path: path, message: "ElementNumberOfChannels is \(quoted(channels)); only scalar images are supported")
        }
        guard let typeName = field("ElementType") else { throw VolumeError(path: path, message: "missing ElementType") }
        guard let type = elementTypes[typeName.uppercased()] else {
            throw VolumeError(path: path, message: "unsupported ElementType \(quoted(typeName))")
        }
        let spacing = try field("ElementSpacing", "ElementSize").map { try numbers($0, count: 3, key: "ElementSpacing") } ?? [1, 1, 1]
        let origin = try field("Offset", "Position", "Origin").map { try numbers($0, count: 3, key: "Offset") } ?? [0, 0, 0]
        let transform = try field("TransformMatrix", "Orientation", "Rotation").map {
            try numbers($0, count: 9, key: "TransformMatrix")
        } ?? Grid.identity
        guard spacing.allSatisfy({ $0 > 0 }) else {
            throw VolumeError(path: path, message: "ElementSpacing must be positive")
        }
        let bigEndian = isTrue(field("BinaryDataByteOrderMSB", "ElementByteOrderMSB"))
        let compressed = isTrue(field("CompressedData"))
        guard let dataFile = field("ElementDataFile") else {
            throw VolumeError(path: path, message: "missing ElementDataFile")
        }

        // Geometry: index-to-world matrix, column j = triple j * spacing j.
        var matrix = [Double](repeating: 0, count: 9)
        for r in 0..<3 {
            for c in 0..<3 { matrix[r * 3 + c] = transform[c * 3 + r] * spacing[c] }
        }
        let grid = try VolumeIO.grid(size: SIMD3(size[0], size[1], size[2]), matrix: matrix,
                                     origin: SIMD3(origin[0], origin[1], origin[2]), path: path)

        // Where the voxel bytes are, and how many bytes are there.
        let dataPath: String
        var dataStart = 0
        if dataFile.uppercased() == "LOCAL" {
            dataPath = path
            dataStart = headerEnd
        } else {
            if dataFile.uppercased().hasPrefix("LIST") || dataFile.contains("%") {
                throw VolumeError(path: path, message: "multi-file ElementDataFile \(quoted(dataFile)) is not supported")
            }
            dataPath = try resolveDataFile(dataFile, header: path, options: options)
        }
        guard let (regular, fileSize) = VolumeIO.regularFileSize(dataPath) else {
            throw VolumeError(path: path, message: "cannot read data file \(quoted(dataFile)): \(String(cString: strerror(errno)))")
        }
        guard regular else { throw VolumeError(path: path, message: "data file \(quoted(dataFile)) is not a regular file") }
        let available = fileSize - dataStart
        let needed = count * type.byteSize
        var start = dataStart, length = available
        if compressed {
            if let sizeText = field("CompressedDataSize") {
                guard let declared = Int(sizeText), declared > 0 else {
                    throw VolumeError(path: path, message: "bad CompressedDataSize \(quoted(sizeText))")
                }
                guard declared <= available else {
                    throw VolumeError(path: dataPath, message: "truncated: CompressedDataSize \(declared) but only \(available) bytes")
                }
                length = declared
            }
            if let headerSize = field("HeaderSize"), let h = Int(headerSize), h > 0 {
                guard h < available else { throw VolumeError(path: dataPath, message: "HeaderSize beyond end of file") }
                start = dataStart + h
                length = min(length, available - h)
            }
            guard needed / NIfTIFormat.maxDeflateRatio <= length else {
                throw VolumeError(path: dataPath, message: "truncated: DimSize x ElementType is \(needed) bytes, more than "
                                  + "\(length) compressed bytes can hold (deflate expands at most \(NIfTIFormat.maxDeflateRatio):1)")
            }
        } else {
            if let headerSize = field("HeaderSize"), let h = Int(headerSize) {
                guard h == -1 || (h >= 0 && h <= available) else {
                    throw VolumeError(path: dataPath, message: "HeaderSize \(h) outside the data file (\(available) bytes)")
                }
                start = h == -1 ? fileSize - needed : dataStart + h
            }
            guard start >= dataStart, fileSize - start >= needed else {
                throw VolumeError(path: dataPath, message: "data is truncated: needs \(needed) bytes, has \(max(0, fileSize - max(start, dataStart)))")
            }
        }
        return Header(grid: grid, count: count, type: type, bigEndian: bigEndian, compressed: compressed,
                      dataPath: dataPath, start: start, compressedLength: length)
    }

    /// The path of an ElementDataFile: a file name beside the header; any other path (absolute, or with a
    /// folder in it) only when `options.allowExternalData`, since a header could otherwise make ifcn read
    /// any file on the machine.
    static func resolveDataFile(_ name: String, header: String, options: VolumeReadOptions) throws -> String {
        let dir = URL(fileURLWithPath: header).deletingLastPathComponent()
        let beside = !name.isEmpty && !name.contains("/") && name != "." && name != ".."
        if beside { return dir.appendingPathComponent(name).path }
        guard options.allowExternalData else {
            throw VolumeError(path: header, message: "ElementDataFile \(quoted(name)) is not a file beside the header; "
                              + "pass --allow-external-data to read data from another folder")
        }
        return name.hasPrefix("/") ? name : dir.appendingPathComponent(name).path
    }

    private static func isTrue(_ value: String?) -> Bool {
        guard let v = value?.lowercased() else { return false }
        return v == "true" || v == "1" || v == "yes"
    }

    /// Parses `Key = Value` lines up to and including ElementDataFile. Returns lower-cased keys and the byte offset
    /// just after the ElementDataFile line (where .mha data starts).
    static func parseHeader(_ data: Data, path: String) throws -> ([String: String], Int) {
        var fields: [String: String] = [:]
        let limit = min(data.count, maxHeaderBytes)
        var lineStart = 0
        var i = 0
        let bytes = [UInt8](data.prefix(limit))
        while i < limit {
            if bytes[i] == 0x0A {
                let lineBytes = bytes[lineStart..<i]
                guard let line = String(bytes: lineBytes, encoding: .utf8) ?? String(bytes: lineBytes, encoding: .isoLatin1) else {
                    throw VolumeError(path: path, message: "unreadable header line")
                }
                let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
                if !trimmed.isEmpty {
                    guard let eq = trimmed.firstIndex(of: "=") else {
                        throw VolumeError(path: path, message: "malformed header line \(quoted(trimmed)) (expected Key = Value)")
                    }
                    let key = trimmed[..<eq].trimmingCharacters(in: .whitespaces).lowercased()
                    let value = trimmed[trimmed.index(after: eq)...].trimmingCharacters(in: .whitespaces)
                    fields[key] = value
                    if key == "elementdatafile" { return (fields, i + 1) }
                }
                lineStart = i + 1
            }
            i += 1
        }
        // A final line without newline (common for .mhd).
        if limit == data.count, lineStart < limit {
            let tail = String(decoding: bytes[lineStart..<limit], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if let eq = tail.firstIndex(of: "=") {
                let key = tail[..<eq].trimmingCharacters(in: .whitespaces).lowercased()
                fields[key] = tail[tail.index(after: eq)...].trimmingCharacters(in: .whitespaces)
                if key == "elementdatafile" { return (fields, data.count) }
            }
        }
        throw VolumeError(path: path, message: "not a MetaImage header (no ElementDataFile line in the first \(limit) bytes)")
    }

    // MARK: writing

    static func write(_ volume: Volume, to path: String, as type: VoxelType, compressed: Bool) throws {
        let grid = volume.grid
        var payload = VoxelCoding.encode(volume.voxels, as: type)
        if compressed {
            let bound = ifcn_zlib_bound(payload.count)
            var out = [UInt8](repeating: 0, count: bound)
            let n = payload.withUnsafeBufferPointer { src in
                out.withUnsafeMutableBufferPointer { dst in
                    ifcn_zlib_deflate(src.baseAddress, src.count, dst.baseAddress, bound)
                }
            }
            guard n > 0 else { throw VolumeError(path: path, message: "zlib compression failed") }
            payload = Array(out.prefix(Int(n)))
        }
        func fmt(_ v: Double) -> String { String(format: "%.17g", v) }
        var transform: [Double] = []
        for c in 0..<3 { for r in 0..<3 { transform.append(grid.direction[r * 3 + c]) } }
        let inline = path.lowercased().hasSuffix(".mha")
        let url = URL(fileURLWithPath: path)
        let stem = url.deletingPathExtension().lastPathComponent
        let dataName = inline ? "LOCAL" : stem + (compressed ? ".zraw" : ".raw")
        var header = """
            ObjectType = Image
            NDims = 3
            BinaryData = True
            BinaryDataByteOrderMSB = False
            CompressedData = \(compressed ? "True" : "False")

            """
        if compressed { header += "CompressedDataSize = \(payload.count)\n" }
        header += """
            TransformMatrix = \(transform.map(fmt).joined(separator: " "))
            Offset = \(fmt(grid.origin.x)) \(fmt(grid.origin.y)) \(fmt(grid.origin.z))
            CenterOfRotation = 0 0 0
            ElementSpacing = \(fmt(grid.spacing.x)) \(fmt(grid.spacing.y)) \(fmt(grid.spacing.z))
            DimSize = \(grid.size.x) \(grid.size.y) \(grid.size.z)
            ElementType = \(elementTypeName(type))
            ElementDataFile = \(dataName)

            """
        // AtomicFile's errors are VolumeErrors (both are FileError).
        if inline {
            var data = Data(header.utf8)
            data.append(contentsOf: payload)
            try AtomicFile.write(data, to: path)
        } else {
            let dataPath = url.deletingLastPathComponent().appendingPathComponent(dataName).path
            try AtomicFile.write(Data(payload), to: dataPath)
            try AtomicFile.write(Data(header.utf8), to: path)
        }
    }
}

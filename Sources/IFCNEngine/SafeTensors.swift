import Foundation
import IFCNSupport

/// Element types we read and write in safetensors files.
public enum SafeTensorsDType: String, Sendable {
    case f32 = "F32", f64 = "F64", i64 = "I64", u64 = "U64", i32 = "I32", u8 = "U8"
    var size: Int {
        switch self {
        case .f32, .i32: return 4
        case .f64, .i64, .u64: return 8
        case .u8: return 1
        }
    }
}

/// One tensor's header entry.
public struct SafeTensorInfo: Sendable {
    public let dtype: SafeTensorsDType
    public let shape: [Int]
    public let range: Range<Int>   // byte range inside the data section
    public var count: Int { shape.reduce(1, *) }
}

/// A safetensors file read and validated in full before any tensor is used: 8-byte
/// little-endian header length, JSON header, raw little-endian data.
public struct SafeTensorsFile {
    public let path: String
    public let metadata: [String: String]
    public let tensors: [String: SafeTensorInfo]
    private let data: Data
    private let dataStart: Int

    public init(path: String) throws {
        let url = URL(fileURLWithPath: path)
        let data: Data
        do { data = try Data(contentsOf: url, options: .mappedIfSafe) } catch {
            throw EngineError.safetensors(path: path, message: "cannot read file (\(error.localizedDescription))")
        }
        try self.init(data: data, path: path)
    }

    public init(data: Data, path: String) throws {
        func fail(_ m: String) -> EngineError { .safetensors(path: path, message: m) }
        guard data.count >= 8 else { throw fail("too short for a safetensors file (\(data.count) bytes)") }
        var n: UInt64 = 0
        for i in 0..<8 { n |= UInt64(data[data.startIndex + i]) << (8 * UInt64(i)) }
        guard n <= UInt64(data.count - 8), n <= 100_000_000 else {
            throw fail("header length \(n) exceeds the file (\(data.count) bytes): truncated or not safetensors")
        }
        let headerBytes = data.subdata(in: (data.startIndex + 8)..<(data.startIndex + 8 + Int(n)))
        guard let json = try? JSONSerialization.jsonObject(with: headerBytes), let header = json as? [String: Any] else {
            throw fail("header is not a JSON object")
        }
        let start = 8 + Int(n)
        let available = data.count - start
        var meta: [String: String] = [:]
        var infos: [String: SafeTensorInfo] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                guard let m = value as? [String: Any] else { throw fail("__metadata__ is not an object") }
                for (k, v) in m {
                    guard let s = v as? String else { throw fail("metadata \(quoted(k)) is not a string") }
                    meta[k] = s
                }
                continue
            }
            guard let entry = value as? [String: Any],
                  let dtypeName = entry["dtype"] as? String,
                  let shapeAny = entry["shape"] as? [Any],
                  let offsetsAny = entry["data_offsets"] as? [Any], offsetsAny.count == 2 else {
                throw fail("tensor \(quoted(name)): malformed header entry")
            }
            guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
                throw fail("tensor \(quoted(name)): unsupported dtype \(quoted(dtypeName))")
            }
            var shape: [Int] = []
            for s in shapeAny {
                guard let d = (s as? NSNumber)?.intValue, d >= 0, d < 1 << 32 else {
                    throw fail("tensor \(quoted(name)): bad shape \(quoted("\(shapeAny)"))")
                }
                shape.append(d)
            }
            guard let b = (offsetsAny[0] as? NSNumber)?.intValue, let e = (offsetsAny[1] as? NSNumber)?.intValue,
                  b >= 0, e >= b, e <= available else {
                throw fail("tensor \(quoted(name)): data offsets \(quoted("\(offsetsAny)")) outside the data section (\(available) bytes): truncated?")
            }
            let (count, overflow) = shape.reduce((1, false)) { acc, d in
                let (p, o) = acc.0.multipliedReportingOverflow(by: d)
                return (p, acc.1 || o)
            }
            guard !overflow, count * dtype.size == e - b else {
                throw fail("tensor \(quoted(name)): shape \(shape) of \(dtypeName) does not match its \(e - b) data bytes")
            }
            infos[name] = SafeTensorInfo(dtype: dtype, shape: shape, range: b..<e)
        }
        // As the format requires: the tensors tile the data section back to back, so none overlaps another
        // (two weights sharing bytes) and no bytes are left over.
        var end = 0
        for (name, t) in infos.sorted(by: { ($0.value.range.lowerBound, $0.value.range.upperBound) < ($1.value.range.lowerBound, $1.value.range.upperBound) }) {
            guard t.range.lowerBound == end else {
                throw fail(t.range.lowerBound < end
                    ? "tensor \(quoted(name)) (bytes \(t.range.lowerBound)..<\(t.range.upperBound)) overlaps another tensor"
                    : "bytes \(end)..<\(t.range.lowerBound) of the data section belong to no tensor")
            }
            end = t.range.upperBound
        }
        guard end == available else {
            throw fail("the data section has \(available) bytes but its tensors end at byte \(end)")
        }
        self.path = path
        metadata = meta
        tensors = infos
        self.data = data
        dataStart = start
    }

    public func has(_ name: String) -> Bool { tensors[name] != nil }

    private func info(_ name: String) throws -> SafeTensorInfo {
        guard let t = tensors[name] else { throw EngineError.safetensors(path: path, message: "missing tensor \(name)") }
        return t
    }

    private func withBytes<R>(_ t: SafeTensorInfo, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        data.withUnsafeBytes { raw in
            body(UnsafeRawBufferPointer(rebasing: raw[(dataStart + t.range.lowerBound)..<(dataStart + t.range.upperBound)]))
        }
    }

    /// A tensor as float32 (F32, or F64 converted), optionally checking its shape.
    public func floats(_ name: String, shape expected: [Int]? = nil) throws -> [Float] {
        let t = try info(name)
        if let expected, expected != t.shape {
            throw EngineError.safetensors(path: path, message: "tensor \(name) has shape \(t.shape), expected \(expected)")
        }
        switch t.dtype {
        case .f32:
            return withBytes(t) { b in (0..<t.count).map { Float(bitPattern: b.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self).littleEndian) } }
        case .f64:
            return withBytes(t) { b in (0..<t.count).map { Float(Double(bitPattern: b.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self).littleEndian)) } }
        default:
            throw EngineError.safetensors(path: path, message: "tensor \(name) has dtype \(t.dtype.rawValue), expected F32")
        }
    }

    /// A tensor of 64-bit integers (I64 or U64).
    public func uint64s(_ name: String) throws -> [UInt64] {
        let t = try info(name)
        guard t.dtype == .i64 || t.dtype == .u64 else {
            throw EngineError.safetensors(path: path, message: "tensor \(name) has dtype \(t.dtype.rawValue), expected I64/U64")
        }
        return withBytes(t) { b in (0..<t.count).map { b.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self).littleEndian } }
    }
}

/// Collects tensors and writes one safetensors file atomically (temporary name, fsync, rename).
public struct SafeTensorsWriter {
    private var entries: [(name: String, dtype: SafeTensorsDType, shape: [Int], bytes: Data)] = []
    public var metadata: [String: String] = [:]

    public init() {}

    public mutating func add(_ name: String, floats: [Float], shape: [Int]) {
        precondition(shape.reduce(1, *) == floats.count, "\(name): shape does not match count")
        let d = floats.withUnsafeBufferPointer { Data(buffer: $0) }
        entries.append((name, .f32, shape, d))
    }

    public mutating func add(_ name: String, floats: ArraySlice<Float>, shape: [Int]) {
        add(name, floats: Array(floats), shape: shape)
    }

    public mutating func add(_ name: String, int64s: [Int64], shape: [Int]) {
        let d = int64s.withUnsafeBufferPointer { Data(buffer: $0) }
        entries.append((name, .i64, shape, d))
    }

    public mutating func add(_ name: String, uint64s: [UInt64], shape: [Int]) {
        let d = uint64s.withUnsafeBufferPointer { Data(buffer: $0) }
        entries.append((name, .u64, shape, d))
    }

    /// The file's bytes. Tensors are stored in the order of their names, as the header lists them, whatever the
    /// order they were added in: the same tensors and metadata give the same bytes (callers add from dictionaries,
    /// whose order changes from process to process), so a run repeated with the same seed writes identical files.
    public func encoded() throws -> Data {
        let entries = self.entries.enumerated().sorted { ($0.element.name, $0.offset) < ($1.element.name, $1.offset) }.map(\.element)
        var header: [String: Any] = [:]
        var offset = 0
        for e in entries {
            header[e.name] = ["dtype": e.dtype.rawValue, "shape": e.shape, "data_offsets": [offset, offset + e.bytes.count]]
            offset += e.bytes.count
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while (8 + json.count) % 8 != 0 { json.append(0x20) }  // pad so the data section is 8-byte aligned
        var out = Data(capacity: 8 + json.count + offset)
        var n = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
        out.append(json)
        for e in entries { out.append(e.bytes) }
        return out
    }

    /// Writes to `path` through a temporary file in the same folder, fsynced, then renamed.
    public func write(to path: String) throws {
        let data = try encoded()
        do {
            try AtomicFile.write(data, to: path)
        } catch let error as FileError {
            throw EngineError.checkpoint(path: error.path, message: error.message)
        }
    }
}

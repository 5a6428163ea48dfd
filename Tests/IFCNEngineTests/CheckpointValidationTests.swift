import Foundation
import IFCNCompute
import IFCNEngine
import IFCNSupport
import XCTest

/// Checkpoints whose metadata or tensors would crash or mislead ifcn (issue 14): every one is refused with an
/// error naming the file, before a network is allocated.
final class CheckpointValidationTests: XCTestCase {
    let config = try! NetworkConfig(variant: .paper, channels: 2, patch: 16)

    func tmp(_ name: String) -> String {
        let path = NSTemporaryDirectory() + "/\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).safetensors"
        addTeardownBlock { unlink(path) }
        return path
    }

    /// A valid checkpoint's tensors and metadata, to be altered and written again.
    func validCheckpoint() throws -> (tensors: [(String, SafeTensorInfo, Data)], metadata: [String: String]) {
        let path = tmp("valid")
        let net = Network(config: config, backend: CPUBackend(threads: 1), seed: 1)
        try Checkpoint.save(network: net, info: ModelInfo(config: config, spacingMM: 4, intensity: .paper), to: path)
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let file = try SafeTensorsFile(data: data, path: path)
        var n: UInt64 = 0
        for i in 0..<8 { n |= UInt64(data[i]) << (8 * UInt64(i)) }
        let start = 8 + Int(n)
        let tensors = file.tensors.sorted { $0.key < $1.key }.map { name, info in
            (name, info, data.subdata(in: (start + info.range.lowerBound)..<(start + info.range.upperBound)))
        }
        return (tensors, file.metadata)
    }

    /// Writes tensors (bytes as given) and metadata with `SafeTensorsWriter`'s layout.
    func write(_ tensors: [(String, SafeTensorInfo, Data)], metadata: [String: String]) throws -> String {
        var w = SafeTensorsWriter()
        for (name, info, bytes) in tensors {
            switch info.dtype {
            case .f32:
                let floats = bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
                w.add(name, floats: floats, shape: info.shape)
            default:
                let ints = bytes.withUnsafeBytes { Array($0.bindMemory(to: Int64.self)) }
                w.add(name, int64s: ints, shape: info.shape)
            }
        }
        w.metadata = metadata
        let path = tmp("altered")
        try w.write(to: path)
        return path
    }

    func assertRefused(_ path: String, _ text: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try Checkpoint.load(path: path), file: file, line: line) { error in
            XCTAssertTrue("\(error)".hasPrefix(path + ": "), "\(error)", file: file, line: line)
            XCTAssertTrue("\(error)".contains(text), "\(error)", file: file, line: line)
        }
    }

    func testUnboundedMetadataIsRefused() throws {
        let (tensors, metadata) = try validCheckpoint()
        XCTAssertNoThrow(try Checkpoint.load(path: try write(tensors, metadata: metadata)))
        let cases: [(String, String, String)] = [
            ("spacing_mm", "0", "spacing_mm must be"), ("spacing_mm", "-4", "spacing_mm must be"),
            ("spacing_mm", "nan", "spacing_mm must be"), ("spacing_mm", "inf", "spacing_mm must be"),
            ("spacing_mm", "1e-300", "spacing_mm must be"), ("spacing_mm", "4mm", "is not a number"),
            ("channels", "1000000", "channels must be in 1...4096"), ("channels", "-2", "channels must be"),
            ("channels", "two", "is not a whole number"), ("patch", "24", "power of two"),
            ("patch", "1048576", "power of two from 16 to 1024"), ("variant", "\u{1B}[31mevil", "unknown variant '\\u{1B}[31mevil'"),
            ("intensity", #"{"clamp": [3000, -1000], "scale": 0.001}"#, "lo < hi"),
            ("intensity", #"{"clamp": null, "scale": 0}"#, "non-zero"),
        ]
        for (key, value, message) in cases {
            var m = metadata
            m[key] = value
            assertRefused(try write(tensors, metadata: m), message)
        }
        var partial = metadata
        partial["patch"] = nil
        assertRefused(try write(tensors, metadata: partial), "metadata has variant, channels but not patch")
    }

    /// A network too large for the memory limit is refused from channels and patch alone, saying what it needs.
    func testNetworkSizeIsBoundedBeforeAllocation() throws {
        XCTAssertThrowsError(try NetworkConfig(variant: .paper, channels: 4096, patch: 1024)) { error in
            XCTAssertTrue("\(error)".contains("a paper C=4096 P=1024 network would need"), "\(error)")
            XCTAssertTrue("\(error)".contains("more than the limit"), "\(error)")
        }
        setenv(MemoryLimit.environmentVariable, "0.01", 1)  // 10 MB
        defer { unsetenv(MemoryLimit.environmentVariable) }
        XCTAssertThrowsError(try NetworkConfig(variant: .seed, channels: 16, patch: 32))
        XCTAssertNoThrow(try NetworkConfig(variant: .paper, channels: 2, patch: 16))
    }

    /// The estimate the bound uses is what a network allocates.
    func testNetworkBytesMatchesTheAllocation() throws {
        for (variant, c, p) in [(Variant.paper, 2, 16), (.paper, 3, 32), (.seed, 4, 32), (.seed, 2, 64)] {
            let config = try NetworkConfig(variant: variant, channels: c, patch: p)
            let net = Network(config: config, backend: CPUBackend(threads: 1))
            XCTAssertEqual(config.networkBytes, Double(net.allocatedBytes), "\(config)")
        }
    }

    func testNonFiniteWeightsAreRefused() throws {
        let (tensors, metadata) = try validCheckpoint()
        for (target, value, message) in [("down0.conv1.weight", Float.nan, "not finite"), ("seg.bias", .infinity, "not finite"),
                                         ("down1.bn2.running_mean", -.infinity, "not finite"),
                                         ("up0.bn1.running_var", -1, "negative variance")] {
            var altered = tensors
            let i = try XCTUnwrap(altered.firstIndex { $0.0 == target }, target)
            var bytes = altered[i].2
            withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.replaceSubrange(0..<4, with: $0) }
            altered[i].2 = bytes
            assertRefused(try write(altered, metadata: metadata), "tensor \(target) holds")
        }
    }

    /// Tensors must tile the data section: overlapping ranges, gaps and trailing bytes are refused.
    func testOverlappingTensorsAreRefused() throws {
        func file(_ header: String, payload: Int) -> Data {
            var d = Data(); var n = UInt64(header.utf8.count).littleEndian
            withUnsafeBytes(of: &n) { d.append(contentsOf: $0) }
            d.append(header.data(using: .utf8)!); d.append(Data(count: payload)); return d
        }
        let ok = file(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#, payload: 12)
        XCTAssertNoThrow(try SafeTensorsFile(data: ok, path: "ok"))
        let bad: [(String, Data, String)] = [
            ("overlap", file(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, payload: 12), "overlaps"),
            ("alias", file(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, payload: 8), "overlaps"),
            ("gap", file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#, payload: 12), "belong to no tensor"),
            ("tail", file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, payload: 12), "end at byte 4"),
        ]
        for (name, data, message) in bad {
            XCTAssertThrowsError(try SafeTensorsFile(data: data, path: "x.safetensors"), name) { error in
                XCTAssertTrue("\(error)".hasPrefix("x.safetensors: ") && "\(error)".contains(message), "\(name): \(error)")
            }
        }
        // A real checkpoint whose two weights share bytes.
        let (tensors, metadata) = try validCheckpoint()
        let path = try write(tensors, metadata: metadata)
        var data = try Data(contentsOf: URL(fileURLWithPath: path))
        var n: UInt64 = 0
        for i in 0..<8 { n |= UInt64(data[i]) << (8 * UInt64(i)) }
        var header = try XCTUnwrap(JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + Int(n)))) as? [String: Any])
        // seg.bias moved onto fc.bias's bytes (fc.bias comes first in the file, so the overlap is met before
        // the bytes seg.bias leaves behind).
        var a = try XCTUnwrap(header["seg.bias"] as? [String: Any])
        let b = try XCTUnwrap(header["fc.bias"] as? [String: Any])
        a["data_offsets"] = b["data_offsets"]
        header["seg.bias"] = a
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count < Int(n) { json.append(0x20) }
        XCTAssertEqual(json.count, Int(n))
        data.replaceSubrange(8..<(8 + Int(n)), with: json)
        try data.write(to: URL(fileURLWithPath: path))
        assertRefused(path, "overlaps")
    }
}

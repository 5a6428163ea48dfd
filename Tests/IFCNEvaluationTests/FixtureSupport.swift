import Foundation
import IFCNTestSupport
import XCTest
@testable import IFCNEvaluation

/// Fixture files made by Fixtures/make_fixtures.py (numpy/scipy).
enum Fixtures {
    static func url(_ name: String) throws -> URL { FixtureFolder(bundle: .module).url(name) }

    static func bytes(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: url(name)))
    }

    static func float64(_ name: String) throws -> [Double] {
        let data = try Data(contentsOf: url(name))
        return data.withUnsafeBytes { raw in
            (0..<data.count / 8).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))) }
        }
    }

    static func expected() throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: url("expected.json")))
        return try XCTUnwrap(object as? [String: Any])
    }

    static func size(_ value: Any?) throws -> SIMD3<Int> {
        let v = try XCTUnwrap(value as? [Int])
        return SIMD3(v[0], v[1], v[2])
    }

    static func spacing(_ value: Any?) throws -> SIMD3<Double> {
        let v = try XCTUnwrap(value as? [Double])
        return SIMD3(v[0], v[1], v[2])
    }

    /// Label map of fixture case `name` ("case1", ...), side "reference" or "prediction".
    static func labelMap(_ name: String, _ side: String) throws -> LabelMap {
        let e = try expected()
        let labels = try bytes("\(name)_\(side).u8").map { Int32($0) }
        return LabelMap(size: try size(e["size"]), spacing: try spacing(e["spacing"]), labels: labels)
    }
}

/// Mask of a box [lower, upper] (inclusive) in a grid of `size`.
func boxMask(_ size: SIMD3<Int>, _ lower: SIMD3<Int>, _ upper: SIMD3<Int>) -> [Bool] {
    var mask = [Bool](repeating: false, count: size.x * size.y * size.z)
    for z in lower.z...upper.z { for y in lower.y...upper.y { for x in lower.x...upper.x {
        mask[x + size.x * (y + size.y * z)] = true
    } } }
    return mask
}

/// Label map with `label` painted into each given box.
func labelMap(_ size: SIMD3<Int>, spacing: SIMD3<Double> = SIMD3(1, 1, 1), spineAxis: Int = 2,
              _ boxes: [(label: Int32, lower: SIMD3<Int>, upper: SIMD3<Int>)]) -> LabelMap {
    var labels = [Int32](repeating: 0, count: size.x * size.y * size.z)
    for box in boxes {
        for (i, inside) in boxMask(size, box.lower, box.upper).enumerated() where inside { labels[i] = box.label }
    }
    return LabelMap(size: size, spacing: spacing, labels: labels, spineAxis: spineAxis)
}

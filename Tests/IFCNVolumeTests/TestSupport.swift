import Foundation
import IFCNTestSupport
import XCTest
@testable import IFCNVolume

/// Paths and helpers shared by the IFCNVolume tests.
enum TestSupport {
    /// The copied Fixtures folder.
    static var fixtures: String { FixtureFolder(bundle: .module).path }

    static func fixture(_ name: String) -> String { FixtureFolder(bundle: .module).path(name) }

    static func json(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: fixture(name)))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// The VerSe sample folder the repository carries (data/verse).
    static var verseDir: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("data/verse").standardized.path
    }

    static func verse() throws -> String {
        let dir = verseDir
        guard FileManager.default.fileExists(atPath: dir + "/sub-verse008_ct.nii.gz") else {
            XCTFail("VerSe sample data missing from the repository: \(dir)")
            throw CocoaError(.fileNoSuchFile)
        }
        return dir
    }

    /// A fresh temporary folder, removed at the end of the test.
    static func tempDir(_ test: XCTestCase) throws -> String {
        let dir = NSTemporaryDirectory() + "ifcn-volume-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        test.addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    /// A small oblique, anisotropic grid.
    static let obliqueGrid: Grid = {
        // Rotation about (1, 2, 2)/3 by 30 degrees, column-wise.
        let c = cos(Double.pi / 6), s = sin(Double.pi / 6), t = 1 - c
        let (x, y, z) = (1.0 / 3, 2.0 / 3, 2.0 / 3)
        let r: [Double] = [t * x * x + c, t * x * y - s * z, t * x * z + s * y,
                           t * x * y + s * z, t * y * y + c, t * y * z - s * x,
                           t * x * z - s * y, t * y * z + s * x, t * z * z + c]
        return Grid(size: SIMD3(7, 5, 4), spacing: SIMD3(0.75, 1.25, 2.5), origin: SIMD3(-12.5, 30.25, 101.0), direction: r)
    }()

    /// Values that fit every voxel type (0...100, integral) on `grid`.
    static func pattern(_ grid: Grid) -> [Float] {
        (0..<grid.count).map { Float(($0 * 37) % 101) }
    }

    static func assertGrid(_ a: Grid, _ b: Grid, accuracy: Double = 1e-5, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.size, b.size, "size", file: file, line: line)
        for i in 0..<3 {
            XCTAssertEqual(a.spacing[i], b.spacing[i], accuracy: accuracy * max(1, abs(b.spacing[i])), "spacing[\(i)]", file: file, line: line)
            XCTAssertEqual(a.origin[i], b.origin[i], accuracy: accuracy * max(1, abs(b.origin[i])), "origin[\(i)]", file: file, line: line)
        }
        for i in 0..<9 {
            XCTAssertEqual(a.direction[i], b.direction[i], accuracy: accuracy, "direction[\(i)]", file: file, line: line)
        }
    }
}

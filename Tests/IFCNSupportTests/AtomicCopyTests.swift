import Foundation
import IFCNSupport
import XCTest

final class AtomicCopyTests: XCTestCase {
    /// A copy is a file of its own: damaging the original leaves it whole, and no temporary file remains.
    func testCopyIsAnIndependentFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ifcn-copy-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let bytes = Data((0..<(5 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) })  // bigger than one copy buffer
        try AtomicFile.write(bytes, to: dir + "/a")
        try AtomicFile.copy(from: dir + "/a", to: dir + "/b")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir + "/b")), bytes)
        var sa = stat(), sb = stat()
        XCTAssertEqual(stat(dir + "/a", &sa), 0); XCTAssertEqual(stat(dir + "/b", &sb), 0)
        XCTAssertNotEqual(sa.st_ino, sb.st_ino)
        XCTAssertEqual(sb.st_nlink, 1)
        try Data("damaged".utf8).write(to: URL(fileURLWithPath: dir + "/a"))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir + "/b")), bytes)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).sorted(), ["a", "b"])
        XCTAssertThrowsError(try AtomicFile.copy(from: dir + "/missing", to: dir + "/c")) { error in
            XCTAssertTrue("\(error)".contains(dir + "/missing"), "\(error)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).sorted(), ["a", "b"])
    }

    func testTemporaryNamesAreRecognised() {
        let temp = AtomicFile.temporaryPath(for: "/x/latest.safetensors", keepingExtension: ".safetensors")
        XCTAssertTrue(AtomicFile.isTemporaryName(URL(fileURLWithPath: temp).lastPathComponent))
        XCTAssertFalse(AtomicFile.isTemporaryName("latest.safetensors"))
        XCTAssertFalse(AtomicFile.isTemporaryName("iter-0000010.safetensors"))
    }
}

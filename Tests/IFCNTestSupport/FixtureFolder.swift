import Foundation
import XCTest

/// The `Fixtures` folder a test target copies into its bundle (`resources: [.copy("Fixtures")]`):
/// the one place that turns a fixture's name into a path. Each target passes its own `Bundle.module`.
public struct FixtureFolder {
    public let url: URL

    public init(bundle: Bundle, file: StaticString = #filePath, line: UInt = #line) {
        guard let url = bundle.url(forResource: "Fixtures", withExtension: nil) else {
            XCTFail("no Fixtures folder in \(bundle.bundlePath)", file: file, line: line)
            self.url = URL(fileURLWithPath: "/nonexistent-fixtures")
            return
        }
        self.url = url
    }

    public var path: String { url.path }
    public func url(_ name: String) -> URL { url.appendingPathComponent(name) }
    public func path(_ name: String) -> String { url(name).path }
}

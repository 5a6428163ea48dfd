import XCTest
final class PlaceholderIFCNEngineTests: XCTestCase { func testBuilds() {} }

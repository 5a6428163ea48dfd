import XCTest
final class PlaceholderIFCNDistributedTests: XCTestCase { func testBuilds() {} }

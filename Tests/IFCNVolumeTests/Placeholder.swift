import XCTest
final class PlaceholderIFCNVolumeTests: XCTestCase { func testBuilds() {} }

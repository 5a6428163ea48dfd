import XCTest
final class PlaceholderIFCNEvaluationTests: XCTestCase { func testBuilds() {} }

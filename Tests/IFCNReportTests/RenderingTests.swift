import Foundation
import IFCNEvaluation
@testable import IFCNReport
import IFCNVolume
import XCTest

/// PNG round trips, slice orientation and aspect ratio, the palette, the charts.
final class RenderingTests: XCTestCase {
    func testPNGRoundTripKeepsEveryPixel() throws {
        var image = RGBImage(width: 37, height: 11)
        for y in 0..<11 { for x in 0..<37 { image.set(x, y, (UInt8(x * 7 % 256), UInt8(y * 23 % 256), UInt8((x * y) % 256))) } }
        let data = try PNG.encode(image)
        XCTAssertEqual(Array(data.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        XCTAssertEqual(try PNG.decode(data), image)
    }

    func testDecodingGarbageNamesTheInput() {
        XCTAssertThrowsError(try PNG.decode(Data("not a png".utf8), name: "x.png")) { error in
            XCTAssertTrue("\(error)".contains("x.png"), "\(error)")
        }
    }

    func testTwentyFiveVertebraeGetDistinctColoursAndNeighboursDifferStrongly() {
        let colors = (1...25).map { LabelPalette.color(Int32($0)) }
        func distance(_ a: (UInt8, UInt8, UInt8), _ b: (UInt8, UInt8, UInt8)) -> Double {
            let d = [Double(a.0) - Double(b.0), Double(a.1) - Double(b.1), Double(a.2) - Double(b.2)]
            return sqrt(d.map { $0 * $0 }.reduce(0, +))
        }
        for i in 0..<25 { for j in (i + 1)..<25 { XCTAssertGreaterThan(distance(colors[i], colors[j]), 20, "labels \(i + 1), \(j + 1)") } }
        for i in 0..<24 { XCTAssertGreaterThan(distance(colors[i], colors[i + 1]), 150, "labels \(i + 1), \(i + 2)") }
    }

    /// A canonical (LPS) volume whose anterior-superior corner is bright: sagittal views show it top left,
    /// and a 2 mm x 1 mm x 4 mm grid keeps the physical aspect ratio.
    func testSagittalViewHasAnteriorLeftSuperiorUpAndTheSpacingsAspect() {
        let grid = Grid.canonical(size: SIMD3(10, 20, 10), spacing: SIMD3(2, 1, 4), origin: .zero)
        var image = Volume(grid: grid, fill: -1000)
        for z in 7..<10 { for y in 0..<4 { for x in 0..<10 { image[x, y, z] = 1000 } } }  // anterior (low y), superior (high z)
        let r = SliceRenderer(grid: grid, image: image, centreOn: nil, longestSide: 80)
        let sag = r.size(.sagittal), cor = r.size(.coronal)
        XCTAssertEqual(sag.width, 40); XCTAssertEqual(sag.height, 80)  // 20 mm x 40 mm at 0.5 mm per pixel
        XCTAssertEqual(cor.width, 40); XCTAssertEqual(cor.height, 80)
        let s = r.render(.sagittal, letters: false)
        XCTAssertEqual(s.get(2, 2).0, 255)                              // top left: anterior superior
        XCTAssertEqual(s.get(sag.width - 3, 2).0, 0)                   // top right: posterior
        XCTAssertEqual(s.get(2, sag.height - 3).0, 0)                  // bottom left: inferior
    }

    /// A grid stored right-to-left and inferior-to-superior flipped shows the same picture as the canonical one.
    func testFlippedStorageRendersLikeCanonical() {
        let size = SIMD3(6, 8, 5)
        let canonical = Grid.canonical(size: size, spacing: SIMD3(1, 1, 1), origin: .zero)
        var a = Volume(grid: canonical, fill: -1000)
        for z in 0..<5 { for y in 0..<8 { for x in 0..<6 { a[x, y, z] = Float(100 * z + 10 * y) } } }
        // Same world content with x and z index axes reversed (direction -1 on both).
        let flipped = Grid(size: size, spacing: SIMD3(1, 1, 1), origin: SIMD3(5, 0, 4), direction: [-1, 0, 0, 0, 1, 0, 0, 0, -1])
        var b = Volume(grid: flipped, fill: 0)
        for z in 0..<5 { for y in 0..<8 { for x in 0..<6 { b[x, y, z] = a[5 - x, y, 4 - z] } } }
        for view in SliceView.allCases {
            let ra = SliceRenderer(grid: canonical, image: a, centreOn: nil).render(view, letters: false)
            let rb = SliceRenderer(grid: flipped, image: b, centreOn: nil).render(view, letters: false)
            XCTAssertEqual(ra, rb, "\(view)")
        }
    }

    func testOverlayColoursTheLabelsAndTheChartsHoldEverySeries() throws {
        let grid = Grid.canonical(size: SIMD3(12, 12, 12), spacing: SIMD3(1, 1, 1), origin: .zero)
        var labels = LabelVolume(grid: grid)
        for z in 2..<6 { for y in 3..<9 { for x in 3..<9 { labels[x, y, z] = 7 } } }
        let image = Volume(grid: grid, fill: -1000)
        let r = SliceRenderer(grid: grid, image: image, centreOn: labels, longestSide: 120)
        XCTAssertEqual(r.sliceIndex, SIMD3(6, 6, 4))  // centroid (5.5, 5.5, 3.5) rounded
        let s = r.render(.coronal, overlay: LabelOverlay(labels: labels, numbered: false), letters: false)
        let inside = s.get(60, 120 - 40)                               // z = 4 -> row from the top ~ 75
        let c = LabelPalette.color(7)
        XCTAssertEqual(Double(inside.0), Double(c.0) * 0.45, accuracy: 2)
        let svg = LineChart(title: "t", xLabel: "iteration", yLabel: "Dice",
                            series: [ChartSeries(name: "a", color: "#000", points: [(1, 0.2), (2, nil), (3, 0.5), (4, 0.6)])],
                            markers: [(2.5, "lr x0.1")], yRange: 0...1).svg()
        XCTAssertEqual(svg.components(separatedBy: "<circle").count - 1, 3)
        XCTAssertEqual(svg.components(separatedBy: "<polyline").count - 1, 1)  // (1) alone, then (3)-(4)
        XCTAssertTrue(svg.contains("stroke-dasharray"))
    }
}

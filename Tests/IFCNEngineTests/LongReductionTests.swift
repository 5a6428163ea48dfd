import IFCNCompute
import IFCNEngine
import XCTest

/// Weight gradients are sums over a whole patch. The CPU backend reduces each chunk with sgemm
/// in float32 and adds the chunk results in float64 (WideSums), so a patch-long sum carries one
/// chunk's float32 error, not hundreds of float32 additions'. The data make every chunk's sum
/// exact in float32 (x = 1 and a gradient g with few significant bits: any sum of up to a chunk's
/// count of g is exact) while the patch-long sum is not: a float32 running sum of the chunk sums
/// is off by ~2e-6 relative on the edge taps (conv3, 64^3) and ~2e-4 (conv1, 2^20 voxels, one sgemm), as
/// emulating those float32 sums in numpy shows; the float64 sum is exact up to the final rounding.
final class LongReductionTests: XCTestCase {
    let b = CPUBackend(threads: 2)
    var h: Host { Host(backend: b) }
    /// One float32 rounding (2^-24 relative) and a margin.
    let bound = 1e-7

    /// Number of voxels of `e` whose neighbour at `offset` (each axis -1...1) is inside `e`.
    func inside(_ e: Extent3, _ oz: Int, _ oy: Int, _ ox: Int) -> Double {
        Double((e.d - abs(oz)) * (e.h - abs(oy)) * (e.w - abs(ox)))
    }

    func testConv3WeightGradientOverAWholePatchIsAccurate() {
        // 14 significant bits: sums of up to 1024 (wideSumColumns) are exact.
        let e = Extent3(64, 64, 64), V = e.voxels, g: Float = 1 + 0x1p-13
        let gw = h.zeros(27), gb = h.zeros(1)
        b.conv3BackwardWeight(input: h.tensor([Float](repeating: 1, count: V)), inChannels: 1, extent: e,
                              gradOutput: h.tensor([Float](repeating: g, count: V)), outChannels: 1,
                              gradWeight: gw, gradBias: gb)
        let got = h.read(gw)
        for kz in 0..<3 {
            for ky in 0..<3 {
                for kx in 0..<3 {
                    let want = Double(g) * inside(e, kz - 1, ky - 1, kx - 1)
                    let rel = abs(Double(got[kz * 9 + ky * 3 + kx]) - want) / want
                    XCTAssertLessThanOrEqual(rel, bound, "tap \(kz)\(ky)\(kx): \(got[kz * 9 + ky * 3 + kx]) vs \(want)")
                }
            }
        }
        XCTAssertLessThanOrEqual(abs(Double(h.read(gb)[0]) - Double(g) * Double(V)) / (Double(g) * Double(V)), bound)
    }

    func testConv1WeightGradientOverAWholePatchIsAccurate() {
        // 13 significant bits: sums of up to 2048 (conv1WeightChunk) are exact.
        let V = 1 << 20, g: Float = 1 + 0x1p-12
        let x = [Float](repeating: 1, count: V) + [Float](repeating: 0.5, count: V)
        let gw = h.zeros(2), gb = h.zeros(1)
        b.conv1Backward(input: h.tensor(x), inChannels: 2, voxels: V, weight: h.tensor([0.3, -0.2]),
                        gradOutput: h.tensor([Float](repeating: g, count: V)), outChannels: 1,
                        gradInput: nil, accumulate: false, gradWeight: gw, gradBias: gb)
        let got = h.read(gw), want = [Double(g) * Double(V), Double(g) * 0.5 * Double(V)]
        for i in 0..<2 {
            XCTAssertLessThanOrEqual(abs(Double(got[i]) - want[i]) / want[i], bound, "weight \(i): \(got[i]) vs \(want[i])")
        }
        XCTAssertLessThanOrEqual(abs(Double(h.read(gb)[0]) - Double(g) * Double(V)) / (Double(g) * Double(V)), bound)
    }

    /// The float64 sums do not depend on scheduling: repeated runs give the same bits.
    func testWeightGradientIsBitIdenticalAcrossRuns() {
        var rng = SeededGenerator(seed: 11)
        let e = Extent3(16, 24, 20), cin = 3, cout = 4
        let x = h.tensor(randomValues(cin * e.voxels, &rng)), dy = h.tensor(randomValues(cout * e.voxels, &rng))
        func run() -> [Float] {
            let gw = h.zeros(cout * cin * 27)
            b.conv3BackwardWeight(input: x, inChannels: cin, extent: e, gradOutput: dy, outChannels: cout,
                                  gradWeight: gw, gradBias: nil)
            return h.read(gw)
        }
        let first = run()
        for _ in 0..<3 { XCTAssertEqual(run().map(\.bitPattern), first.map(\.bitPattern)) }
    }
}

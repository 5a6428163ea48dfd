import Foundation
import IFCNCompute
import IFCNEngine
import IFCNVolume
import XCTest
@testable import IFCNSegmentation

/// Ground truth on the canonical grid the segmenter works on, with per-label facts the stand-in models use.
struct CanonicalTruth {
    let grid: Grid
    /// Labels, x fastest.
    let labels: [Int32]
    /// Voxels per label (index = label).
    let voxels: [Int]
    /// Labels that touch the first or last slice (not completely visible).
    let cut: Set<Int>

    init(_ volume: LabelVolume) {
        grid = volume.grid
        labels = volume.voxels
        let maxLabel = Int(labels.max() ?? 0)
        var voxels = [Int](repeating: 0, count: maxLabel + 1)
        var cut = Set<Int>()
        let slice = grid.size.x * grid.size.y
        for (i, l) in labels.enumerated() where l > 0 {
            voxels[Int(l)] += 1
            if i < slice || i >= labels.count - slice { cut.insert(Int(l)) }
        }
        self.voxels = voxels
        self.cut = cut
    }

    /// Labels with at least `minVoxels` voxels, superior to inferior (SyntheticSpine numbers them so).
    func labels(atLeast minVoxels: Int) -> [Int] {
        (1..<voxels.count).filter { voxels[$0] >= minVoxels }
    }
}

/// Records every evaluation and checks that no input (patch position and memory under it) is seen twice.
class RecordingModel: HostPatchModel {
    let patch: Int
    private(set) var origins: [SIMD3<Int>] = []
    private(set) var repeatedInputs = 0
    private var seen = Set<[Int]>()

    init(patch: Int) { self.patch = patch }

    func evaluate(image: UnsafePointer<Float>, memory: UnsafePointer<Float>, origin: SIMD3<Int>,
                  probabilities: UnsafeMutablePointer<Float>) -> Double {
        origins.append(origin)
        let v = patch * patch * patch
        var key = [origin.x, origin.y, origin.z]
        for i in 0..<v where memory[i] != 0 { key.append(i) }
        if !seen.insert(key).inserted { repeatedInputs += 1 }
        probabilities.update(repeating: 0, count: v)
        return respond(memory: memory, origin: origin, probabilities: probabilities)
    }

    /// Fills `probabilities` (already zero); returns the completeness.
    func respond(memory: UnsafePointer<Float>, origin: SIMD3<Int>, probabilities: UnsafeMutablePointer<Float>) -> Double {
        0
    }
}

/// A perfect network: segments the ground-truth vertebra under the patch that is not yet in memory and has
/// a voxel closest to the patch centre (ties: the more superior). Vertebrae smaller than `ignoreBelow`
/// voxels are invisible to it. Completeness: 0.9 for vertebrae inside the image, 0.1 for those cut by
/// the first or last slice.
final class OracleModel: RecordingModel {
    let truth: CanonicalTruth
    let ignoreBelow: Int

    init(truth: CanonicalTruth, patch: Int, ignoreBelow: Int) {
        self.truth = truth
        self.ignoreBelow = ignoreBelow
        super.init(patch: patch)
    }

    override func respond(memory: UnsafePointer<Float>, origin: SIMD3<Int>,
                          probabilities: UnsafeMutablePointer<Float>) -> Double {
        let n = truth.voxels.count
        var visible = [Int](repeating: 0, count: n), remembered = [Int](repeating: 0, count: n)
        var closest = [Int](repeating: .max, count: n)
        forEachVoxel(origin) { p, label, d2 in
            visible[label] += 1
            if memory[p] != 0 { remembered[label] += 1 }
            closest[label] = min(closest[label], d2)
        }
        var chosen = 0
        for l in 1..<max(n, 1) where visible[l] > 0 && truth.voxels[l] >= ignoreBelow && 2 * remembered[l] <= visible[l] {
            if chosen == 0 || closest[l] < closest[chosen] { chosen = l }
        }
        guard chosen > 0 else { return 0.5 }
        forEachVoxel(origin) { p, label, _ in if label == chosen { probabilities[p] = 1 } }
        return truth.cut.contains(chosen) ? 0.1 : 0.9
    }

    /// Visits labelled voxels of the patch inside the image: (patch index, label, squared distance to centre).
    func forEachVoxel(_ o: SIMD3<Int>, _ body: (Int, Int, Int) -> Void) {
        let s = truth.grid.size, p = patch, h = patch / 2
        truth.labels.withUnsafeBufferPointer { lab in
            for pz in 0..<p where o.z + pz >= 0 && o.z + pz < s.z {
                for py in 0..<p where o.y + py >= 0 && o.y + py < s.y {
                    for px in 0..<p where o.x + px >= 0 && o.x + px < s.x {
                        let l = Int(lab[(o.x + px) + s.x * ((o.y + py) + s.y * (o.z + pz))])
                        guard l > 0 else { continue }
                        let d2 = (px - h) * (px - h) + (py - h) * (py - h) + (pz - h) * (pz - h)
                        body(px + p * (py + p * pz), l, d2)
                    }
                }
            }
        }
    }
}

/// A broken network that always segments the same vertebra, whatever the memory says.
final class StuckModel: RecordingModel {
    let truth: CanonicalTruth
    let label: Int32

    init(truth: CanonicalTruth, patch: Int, label: Int) {
        self.truth = truth
        self.label = Int32(label)
        super.init(patch: patch)
    }

    override func respond(memory: UnsafePointer<Float>, origin o: SIMD3<Int>,
                          probabilities: UnsafeMutablePointer<Float>) -> Double {
        let s = truth.grid.size, p = patch
        for pz in 0..<p where o.z + pz >= 0 && o.z + pz < s.z {
            for py in 0..<p where o.y + py >= 0 && o.y + py < s.y {
                for px in 0..<p where o.x + px >= 0 && o.x + px < s.x
                    && truth.labels[(o.x + px) + s.x * ((o.y + py) + s.y * (o.z + pz))] == label {
                    probabilities[px + p * (py + p * pz)] = 1
                }
            }
        }
        return 1
    }
}

/// Segments nothing anywhere.
final class EmptyModel: RecordingModel {}

/// Helpers shared by the tests.
enum Fixture {
    /// Model description for stand-in models: patch P at `spacing` mm.
    static func info(patch: Int, spacing: Double) throws -> ModelInfo {
        ModelInfo(config: try NetworkConfig(variant: .paper, channels: 2, patch: patch), spacingMM: spacing,
                  intensity: .paper)
    }

    /// A C=2, P=16 paper network made to segment everything it sees (segmentation bias 50): every patch yields
    /// a fragment, so the walk accepts instances where random weights alone would find none.
    static func segmentingNetwork(threads: Int = 2) throws -> Network {
        let config = try NetworkConfig(variant: .paper, channels: 2, patch: 16)
        let network = Network(config: config, backend: CPUBackend(threads: threads), seed: 5)
        var parameters = network.readParameters()
        let bias = try XCTUnwrap(network.parameterTable["seg.bias"])
        for i in 0..<bias.count { parameters[bias.offset + i] = 50 }
        network.loadParameters(parameters)
        return network
    }

    /// A synthetic scan resampled onto the canonical grid at `spacing`: (image HU, labels).
    static func canonicalSpine(seed: UInt64, size: SIMD3<Int> = SyntheticSpine.defaultSize,
                               scanSpacing: SIMD3<Double> = SyntheticSpine.defaultSpacing,
                               spacing: Double) -> (image: Volume, labels: LabelVolume) {
        let c = SyntheticSpine.generate(seed: seed, size: size, spacing: scanSpacing)
        let grid = try! canonicalGrid(covering: c.image.grid, spacing: spacing)
        return (resample(c.image, onto: grid, interpolation: .linear, fill: -1000),
                resample(c.labels, onto: grid))
    }

    static func dice(_ a: [Int32], _ la: Int32, _ b: [Int32], _ lb: Int32) -> Double {
        var na = 0, nb = 0, both = 0
        for i in 0..<a.count {
            let x = a[i] == la, y = b[i] == lb
            if x { na += 1 }
            if y { nb += 1 }
            if x && y { both += 1 }
        }
        return na + nb == 0 ? 1 : 2 * Double(both) / Double(na + nb)
    }
}

/// The network on host patches (what `segment` did before the scan and memory moved to the backend).
final class HostNetworkModel: HostPatchModel {
    let network: Network
    init(network: Network) { self.network = network }

    func evaluate(image: UnsafePointer<Float>, memory: UnsafePointer<Float>, origin: SIMD3<Int>,
                  probabilities: UnsafeMutablePointer<Float>) -> Double {
        network.setInput(image: image, memory: memory)
        network.forward(training: false)
        network.readSegmentation(into: probabilities)
        return network.completeness
    }
}

import Foundation
import IFCNTestSupport
import IFCNCompute
import IFCNEngine
import XCTest

func fixturePath(_ name: String) -> String { FixtureFolder(bundle: .module).path(name) }

/// The backends the tests run on: the CPU always, CUDA where a GPU and its libraries load
/// (fp32 math), so the reference check and the gradient tests run once per available backend.
enum TestBackends {
    static let available: [any ComputeBackend] = {
        // The CPU with its per-shape rule (direct kernels where the CPU has AVX2), and with im2col forced.
        // (Winograd, for inference only, has its own checks: ConvolutionAlgorithmTests, ReferenceFixtureTests.)
        var list: [any ComputeBackend] = [CPUBackend(threads: 2), CPUBackend(threads: 2, convolutionAlgorithm: .im2col)]
        if CUDAInventory.probe().usable, let cuda = try? Backends.make(.cuda, gpuMath: .fp32) { list.append(cuda) }
        return list
    }()
}

/// Host <-> backend helpers for kernel tests.
struct Host {
    let backend: any ComputeBackend
    func tensor(_ values: [Float]) -> TensorRef {
        let t = TensorRef(buffer: backend.allocate(values.count))
        values.withUnsafeBufferPointer { backend.upload($0.baseAddress!, to: t) }
        return t
    }
    func zeros(_ n: Int) -> TensorRef { TensorRef(buffer: backend.allocate(n)) }
    func read(_ t: TensorRef) -> [Float] {
        var out = [Float](repeating: 0, count: t.count)
        out.withUnsafeMutableBufferPointer { backend.download(t, to: $0.baseAddress!) }
        return out
    }
}

func randomValues(_ n: Int, _ rng: inout SeededGenerator, scale: Double = 1) -> [Float] {
    (0..<n).map { _ in Float(rng.normal() * scale) }
}

/// Central finite differences of L(x) = sum(r * f(x)) at a sample of coordinates, in float64
/// accumulation, compared with the analytic gradient.
func assertGradient(_ name: String, at x: [Float], analytic: [Float], samples: Int = 40, eps: Float = 1e-2,
                    tolerance: Double = 1e-2, _ loss: ([Float]) -> Double,
                    file: StaticString = #filePath, line: UInt = #line) {
    var rng = SeededGenerator(seed: 99)
    var num = 0.0, den = 0.0
    let picks = x.count <= samples ? Array(0..<x.count) : (0..<samples).map { _ in rng.int(below: x.count) }
    for i in picks {
        var xp = x, xm = x
        xp[i] += eps; xm[i] -= eps
        let fd = (loss(xp) - loss(xm)) / (2 * Double(eps))
        num += (fd - Double(analytic[i])) * (fd - Double(analytic[i]))
        den += fd * fd
    }
    let rel = den > 0 ? (num / den).squareRoot() : num.squareRoot()
    XCTAssertLessThanOrEqual(rel, tolerance, "\(name): finite-difference relative error \(rel)", file: file, line: line)
}

func dot(_ a: [Float], _ b: [Float]) -> Double {
    zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
}

/// `steps` Adam steps of a paper C=4, P=16 network (seed 3) on one repeated random example with a striped target;
/// `afterEachStep` runs after each. The parameters after them and each step's loss.
func trainSmallNetwork(on backend: any ComputeBackend, steps: Int,
                       afterEachStep: () -> Void = {}) throws -> (parameters: [Float], losses: [Double]) {
    let config = try NetworkConfig(variant: .paper, channels: 4, patch: 16)
    let net = Network(config: config, backend: backend, seed: 3)
    let adam = Adam(network: net, learningRate: 1e-2)
    var rng = SeededGenerator(seed: 5)
    let V = config.voxels
    let image = randomValues(V, &rng), memory = [Float](repeating: 0, count: V)
    let target = (0..<V).map { i in Float(i % 16 < 8 ? 1 : 0) }, weight = [Float](repeating: 1, count: V)
    var losses: [Double] = []
    for _ in 0..<steps {
        image.withUnsafeBufferPointer { im in memory.withUnsafeBufferPointer { net.setInput(image: im.baseAddress!, memory: $0.baseAddress!) } }
        net.forward(training: true)
        net.zeroGradients()
        let l = target.withUnsafeBufferPointer { t in weight.withUnsafeBufferPointer { net.backward(target: t.baseAddress!, weight: $0.baseAddress!, completenessLabel: 1) } }
        adam.update()
        afterEachStep()
        losses.append(l.total)
    }
    return (net.readParameters(), losses)
}

/// A rounding of float32 to `fractionBits` fraction bits, kept in float32 (bfloat16: 7, TF32: 10), rounds to nearest
/// with ties to even: at the ties above 1 and just beside them, on a negative tie; infinity and NaN stay, past the
/// largest finite value is infinity, -0 keeps its sign; and on 1,000 normal values it is idempotent, clears the
/// dropped bits and moves a value by at most half a unit in the last place.
func assertRoundsToNearestEven(_ round: (Float) -> Float, fractionBits: Int, file: StaticString = #filePath, line: UInt = #line) {
    let u = Float(sign: .plus, exponent: -(fractionBits + 1), significand: 1)  // half a unit in the last place at 1
    let beside: Float = 1.0 / 1_048_576                                          // 2^-20: far less than u, far more than float's ulp
    XCTAssertEqual(round(1), 1, file: file, line: line)
    XCTAssertEqual(round(1 + u), 1, "tie, 1's last bit is even: down", file: file, line: line)
    XCTAssertEqual(round(1 + 3 * u), 1 + 4 * u, "tie, 1 + 2u has an odd last bit: up", file: file, line: line)
    XCTAssertEqual(round(1 + u + beside), 1 + 2 * u, "just past the tie: up", file: file, line: line)
    XCTAssertEqual(round(1 + u - beside), 1, "just short of it: down", file: file, line: line)
    XCTAssertEqual(round(-(1 + 3 * u)), -(1 + 4 * u), file: file, line: line)
    XCTAssertEqual(round(.infinity), .infinity, file: file, line: line)
    XCTAssertEqual(round(-.infinity), -.infinity, file: file, line: line)
    XCTAssertTrue(round(.nan).isNaN, file: file, line: line)
    XCTAssertEqual(round(.greatestFiniteMagnitude), .infinity, file: file, line: line)
    XCTAssertEqual(round(-0.0).sign, .minus, file: file, line: line)
    let dropped = UInt32(1) << UInt32(23 - fractionBits) - 1
    var rng = SeededGenerator(seed: 9)
    for _ in 0..<1000 {
        let x = Float(rng.normal() * 100)
        let r = round(x)
        XCTAssertEqual(r.bitPattern & dropped, 0, file: file, line: line)
        XCTAssertEqual(round(r), r, file: file, line: line)
        XCTAssertLessThanOrEqual(abs(r - x), abs(x) * u * 1.0001, file: file, line: line)
    }
}

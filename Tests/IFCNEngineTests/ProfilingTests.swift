import Foundation
import IFCNCompute
import IFCNEngine
import IFCNSupport
import XCTest

/// `ifcn bench --profile`: the marking wrapper changes no result, and its profile splits a step by what ran.
final class ProfilingTests: XCTestCase {
    func testProfiledStepsAreTheSameStepsSplitByKind() throws {
        for backend in TestBackends.available {
            let plain = try trainSmallNetwork(on: backend, steps: 3)
            let profiler = Backends.profiling(backend)
            let profiled = try trainSmallNetwork(on: profiler, steps: 3) { profiler.collect() }
            XCTAssertEqual(profiled.parameters, plain.parameters, backend.name)
            XCTAssertEqual(profiled.losses, plain.losses, backend.name)

            let p = profiler.profile()
            XCTAssertEqual(p.spans, 3, backend.name)
            let calls = { (k: KernelKind) in p.calls[k] ?? 0 }
            // Every 3x3x3 convolution runs forward and has its weight gradient; all but the first (on the input
            // image) pass a gradient back.
            XCTAssertGreaterThan(calls(.convolutionForward), 0, backend.name)
            XCTAssertEqual(calls(.convolutionBackwardFilter), calls(.convolutionForward), backend.name)
            XCTAssertEqual(calls(.convolutionBackwardData), calls(.convolutionForward) - 1, backend.name)
            let convolutions = Network(config: try NetworkConfig(variant: .paper, channels: 4, patch: 16), backend: backend)
                .parameterTable.entries.filter { $0.shape.count == 5 && $0.shape.suffix(3) == [3, 3, 3] }.count
            XCTAssertGreaterThanOrEqual(calls(.convolutionForward), convolutions, backend.name)
            // Batch norm forward and backward; one loss and one Adam step; no segmentation bookkeeping.
            XCTAssertGreaterThan(calls(.batchNorm), 0, backend.name)
            XCTAssertEqual(calls(.batchNorm) % 2, 0, backend.name)
            XCTAssertEqual(calls(.lossOptimizer), 2, backend.name)
            XCTAssertEqual(calls(.segmentation), 0, backend.name)
            // Each call's time lies inside the span: nothing negative, and the calls together within the total.
            for (k, s) in p.seconds { XCTAssertGreaterThanOrEqual(s, 0, "\(backend.name) \(k)") }
            XCTAssertGreaterThan(p.total, 0, backend.name)
            let marks = Double(p.calls.values.reduce(0, +))
            XCTAssertGreaterThanOrEqual(p.between, -1e-6 * marks, backend.name)  // GPU events resolve to about 0.5 us
            XCTAssertEqual(profiler.profile(reset: true).spans, 3)
            XCTAssertEqual(profiler.profile().spans, 0)
        }
    }

    func testAProfilerSwitchedOffMarksNothing() throws {
        let profiler = Backends.profiling(CPUBackend(threads: 2))
        profiler.enabled = false
        _ = try trainSmallNetwork(on: profiler, steps: 3) { profiler.collect() }
        XCTAssertEqual(profiler.profile().spans, 0)
        XCTAssertTrue(profiler.profile().calls.isEmpty)
    }
}

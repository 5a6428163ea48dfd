import CCUDA

/// Marks on the CUDA backend's stream: one event per mark index, created on first use and reused by later
/// spans, destroyed with the clock.
final class CUDAEventClock: BackendClock {
    let source = "CUDA events"
    private let backend: CUDABackend
    private var events: [UnsafeMutableRawPointer] = []

    init(backend: CUDABackend) { self.backend = backend }

    deinit {
        backend.bind()
        for e in events { _ = ifcn_cu_event_destroy(e) }
    }

    func record(_ index: Int) {
        backend.bind()
        while events.count <= index {
            var e: UnsafeMutableRawPointer?
            backend.check(ifcn_cu_event_create(&e), "cuEventCreate")
            events.append(e!)
        }
        backend.check(ifcn_cu_event_record(events[index], backend.stream), "cuEventRecord")
    }

    func seconds(from: Int, to: Int) -> Double {
        backend.bind()
        var ms: Float = 0
        backend.check(ifcn_cu_event_elapsed(&ms, events[from], events[to]), "cuEventElapsedTime")
        return Double(ms) / 1e3
    }
}

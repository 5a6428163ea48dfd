import Foundation

/// Timestamps taken in a backend's order of work, for profiles (`ifcn bench --profile`).
///
/// On the CPU, whose kernels finish before they return, a mark is the host's monotonic clock. On a GPU
/// a mark is an event recorded on the backend's stream: it completes when the work queued before it
/// does, so a profile measures device time without synchronising inside a step.
public protocol BackendClock: AnyObject {
    /// What the marks are ("host clock", "CUDA events"), for reports.
    var source: String { get }
    /// Records mark `index` now in the backend's order of work; recording an index again replaces it.
    func record(_ index: Int)
    /// Seconds from mark `from` to mark `to`. Valid once the backend has synchronised after both were recorded.
    func seconds(from: Int, to: Int) -> Double
}

/// The host's monotonic clock: the CPU backend's marks.
final class HostClock: BackendClock {
    let source = "host clock"
    private var marks: [UInt64] = []

    func record(_ index: Int) {
        if index >= marks.count { marks.append(contentsOf: repeatElement(0, count: index + 1 - marks.count)) }
        marks[index] = DispatchTime.now().uptimeNanoseconds
    }

    func seconds(from: Int, to: Int) -> Double {
        Double(Int64(bitPattern: marks[to] &- marks[from])) / 1e9
    }
}

import Foundation

/// The bound on memory a size read from a file or the command line may ask for: every allocation whose size
/// is derived from such a number (a grid from extent / spacing, a network from channels and patch) is checked
/// against it first, so a bad value ends in an error that says what would have been needed instead of a crash
/// or an abort inside the allocator.
public enum MemoryLimit {
    /// Environment variable overriding the limit, in GB (10^9 bytes).
    public static let environmentVariable = "IFCN_MEMORY_LIMIT_GB"

    /// The limit in bytes: `IFCN_MEMORY_LIMIT_GB` when set to a positive number, else this machine's memory.
    public static var bytes: Double {
        if let text = ProcessInfo.processInfo.environment[environmentVariable], let gb = Double(text), gb.isFinite, gb > 0 {
            return gb * 1e9
        }
        return Double(ProcessInfo.processInfo.physicalMemory)
    }

    /// Where the limit comes from, for messages.
    public static var source: String {
        ProcessInfo.processInfo.environment[environmentVariable].map { "\(environmentVariable)=\($0)" }
            ?? "this machine's memory; \(environmentVariable) overrides"
    }

    /// Throws when `bytes` (computed in Double, so it cannot overflow) is not finite or exceeds the limit.
    /// `what` says what needs it, e.g. "a 0.001 mm grid over 300 x 300 x 300 mm would need 2.7e16 voxels".
    public static func check(_ bytes: Double, _ what: @autoclosure () -> String) throws {
        let limit = self.bytes
        guard bytes.isFinite, bytes <= limit else {
            throw TooLarge(message: "\(what()) (\(describe(bytes: bytes))), more than the limit of "
                           + "\(describe(bytes: limit)) (\(source))")
        }
    }

    /// "108 GB", "2.1 MB", "inf bytes".
    public static func describe(bytes: Double) -> String {
        guard bytes.isFinite else { return "more than \(String(format: "%.3g", Double.greatestFiniteMagnitude)) bytes" }
        let units = ["bytes", "kB", "MB", "GB", "TB", "PB", "EB"]
        var value = bytes, unit = 0
        while value >= 1000, unit < units.count - 1 { value /= 1000; unit += 1 }
        return unit == 0 ? "\(Int(value)) bytes" : String(format: value < 10 ? "%.1f %@" : "%.0f %@", value, units[unit])
    }

    /// A count in the style of the messages: exact below a million, "2.7e+10" above.
    public static func describe(count: Double) -> String {
        count.isFinite && count < 1e6 ? String(Int(count)) : String(format: "%.2g", count)
    }
}

/// A size derived from a file or an option that would need more than `MemoryLimit` allows.
public struct TooLarge: Error, CustomStringConvertible {
    public let message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

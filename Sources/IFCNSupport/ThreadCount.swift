/// The accepted range of a `--threads` option. The upper bound is fixed (not the core count), so a command
/// line valid on one machine is valid on every other; beyond it, thread pools and per-thread scratch would
/// only cost memory.
public enum ThreadCount {
    public static let range = 1...1024

    /// Nil when `n` is a usable thread count, else what is wrong with it (for the option named `option`).
    public static func problem(_ n: Int, option: String = "--threads") -> String? {
        range.contains(n) ? nil : "\(option) must be in \(range.lowerBound)...\(range.upperBound), got \(n)"
    }
}

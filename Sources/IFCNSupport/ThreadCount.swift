/// The accepted range of a thread count (`--threads`, `IFCN_THREADS`): 1 to `perCore` times this machine's
/// cores. More threads than that only queue for the same cores (the kernels split their work statically,
/// so extra threads make every loop wait for the slowest share) and each costs a stack and scratch
/// buffers: 100,000 threads took 11.7 GB before the first training iteration.
public enum ThreadCount {
    public static let perCore = 4
    public static var range: ClosedRange<Int> { 1...(perCore * activeCoreCount) }

    /// Nil when `n` is a usable thread count, else what is wrong with it (for the option named `option`).
    public static func problem(_ n: Int, option: String = "--threads") -> String? {
        range.contains(n) ? nil
            : "\(option) must be between 1 and \(range.upperBound) (\(perCore) x the \(activeCoreCount) CPUs here: "
              + "more threads only compete for the same cores and cost memory), got \(n)"
    }
}

import Foundation

/// The splitmix64 finaliser: a bijective 64-bit mixer (every bit of the input affects every bit of the output).
/// Used on its own as a hash step and, after a golden-ratio increment, as the `SplitMix64` generator.
@inlinable
public func mix64(_ value: UInt64) -> UInt64 {
    var z = value
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

/// SplitMix64 (Steele, Lea and Flood): small, fast, seedable generator; identical sequences on every platform.
/// Also the usual way to expand one seed into the state of a larger generator.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    /// The increment added to the state before each output: 2^64 divided by the golden ratio, odd.
    public static let golden: UInt64 = 0x9E37_79B9_7F4A_7C15

    /// The seed plus `golden` times the number of outputs so far.
    @usableFromInline var state: UInt64

    public init(seed: UInt64) { state = seed }

    @inlinable
    public mutating func next() -> UInt64 {
        state &+= SplitMix64.golden
        return mix64(state)
    }

    /// Uniform in [0, 1) (the top 53 bits of `next()`).
    @inlinable public mutating func uniform() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Uniform in [lo, hi).
    @inlinable public mutating func uniform(_ lo: Double, _ hi: Double) -> Double { lo + (hi - lo) * uniform() }

    /// Standard normal (Box-Muller, one of the pair).
    @inlinable public mutating func gaussian() -> Double {
        let u1 = max(uniform(), 1e-300), u2 = uniform()
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }
}

import Dispatch

/// Runs `body(part)` for part in 0..<parts on all cores and waits.
/// Work is split statically, so results that depend on the split are the same for the same
/// number of parts.
@inline(__always)
func parallelFor(_ parts: Int, _ body: (Int) -> Void) {
    if parts <= 1 {
        if parts == 1 { body(0) }
        return
    }
    DispatchQueue.concurrentPerform(iterations: parts, execute: body)
}

/// The half-open range of `part` when `total` items are split into `parts` near-equal pieces.
@inline(__always)
func partRange(_ part: Int, of parts: Int, total: Int) -> Range<Int> {
    let lo = total * part / parts
    let hi = total * (part + 1) / parts
    return lo..<hi
}

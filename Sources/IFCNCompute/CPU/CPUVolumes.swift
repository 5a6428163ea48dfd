import Foundation

/// Whole-scan volumes for segmentation on the CPU: patch copies out of the scan and the memory mask, the
/// mask's updates, and the thresholded output as bits.
extension CPUBackend {
    public func extractPatch(_ volume: TensorRef, box: PatchBox, fill: Float, into patch: TensorRef) {
        let src = volume.host, dst = patch.host
        box.forEachRow(inside: { at, index, count in (dst + at).update(from: src + index, count: count) },
                       outside: { at, count in (dst + at).update(repeating: fill, count: count) })
    }

    public func extractMaskPatch(_ mask: TensorRef, box: PatchBox, into patch: TensorRef) {
        let src = UnsafeRawPointer(mask.host).assumingMemoryBound(to: UInt8.self), dst = patch.host
        box.forEachRow(inside: { at, index, count in
            for i in 0..<count { dst[at + i] = src[index + i] != 0 ? 1 : 0 }
        }, outside: { at, count in (dst + at).update(repeating: 0, count: count) })
    }

    public func markVoxels(_ mask: TensorRef, indices: UnsafeBufferPointer<Int>) {
        let bytes = UnsafeMutableRawPointer(mask.host).assumingMemoryBound(to: UInt8.self)
        for i in indices { bytes[i] = 1 }
    }

    public func thresholdBits(_ tensor: TensorRef, above threshold: Float, into bits: UnsafeMutablePointer<UInt32>) {
        let x = tensor.host, n = tensor.count
        for w in 0..<(n + 31) / 32 {
            var word: UInt32 = 0
            for b in 0..<min(32, n - w * 32) where x[w * 32 + b] > threshold { word |= 1 << UInt32(b) }
            bits[w] = word
        }
    }
}

import Foundation
import IFCNSupport

/// Whole-scan volumes for segmentation on the CPU: patch copies out of the scan and the memory mask, the
/// memory's hash, the fragment's sums, and accepting a fragment into the memory and the labels.
extension CPUBackend {
    public func extractPatch(_ volume: TensorRef, box: PatchBox, fill: Float, into patch: TensorRef) {
        defer { roundToFormat(patch) }
        let src = volume.host, dst = patch.host
        box.forEachRow(inside: { at, index, count in (dst + at).update(from: src + index, count: count) },
                       outside: { at, count in (dst + at).update(repeating: fill, count: count) })
    }

    public func extractMaskPatch(_ mask: TensorRef, box: PatchBox, into patch: TensorRef) {
        defer { roundToFormat(patch) }
        let src = mask.bytes, dst = patch.host
        box.forEachRow(inside: { at, index, count in
            for i in 0..<count { dst[at + i] = src[index + i] != 0 ? 1 : 0 }
        }, outside: { at, count in (dst + at).update(repeating: 0, count: count) })
    }

    public func maskHash(_ mask: TensorRef, box: PatchBox) -> UInt64 {
        let src = mask.bytes
        var h: UInt64 = 0
        box.forEachRow(inside: { at, index, count in
            for i in 0..<count where src[index + i] != 0 { h &+= mix64(UInt64(at + i) ^ SplitMix64.golden) }
        }, outside: { _, _ in })
        return h
    }

    public func fragmentSums(_ probabilities: TensorRef, box: PatchBox, unlabelledIn labels: TensorRef?) -> VoxelSums {
        let p = probabilities.host, lab = labels?.int32s
        let nx = box.scan.x, ny = box.scan.y
        var count = 0, sx = 0, sy = 0, sz = 0
        box.forEachRow(inside: { at, index, n in
            let x0 = index % nx, y = (index / nx) % ny, z = index / (nx * ny)
            var c = 0, rowX = 0
            for i in 0..<n where p[at + i] > 0.5 && (lab.map { $0[index + i] == 0 } ?? true) {
                c += 1
                rowX += x0 + i
            }
            count += c; sx += rowX; sy += c * y; sz += c * z
        }, outside: { _, _ in })
        return VoxelSums(count: count, sum: SIMD3(Double(sx), Double(sy), Double(sz)))
    }

    public func acceptFragment(_ probabilities: TensorRef, box: PatchBox, mask: TensorRef, labels: TensorRef, label: Int32) {
        let p = probabilities.host, m = mask.bytes, lab = labels.int32s
        box.forEachRow(inside: { at, index, n in
            for i in 0..<n where p[at + i] > 0.5 {
                m[index + i] = 1
                if lab[index + i] == 0 { lab[index + i] = label }
            }
        }, outside: { _, _ in })
    }
}

extension TensorRef {
    /// The tensor's memory as bytes (a byte mask), on the CPU backend.
    var bytes: UnsafeMutablePointer<UInt8> { UnsafeMutableRawPointer(host).assumingMemoryBound(to: UInt8.self) }
    /// The tensor's memory as Int32 (a label volume), on the CPU backend.
    var int32s: UnsafeMutablePointer<Int32> { UnsafeMutableRawPointer(host).assumingMemoryBound(to: Int32.self) }
}

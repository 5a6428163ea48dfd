import Foundation
import IFCNEngine

/// The training augmentations of docs/METHOD.md.
public enum Augmentation: String, CaseIterable, Sendable {
    case elastic, blur, noise, crop
}

/// The training augmentations of docs/METHOD.md, each applied with probability 0.5, on a cubic
/// patch in HU: elastic deformation, Gaussian blur, Gaussian noise, crop along z and resize.
/// Every coin is drawn whether or not its augmentation is enabled, so the others' randomness
/// does not depend on the selection.
struct Augmenter {
    let patch: Int
    var rng: SeededGenerator
    var enabled: Set<Augmentation> = Set(Augmentation.allCases)
    static let elasticSigma = 5.0, elasticScale = 20.0, blurSigma = 1.0, noiseHU = 16.0
    /// Slices kept by the z-crop at P = 128 (scaled with P).
    static let cropSlicesAt128 = 80

    init(patch: Int, rng: SeededGenerator) { self.patch = patch; self.rng = rng }

    /// Returns the number of target voxels the augmented patch holds (before the z-resize).
    mutating func apply(image: inout [Float], weight: inout [Float], target: inout [Float], memory: inout [Float]) -> Float {
        if rng.uniform() < 0.5 && enabled.contains(.elastic) { elastic(&image, &weight, &target, &memory) }
        if rng.uniform() < 0.5 && enabled.contains(.blur) { image = Augmenter.smooth(image, patch, sigma: Augmenter.blurSigma) }
        if rng.uniform() < 0.5 && enabled.contains(.noise) {
            for i in image.indices { image[i] += Float(rng.normal() * Augmenter.noiseHU) }
        }
        if rng.uniform() < 0.5 && enabled.contains(.crop) {
            let n = max(2, Int((Double(patch) * Double(Augmenter.cropSlicesAt128) / 128).rounded()))
            let z0 = rng.int(below: patch - n + 1)
            let plane = patch * patch
            let kept = target[(z0 * plane)..<((z0 + n) * plane)].reduce(0, +)
            image = resizeZ(image, from: z0, count: n, linear: true)
            weight = resizeZ(weight, from: z0, count: n, linear: true)
            target = resizeZ(target, from: z0, count: n, linear: false)
            memory = resizeZ(memory, from: z0, count: n, linear: false)
            return kept
        }
        return target.reduce(0, +)
    }

    mutating func elastic(_ image: inout [Float], _ weight: inout [Float], _ target: inout [Float], _ memory: inout [Float]) {
        let P = patch, n = P * P * P
        var fields: [[Float]] = []
        for _ in 0..<3 {
            var f = [Float](repeating: 0, count: n)
            for i in 0..<n { f[i] = Float(rng.uniform(-1, 1)) }
            f = Augmenter.smooth(f, P, sigma: Augmenter.elasticSigma)
            for i in 0..<n { f[i] *= Float(Augmenter.elasticScale) }
            fields.append(f)
        }
        var im = image, wt = weight, tg = target, mm = memory
        let maxI = Float(P - 1)
        image.withUnsafeBufferPointer { srcI in weight.withUnsafeBufferPointer { srcW in
        target.withUnsafeBufferPointer { srcT in memory.withUnsafeBufferPointer { srcM in
            for z in 0..<P { for y in 0..<P { for x in 0..<P {
                let i = (z * P + y) * P + x
                let fx = min(max(Float(x) + fields[0][i], 0), maxI)
                let fy = min(max(Float(y) + fields[1][i], 0), maxI)
                let fz = min(max(Float(z) + fields[2][i], 0), maxI)
                let x0 = min(Int(fx), P - 2), y0 = min(Int(fy), P - 2), z0 = min(Int(fz), P - 2)
                let ax = fx - Float(x0), ay = fy - Float(y0), az = fz - Float(z0)
                func lerp(_ s: UnsafeBufferPointer<Float>) -> Float {
                    let b = (z0 * P + y0) * P + x0
                    let c00 = s[b] * (1 - ax) + s[b + 1] * ax
                    let c01 = s[b + P] * (1 - ax) + s[b + P + 1] * ax
                    let c10 = s[b + P * P] * (1 - ax) + s[b + P * P + 1] * ax
                    let c11 = s[b + P * P + P] * (1 - ax) + s[b + P * P + P + 1] * ax
                    return (c00 * (1 - ay) + c01 * ay) * (1 - az) + (c10 * (1 - ay) + c11 * ay) * az
                }
                let ni = (Int(fz.rounded()) * P + Int(fy.rounded())) * P + Int(fx.rounded())
                im[i] = lerp(srcI); wt[i] = lerp(srcW); tg[i] = srcT[ni]; mm[i] = srcM[ni]
            } } }
        } } } }
        image = im; weight = wt; target = tg; memory = mm
    }

    /// Linear (or nearest) resize of slices [z0, z0 + count) back to P slices.
    func resizeZ(_ v: [Float], from z0: Int, count: Int, linear: Bool) -> [Float] {
        let P = patch, plane = P * P
        var out = [Float](repeating: 0, count: v.count)
        for z in 0..<P {
            // align corners of the kept slab with the patch's first and last slices
            let s = Double(z) * Double(count - 1) / Double(P - 1)
            let a = min(Int(s), count - 2), t = Float(s - Double(a))
            let lo = (z0 + a) * plane, hi = lo + plane, dst = z * plane
            if linear {
                for i in 0..<plane { out[dst + i] = v[lo + i] * (1 - t) + v[hi + i] * t }
            } else {
                let src = t < 0.5 ? lo : hi
                for i in 0..<plane { out[dst + i] = v[src + i] }
            }
        }
        return out
    }

    /// Separable Gaussian smoothing of a cube (kernel radius 3 sigma, borders clamped).
    static func smooth(_ v: [Float], _ P: Int, sigma: Double) -> [Float] {
        let r = max(1, Int((3 * sigma).rounded(.up)))
        var k = (-r...r).map { Float(exp(-Double($0 * $0) / (2 * sigma * sigma))) }
        let s = k.reduce(0, +); k = k.map { $0 / s }
        var a = v, b = v
        let strides = [1, P, P * P]
        for axis in 0..<3 {
            let st = strides[axis]
            a.withUnsafeBufferPointer { src in b.withUnsafeMutableBufferPointer { dst in
                for i in 0..<src.count {
                    let pos = (i / st) % P
                    var acc: Float = 0
                    for j in -r...r {
                        let q = min(max(pos + j, 0), P - 1)
                        acc += k[j + r] * src[i + (q - pos) * st]
                    }
                    dst[i] = acc
                }
            } }
            swap(&a, &b)
        }
        return a
    }
}

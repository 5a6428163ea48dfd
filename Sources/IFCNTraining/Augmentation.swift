import Foundation
import IFCNEngine
import IFCNVolume

/// Training augmentations. The first four are docs/METHOD.md's; the others close the gap between
/// scanners and sites (issue 12).
public enum Augmentation: String, CaseIterable, Sendable {
    case elastic, blur, noise, crop
    /// HU scale and shift (calibration and reconstruction differences between scanners).
    case intensity
    /// Small rotations about every axis and an isotropic scaling.
    case affine
    /// Left-right mirror.
    case flip
    /// Thick slices: the patch averaged over slabs of a random thickness along one axis and brought back.
    case thickslice
    /// Tissue beyond the scan: the voxels of the patch outside the image (padded with air, -1000 HU) filled with
    /// a random soft-tissue value and noise, so that a scan cropped to its vertebrae looks like one that shows
    /// the tissue around them (docs/ACCURACY.md, "Field of view").
    case context

    /// What `ifcn train` uses without `--augment`: METHOD.md's four, `affine` and `flip`, chosen by the
    /// cross-validation of docs/ACCURACY.md ("Affine and flip at the full budget", "Affine and flip together").
    public static let defaults: Set<Augmentation> = [.elastic, .blur, .noise, .crop, .affine, .flip]
}

/// Every augmentation's parameters, in millimetres (or HU), so that each means the same at any voxel
/// spacing. METHOD.md gives them in voxels at 1 mm.
public enum AugmentationParameters {
    /// Elastic: displacement fields of uniform noise smoothed by a Gaussian of this sigma...
    public static let elasticSigmaMM = 5.0
    /// ...scaled by this many mm, with the amplitude the field has at 1 mm (see `Augmenter.elasticGain`).
    public static let elasticScaleMM = 20.0
    public static let blurSigmaMM = 1.0
    public static let noiseHU = 16.0
    /// The z-crop keeps this fraction of the patch (80 of 128 slices) and resizes it back.
    public static let cropFraction = 80.0 / 128.0
    /// HU' = HU * s + t with s in 1 +- intensityScale and t in +- intensityShiftHU.
    public static let intensityScale = 0.1, intensityShiftHU = 50.0
    /// Rotations up to this many degrees about each axis; isotropic scaling in 1 +- affineScale.
    public static let affineDegrees = 10.0, affineScale = 0.1
    /// Thick slices from the voxel spacing up to this thickness.
    public static let maxSliceMM = 6.0
    /// Tissue beyond the scan: a value in this HU range (fat to muscle), plus Gaussian noise of `contextNoiseHU`.
    public static let contextHU = -150.0...60.0, contextNoiseHU = 20.0
    /// At this spacing METHOD.md's voxel values are its millimetre values.
    static let referenceSpacingMM = 1.0
}

/// Applies the enabled augmentations to a cubic patch (HU image, weights, target, memory), each with
/// probability 0.5. METHOD.md's four come first in its order, from `rng`, with every coin drawn whether or
/// not the augmentation is enabled; the others come from their own stream `extra` and are applied first
/// (they move voxels, so the completeness count below sees where the vertebra ended up).
struct Augmenter {
    let patch: Int
    /// Voxel spacing of the patch (isotropic), mm.
    let spacing: Double
    var rng: SeededGenerator
    var extra: SeededGenerator
    var enabled: Set<Augmentation> = Augmentation.defaults
    /// Scale of the voxel volume by the affine (target voxels per vertebra voxel).
    private(set) var volumeFactor = 1.0

    init(patch: Int, spacing: Double, rng: SeededGenerator, extra: SeededGenerator) {
        self.patch = patch; self.spacing = spacing; self.rng = rng; self.extra = extra
    }

    typealias P = AugmentationParameters

    /// `context`: with probability 0.5 (a coin from `stream`, its own, so the other augmentations draw what they
    /// drew before it existed) fills the image outside the box `inside` (patch voxel indices lo..<hi that hold
    /// image; the rest is padding) with tissue. Runs before the augmentations that move voxels.
    mutating func fillBeyondImage(_ image: inout [Float], inside: (lo: SIMD3<Int>, hi: SIMD3<Int>), stream: inout SeededGenerator) {
        guard stream.uniform() < 0.5, enabled.contains(.context),
              any(inside.lo .> 0) || any(inside.hi .< SIMD3(repeating: patch)) else { return }
        let hu = Float(stream.uniform(P.contextHU.lowerBound, P.contextHU.upperBound))
        let n = patch
        for z in 0..<n { for y in 0..<n { for x in 0..<n {
            let p = SIMD3(x, y, z)
            if any(p .< inside.lo) || any(p .>= inside.hi) {
                image[x + n * (y + n * z)] = hu + Float(stream.normal() * P.contextNoiseHU)
            }
        } } }
    }

    /// Returns the number of the target vertebra's voxels the augmented patch holds (before the z-resize),
    /// in voxels of the original volume.
    mutating func apply(image: inout [Float], weight: inout [Float], target: inout [Float], memory: inout [Float]) -> Float {
        applySiteAugmentations(image: &image, weight: &weight, target: &target, memory: &memory)
        if rng.uniform() < 0.5 && enabled.contains(.elastic) { elastic(&image, &weight, &target, &memory) }
        if rng.uniform() < 0.5 && enabled.contains(.blur) {
            image = Augmenter.smooth(image, patch, sigma: P.blurSigmaMM / spacing)
        }
        if rng.uniform() < 0.5 && enabled.contains(.noise) {
            for i in image.indices { image[i] += Float(rng.normal() * P.noiseHU) }
        }
        if rng.uniform() < 0.5 && enabled.contains(.crop) {
            let n = max(2, Int((Double(patch) * P.cropFraction).rounded()))
            let z0 = rng.int(below: patch - n + 1)
            let plane = patch * patch
            let kept = target[(z0 * plane)..<((z0 + n) * plane)].reduce(0, +)
            image = resizeZ(image, from: z0, count: n, linear: true)
            weight = resizeZ(weight, from: z0, count: n, linear: true)
            target = resizeZ(target, from: z0, count: n, linear: false)
            memory = resizeZ(memory, from: z0, count: n, linear: false)
            return kept / Float(volumeFactor)
        }
        return target.reduce(0, +) / Float(volumeFactor)
    }

    /// intensity, affine, flip, thick slices: four coins from `extra`, then each enabled one's parameters.
    mutating func applySiteAugmentations(image: inout [Float], weight: inout [Float], target: inout [Float],
                                         memory: inout [Float]) {
        let coins = (0..<4).map { _ in extra.uniform() < 0.5 }
        if coins[1] && enabled.contains(.affine) {
            let angles = (0..<3).map { _ in extra.uniform(-1, 1) * P.affineDegrees * .pi / 180 }
            let scale = 1 + extra.uniform(-1, 1) * P.affineScale
            affine(rotation: Augmenter.rotation(angles), scale: scale, &image, &weight, &target, &memory)
        }
        if coins[2] && enabled.contains(.flip) {
            for i in 0..<4 {
                switch i {
                case 0: Augmenter.flipX(&image, patch)
                case 1: Augmenter.flipX(&weight, patch)
                case 2: Augmenter.flipX(&target, patch)
                default: Augmenter.flipX(&memory, patch)
                }
            }
        }
        if coins[3] && enabled.contains(.thickslice) {
            let axis = extra.int(below: 3)
            let thickness = extra.uniform(spacing, max(spacing, P.maxSliceMM))
            image = thickSlices(image, axis: axis, factor: thickness / spacing)
        }
        if coins[0] && enabled.contains(.intensity) {
            let s = Float(1 + extra.uniform(-1, 1) * P.intensityScale)
            let t = Float(extra.uniform(-1, 1) * P.intensityShiftHU)
            for i in image.indices { image[i] = image[i] * s + t }
        }
    }

    /// Gain that gives the smoothed field the amplitude it has at 1 mm: smoothing unit-variance noise with a
    /// Gaussian of sigma s voxels leaves a standard deviation proportional to sqrt(sum of squared 3D kernel
    /// weights), which depends on how many voxels the sigma spans.
    static func elasticGain(spacing: Double) -> Double {
        func energy(_ sigma: Double) -> Double {
            let k = gaussianKernel(sigma: sigma)
            return pow(k.reduce(0) { $0 + Double($1 * $1) }, 3)
        }
        return (energy(P.elasticSigmaMM / P.referenceSpacingMM) / energy(P.elasticSigmaMM / spacing)).squareRoot()
    }

    mutating func elastic(_ image: inout [Float], _ weight: inout [Float], _ target: inout [Float], _ memory: inout [Float]) {
        let Pn = patch, n = Pn * Pn * Pn
        let sigma = P.elasticSigmaMM / spacing
        let gain = Float(P.elasticScaleMM / spacing * Augmenter.elasticGain(spacing: spacing))
        var fields: [[Float]] = []
        for _ in 0..<3 {
            var f = [Float](repeating: 0, count: n)
            for i in 0..<n { f[i] = Float(rng.uniform(-1, 1)) }
            f = Augmenter.smooth(f, Pn, sigma: sigma)
            for i in 0..<n { f[i] *= gain }
            fields.append(f)
        }
        warp(&image, &weight, &target, &memory) { x, y, z in
            let i = (z * Pn + y) * Pn + x
            return SIMD3(Float(x) + fields[0][i], Float(y) + fields[1][i], Float(z) + fields[2][i])
        }
    }

    /// Rotation matrix (row-major) about x, then y, then z by `angles` (radians).
    static func rotation(_ angles: [Double]) -> [Float] {
        let (a, b, c) = (angles[0], angles[1], angles[2])
        let rx: [Double] = [1, 0, 0, 0, cos(a), -sin(a), 0, sin(a), cos(a)]
        let ry: [Double] = [cos(b), 0, sin(b), 0, 1, 0, -sin(b), 0, cos(b)]
        let rz: [Double] = [cos(c), -sin(c), 0, sin(c), cos(c), 0, 0, 0, 1]
        func mul(_ p: [Double], _ q: [Double]) -> [Double] {
            var r = [Double](repeating: 0, count: 9)
            for i in 0..<3 { for k in 0..<3 { for j in 0..<3 { r[i * 3 + k] += p[i * 3 + j] * q[j * 3 + k] } } }
            return r
        }
        return mul(rz, mul(ry, rx)).map { Float($0) }
    }

    /// Rotates and scales the patch about its centre (output voxel p samples the input at
    /// centre + R^T (p - centre) / scale); borders clamped.
    mutating func affine(rotation r: [Float], scale: Double, _ image: inout [Float], _ weight: inout [Float],
                         _ target: inout [Float], _ memory: inout [Float]) {
        let c = Float(patch - 1) / 2, s = Float(1 / scale)
        volumeFactor *= scale * scale * scale
        warp(&image, &weight, &target, &memory) { x, y, z in
            let d = SIMD3(Float(x) - c, Float(y) - c, Float(z) - c) * s
            return SIMD3(r[0] * d.x + r[3] * d.y + r[6] * d.z, r[1] * d.x + r[4] * d.y + r[7] * d.z,
                         r[2] * d.x + r[5] * d.y + r[8] * d.z) + c
        }
    }

    /// Resamples all four channels at `source(x, y, z)` (continuous patch index, clamped to the patch): the
    /// image and weights trilinearly, target and memory at the nearest voxel of the same point.
    func warp(_ image: inout [Float], _ weight: inout [Float], _ target: inout [Float], _ memory: inout [Float],
              source: (Int, Int, Int) -> SIMD3<Float>) {
        let P = patch
        var im = image, wt = weight, tg = target, mm = memory
        let maxI = Float(P - 1)
        image.withUnsafeBufferPointer { srcI in weight.withUnsafeBufferPointer { srcW in
        target.withUnsafeBufferPointer { srcT in memory.withUnsafeBufferPointer { srcM in
            for z in 0..<P { for y in 0..<P { for x in 0..<P {
                let i = (z * P + y) * P + x
                let s = source(x, y, z)
                let fx = min(max(s.x, 0), maxI), fy = min(max(s.y, 0), maxI), fz = min(max(s.z, 0), maxI)
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

    /// Mirrors a patch along x (left-right in the canonical LPS grid).
    static func flipX(_ v: inout [Float], _ P: Int) {
        for row in stride(from: 0, to: v.count, by: P) { v[row..<(row + P)].reverse() }
    }

    /// The image as a scanner with slices `factor` voxels thick along `axis` would give it: averaged over
    /// slabs of that thickness (a box of `factor` voxels, linear weights at its ends), sampled at the slab
    /// centres and interpolated back linearly.
    func thickSlices(_ v: [Float], axis: Int, factor: Double) -> [Float] {
        guard factor > 1.01 else { return v }
        let P = patch, stride = [1, P, P * P][axis]
        let slabs = max(2, Int((Double(P) / factor).rounded(.up)))
        let step = Double(P - 1) / Double(slabs - 1)
        var out = v
        var line = [Float](repeating: 0, count: P), thick = [Float](repeating: 0, count: slabs)
        for base in 0..<v.count where (base / stride) % P == 0 {
            for i in 0..<P { line[i] = v[base + i * stride] }
            for s in 0..<slabs {
                // box average of width `factor` around the slab centre
                let centre = Double(s) * step, lo = centre - factor / 2, hi = centre + factor / 2
                var sum = 0.0, w = 0.0
                for i in max(0, Int(lo.rounded(.down)))...min(P - 1, Int(hi.rounded(.up))) {
                    let overlap = min(hi, Double(i) + 0.5) - max(lo, Double(i) - 0.5)
                    if overlap > 0 { sum += overlap * Double(line[i]); w += overlap }
                }
                thick[s] = Float(sum / max(w, 1e-9))
            }
            for i in 0..<P {
                let t = Double(i) / step, a = min(Int(t), slabs - 2), f = Float(t - Double(a))
                out[base + i * stride] = thick[a] * (1 - f) + thick[a + 1] * f
            }
        }
        return out
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

    /// Separable Gaussian smoothing of a cube (sigma in voxels, kernel radius 3 sigma, borders clamped), on
    /// the calling thread (the sampler's, beside the training step).
    static func smooth(_ v: [Float], _ P: Int, sigma: Double) -> [Float] {
        gaussianSmoothed(v, size: SIMD3(repeating: P), sigma: SIMD3(repeating: sigma), parallel: false)
    }
}

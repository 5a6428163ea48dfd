import Foundation
import IFCNSupport

/// Synthetic CT-like spine scans with vertebra labels, for tests and demos.
///
/// A slightly curved column of vertebrae (body with a ~+700 HU cortical shell and ~+250 HU cancellous core,
/// a posterior arch with spinous and transverse processes) separated by ~+80 HU discs, inside a ~+40 HU soft
/// tissue ellipse in -1000 HU air, with Gaussian noise. The column extends past both ends of the volume, so
/// the first and last vertebrae are partly visible. Labels run 1...K from superior (high z) to inferior.
/// Canonical LPS grid (identity direction). Deterministic for a seed.
public enum SyntheticSpine {
    /// Size and spacing of the default scan: 96 x 96 x 60 voxels of 0.8 x 0.8 x 2.0 mm.
    public static let defaultSize = SIMD3<Int>(96, 96, 60)
    public static let defaultSpacing = SIMD3<Double>(0.8, 0.8, 2.0)

    /// One generated case.
    public struct Case: Sendable {
        /// Image in HU.
        public var image: Volume
        /// Labels 0 (background), 1...K superior to inferior.
        public var labels: LabelVolume
        /// Number of vertebrae with at least one voxel in the volume.
        public var vertebraCount: Int
    }

    private struct Vertebra {
        var top: Double, bottom: Double  // body end plates (mm, world z)
    }

    /// Generates one scan.
    public static func generate(seed: UInt64, size: SIMD3<Int> = defaultSize,
                                spacing: SIMD3<Double> = defaultSpacing) -> Case {
        var rng = SplitMix64(seed: seed ^ 0x5EED_5B1E)
        let extent = SIMD3(Double(size.x) * spacing.x, Double(size.y) * spacing.y, Double(size.z) * spacing.z)
        let origin = -extent / 2 + spacing / 2
        let grid = Grid.canonical(size: size, spacing: spacing, origin: origin)
        let scale = min(extent.x, extent.y) / 77  // anatomy scaled to the field of view

        // Column geometry (world mm; the volume spans about -extent/2...extent/2).
        let bodyRX = 11 * scale * rng.uniform(0.9, 1.1), bodyRY = 8.5 * scale * rng.uniform(0.9, 1.1)
        let canalR = 4.5 * scale, archT = 2.2 * scale
        let spinousLen = 12 * scale, transverseLen = 11 * scale, processHalf = 1.4 * scale
        let columnY0 = -5 * scale  // body centre a bit anterior (LPS: -y is anterior)
        let curveAmpX = rng.uniform(1, 4) * scale, curveAmpY = rng.uniform(1, 4) * scale
        let curvePhase = rng.uniform(0, 2 * .pi), curveFreq = 2 * .pi / rng.uniform(180, 300)
        let bodyX = rng.uniform(-2, 2) * scale
        func centre(_ z: Double) -> (Double, Double) {
            (bodyX + curveAmpX * sin(curveFreq * z + curvePhase), columnY0 + curveAmpY * cos(curveFreq * z + curvePhase))
        }
        let outlineRX = 34 * scale * rng.uniform(0.95, 1.05), outlineRY = 28 * scale * rng.uniform(0.95, 1.05)

        // Vertebrae from above the top of the volume downwards (superior = high z).
        let zTop = origin.z + Double(size.z - 1) * spacing.z, zBottom = origin.z
        var vertebrae: [Vertebra] = []
        let levelScale = rng.uniform(0.75, 1.15)  // per-scan vertebra size: 6-10 vertebrae in view
        var z = zTop + rng.uniform(2, 14)
        while z > zBottom - 2 {
            let height = rng.uniform(12, 16) * levelScale, disc = rng.uniform(3.5, 5.5) * levelScale
            vertebrae.append(Vertebra(top: z, bottom: z - height))
            z -= height + disc
        }
        // Keep vertebrae that reach into the volume; number them 1...K from the top.
        vertebrae = vertebrae.filter { $0.bottom <= zTop + spacing.z / 2 && $0.top >= zBottom - spacing.z / 2 }

        let nx = size.x, ny = size.y, nz = size.z
        var image = Volume(grid: grid, fill: -1000)
        var labels = LabelVolume(grid: grid)
        let noiseSeed = rng.next()
        let verts = vertebrae
        image.voxels.withUnsafeMutableBufferPointer { img in
            labels.voxels.withUnsafeMutableBufferPointer { lab in
                let imgBase = img.baseAddress!, labBase = lab.baseAddress!
                parallelForEach(count: nz) { k in
                    var noise = SplitMix64(seed: noiseSeed &+ UInt64(k) &* 0x9E37_79B9)
                    let wz = origin.z + Double(k) * spacing.z
                    let (cx, cy) = centre(wz)
                    // Which vertebra (or disc) this slice cuts.
                    var vIndex = -1, inDisc = false
                    for (i, v) in verts.enumerated() {
                        if wz <= v.top && wz >= v.bottom { vIndex = i; break }
                        if i + 1 < verts.count, wz < v.bottom, wz > verts[i + 1].top { inDisc = true; break }
                    }
                    if vIndex < 0, !inDisc, let first = verts.first, wz > first.top { inDisc = true }
                    if vIndex < 0, !inDisc, let last = verts.last, wz < last.bottom { inDisc = true }
                    var endplate = false, archLevel = false, spinousDrop = 0.0
                    if vIndex >= 0 {
                        let v = verts[vIndex]
                        endplate = wz > v.top - 1.2 || wz < v.bottom + 1.2
                        let rel = (v.top - wz) / (v.top - v.bottom)  // 0 at top, 1 at bottom
                        archLevel = rel > 0.15 && rel < 0.85
                        spinousDrop = rel  // the spinous process slopes down posteriorly
                    }
                    let canalY = cy + bodyRY + canalR + 0.5 * scale
                    for j in 0..<ny {
                        let wy = origin.y + Double(j) * spacing.y
                        for i in 0..<nx {
                            let wx = origin.x + Double(i) * spacing.x
                            var hu = -1000.0
                            var label: Int32 = 0
                            let ox = wx / outlineRX, oy = (wy - 2 * scale) / outlineRY
                            if ox * ox + oy * oy <= 1 { hu = 40 }
                            let dx = (wx - cx) / bodyRX, dy = (wy - cy) / bodyRY
                            let r = (dx * dx + dy * dy).squareRoot()
                            if vIndex >= 0 {
                                if r <= 1 {
                                    let shell = r > 1 - 1.6 / bodyRX
                                    hu = (shell || endplate) ? 700 : 250
                                    label = Int32(vIndex + 1)
                                } else if archLevel {
                                    let ax = wx - cx, ay = wy - canalY
                                    let rc = (ax * ax + ay * ay).squareRoot()
                                    let ring = rc >= canalR && rc <= canalR + archT && ay > -canalR
                                    let spinous = abs(ax) <= processHalf && ay >= canalR
                                        && ay <= canalR + spinousLen && spinousDrop > 0.3
                                    let transverse = abs(ay) <= processHalf && abs(ax) >= canalR
                                        && abs(ax) <= canalR + transverseLen && spinousDrop < 0.7
                                    if ring || spinous || transverse {
                                        hu = 550
                                        label = Int32(vIndex + 1)
                                    }
                                }
                            } else if inDisc, r <= 1.02 {
                                hu = 80
                            }
                            let o = i + nx * (j + ny * k)
                            imgBase[o] = Float(hu + 20 * noise.gaussian())
                            labBase[o] = label
                        }
                    }
                }
            }
        }
        let present = Set(labels.voxels.filter { $0 > 0 }.map { Int($0) })
        return Case(image: image, labels: labels, vertebraCount: present.count)
    }

    /// Writes cases `<prefix>NNN.nii.gz` (int16 HU) and `<prefix>NNN_label.nii.gz` (uint8) into `dir`.
    /// Case i uses seed `seed &+ i`. Returns the case names.
    @discardableResult
    public static func writeCases(to dir: String, count: Int, seed: UInt64, size: SIMD3<Int> = defaultSize,
                                  spacing: SIMD3<Double> = defaultSpacing, prefix: String = "synth") throws -> [String] {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var names: [String] = []
        for i in 0..<count {
            let name = prefix + String(format: "%03d", i)
            let c = generate(seed: seed &+ UInt64(i), size: size, spacing: spacing)
            try VolumeIO.write(c.image, to: dir + "/" + name + ".nii.gz", as: .int16)
            try VolumeIO.write(c.labels, to: dir + "/" + name + "_label.nii.gz", as: .uint8)
            names.append(name)
        }
        return names
    }
}

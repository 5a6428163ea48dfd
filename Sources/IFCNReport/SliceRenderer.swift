import IFCNVolume

/// The two views of a preview, as radiology viewers show them: superior up; sagittal with anterior on the
/// left (seen from the patient's left), coronal with the patient's right on the left (seen from the front).
public enum SliceView: String, CaseIterable, Sendable {
    case sagittal, coronal

    /// World (LPS) axis across the screen, left to right along +axis: y (anterior to posterior) or x (right to left).
    var horizontalWorldAxis: Int { self == .sagittal ? 1 : 0 }
    /// World axis the slice is fixed on: x (left-right) for sagittal, y (anterior-posterior) for coronal.
    var fixedWorldAxis: Int { self == .sagittal ? 0 : 1 }
    /// Orientation letters at the left, right, top and bottom edge.
    var edgeLetters: (left: String, right: String, top: String, bottom: String) {
        self == .sagittal ? ("A", "P", "S", "I") : ("R", "L", "S", "I")
    }
}

/// A label map drawn over the CT: filled at 45 % opacity with solid outlines, colours from `color`
/// (nil: not drawn), `striped` labels hatched red and white (false positives), optionally numbered.
public struct LabelOverlay {
    public var labels: LabelVolume
    public var color: (Int32) -> (UInt8, UInt8, UInt8)?
    public var striped: Set<Int32>
    public var numbered: Bool

    public init(labels: LabelVolume, numbered: Bool = true, striped: Set<Int32> = [],
                color: @escaping (Int32) -> (UInt8, UInt8, UInt8)? = { LabelPalette.color($0) }) {
        self.labels = labels
        self.color = color
        self.striped = striped
        self.numbered = numbered
    }
}

/// Renders mid-sagittal and mid-coronal slices of a CT volume (window -200...1000 HU) with label overlays,
/// on square display pixels: the voxel spacing sets the aspect ratio, whatever the grid's orientation
/// (each index axis is taken along the patient axis its direction is closest to).
public struct SliceRenderer {
    public let grid: Grid
    let image: Volume?
    /// Index axis along world axis w (0: x, 1: y, 2: z), and whether the index grows with +w.
    let axisOf: [Int]
    let ascending: [Bool]
    /// Voxel index of the slice on each index axis (the label centroid, else the middle).
    public let sliceIndex: SIMD3<Int>
    /// Millimetres per display pixel.
    public let mmPerPixel: Double
    public static let window: ClosedRange<Float> = -200...1000

    /// `image` (HU) may be nil: the labels are drawn on black. `centreOn` picks the slices (their label
    /// centroid); the display scale fits the longest patient extent into `longestSide` pixels.
    public init(grid: Grid, image: Volume?, centreOn labels: LabelVolume?, longestSide: Int = 480) {
        self.grid = grid
        self.image = image
        var axisOf = [0, 1, 2], ascending = [true, true, true]
        var taken = Set<Int>()
        for j in 0..<3 {
            let column = (0..<3).map { grid.direction[$0 * 3 + j] }
            let w = (0..<3).max { abs(column[$0]) < abs(column[$1]) }!
            taken.insert(w)
            axisOf[w] = j
            ascending[w] = column[w] >= 0
        }
        if taken.count != 3 { axisOf = [0, 1, 2]; ascending = [true, true, true] }  // degenerate: index order
        self.axisOf = axisOf
        self.ascending = ascending
        let extents = (0..<3).map { Double(grid.size[$0]) * grid.spacing[$0] }
        mmPerPixel = max(extents.max() ?? 1, 1e-6) / Double(longestSide)
        var centre = SIMD3<Int>(grid.size.x / 2, grid.size.y / 2, grid.size.z / 2)
        if let labels, labels.grid.size == grid.size {
            var sum = SIMD3<Double>(repeating: 0), n = 0.0
            let nx = grid.size.x, ny = grid.size.y
            labels.voxels.withUnsafeBufferPointer { v in
                for i in 0..<v.count where v[i] > 0 {
                    sum += SIMD3(Double(i % nx), Double((i / nx) % ny), Double(i / (nx * ny))); n += 1
                }
            }
            if n > 0 { centre = SIMD3(Int((sum.x / n).rounded()), Int((sum.y / n).rounded()), Int((sum.z / n).rounded())) }
        }
        sliceIndex = centre
    }

    /// Display size of a view in pixels.
    public func size(_ view: SliceView) -> (width: Int, height: Int) {
        let h = axisOf[view.horizontalWorldAxis], v = axisOf[2]
        return (max(1, Int((Double(grid.size[h]) * grid.spacing[h] / mmPerPixel).rounded())),
                max(1, Int((Double(grid.size[v]) * grid.spacing[v] / mmPerPixel).rounded())))
    }

    /// Continuous voxel index at display pixel (u, v) of a view.
    func index(_ view: SliceView, _ u: Int, _ v: Int) -> SIMD3<Double> {
        let wh = view.horizontalWorldAxis
        let jh = axisOf[wh], jv = axisOf[2], jf = axisOf[view.fixedWorldAxis]
        var i = SIMD3<Double>(repeating: 0)
        let th = (Double(u) + 0.5) * mmPerPixel / grid.spacing[jh] - 0.5
        let tv = (Double(v) + 0.5) * mmPerPixel / grid.spacing[jv] - 0.5
        i[jh] = ascending[wh] ? th : Double(grid.size[jh] - 1) - th
        i[jv] = ascending[2] ? Double(grid.size[jv] - 1) - tv : tv  // superior at the top
        i[jf] = Double(sliceIndex[jf])
        return i
    }

    /// The CT of one view, windowed to grey (bilinear within the slice), with `overlay` drawn over it.
    public func render(_ view: SliceView, overlay: LabelOverlay? = nil, letters: Bool = true) -> RGBImage {
        let (w, h) = size(view)
        var out = RGBImage(width: w, height: h)
        let n = grid.size
        let lo = Self.window.lowerBound, span = Self.window.upperBound - Self.window.lowerBound
        var labelAt = [Int32](repeating: 0, count: w * h)
        for v in 0..<h {
            for u in 0..<w {
                let i = index(view, u, v)
                if let image {
                    let hu = bilinear(image, i)
                    let g = UInt8(max(0, min(255, ((hu - lo) / span * 255).rounded())))
                    out.set(u, v, (g, g, g))
                }
                if let overlay {
                    let x = min(max(Int(i.x.rounded()), 0), n.x - 1), y = min(max(Int(i.y.rounded()), 0), n.y - 1)
                    let z = min(max(Int(i.z.rounded()), 0), n.z - 1)
                    labelAt[v * w + u] = overlay.labels[x, y, z]
                }
            }
        }
        if let overlay { draw(overlay, labels: labelAt, into: &out) }
        if letters {
            let e = view.edgeLetters, s = w >= 200 ? 2 : 1, th = BitmapFont.height(scale: s)
            BitmapFont.draw(e.left, into: &out, x: 3, y: (h - th) / 2, scale: s)
            BitmapFont.draw(e.right, into: &out, x: w - 3 - BitmapFont.width(e.right, scale: s), y: (h - th) / 2, scale: s)
            BitmapFont.draw(e.top, into: &out, x: (w - BitmapFont.width(e.top, scale: s)) / 2, y: 3, scale: s)
            BitmapFont.draw(e.bottom, into: &out, x: (w - BitmapFont.width(e.bottom, scale: s)) / 2, y: h - 3 - th, scale: s)
        }
        return out
    }

    func bilinear(_ image: Volume, _ i: SIMD3<Double>) -> Float {
        let n = image.grid.size
        var base = SIMD3<Int>(repeating: 0), frac = SIMD3<Double>(repeating: 0)
        for a in 0..<3 {
            let c = min(max(i[a], 0), Double(n[a] - 1))
            base[a] = min(Int(c), max(n[a] - 2, 0))
            frac[a] = n[a] > 1 ? c - Double(base[a]) : 0
        }
        var sum = 0.0
        for corner in 0..<8 {
            var idx = base, weight = 1.0
            for a in 0..<3 {
                let up = (corner >> a) & 1 == 1
                if up { idx[a] = min(idx[a] + 1, n[a] - 1) }
                weight *= up ? frac[a] : 1 - frac[a]
            }
            if weight > 0 { sum += weight * Double(image[idx.x, idx.y, idx.z]) }
        }
        return Float(sum)
    }

    /// Fills, outlines, hatches and numbers the labels of one rendered view.
    func draw(_ overlay: LabelOverlay, labels: [Int32], into out: inout RGBImage) {
        let w = out.width, h = out.height
        var sums: [Int32: (u: Double, v: Double, n: Double)] = [:]
        for v in 0..<h {
            for u in 0..<w {
                let l = labels[v * w + u]
                guard l > 0 else { continue }
                if overlay.numbered { let s = sums[l] ?? (0, 0, 0); sums[l] = (s.u + Double(u), s.v + Double(v), s.n + 1) }
                let edge = (u == 0 || labels[v * w + u - 1] != l) || (u == w - 1 || labels[v * w + u + 1] != l)
                    || (v == 0 || labels[(v - 1) * w + u] != l) || (v == h - 1 || labels[(v + 1) * w + u] != l)
                if overlay.striped.contains(l) {
                    let c: (UInt8, UInt8, UInt8) = ((u + v) / 4) % 2 == 0 ? (255, 0, 0) : (255, 255, 255)
                    out.blend(u, v, c, alpha: edge ? 0.95 : 0.55)
                } else if let c = overlay.color(l) {
                    out.blend(u, v, c, alpha: edge ? 0.95 : 0.45)
                }
            }
        }
        let scale = max(w, h) >= 240 ? 2 : 1
        for (l, s) in sums.sorted(by: { $0.key < $1.key }) where s.n >= 4 {
            let text = String(l)
            let cu = Int((s.u / s.n).rounded()), cv = Int((s.v / s.n).rounded())
            BitmapFont.draw(text, into: &out, x: cu - BitmapFont.width(text, scale: scale) / 2,
                            y: cv - BitmapFont.height(scale: scale) / 2, scale: scale)
        }
    }
}

/// Panels side by side on a dark background, each under its title.
public func composePanels(_ panels: [(title: String, image: RGBImage)], gap: Int = 10) -> RGBImage {
    let titleScale = 2, titleHeight = BitmapFont.height(scale: titleScale) + 10
    // Each panel's slot is as wide as its image or its title, whichever is wider; the image is centred in it.
    let slots = panels.map { max($0.image.width, BitmapFont.width($0.title, scale: titleScale)) }
    let width = slots.reduce(gap) { $0 + $1 + gap }
    let height = titleHeight + (panels.map(\.image.height).max() ?? 1) + gap
    let background: (UInt8, UInt8, UInt8) = (24, 24, 28)
    var out = RGBImage(width: width, height: height, fill: background)
    var x = gap
    for (p, slot) in zip(panels, slots) {
        BitmapFont.draw(p.title, into: &out, x: x + (slot - BitmapFont.width(p.title, scale: titleScale)) / 2, y: 5,
                        scale: titleScale, color: (235, 235, 235), outline: nil)
        out.paste(p.image, x: x + (slot - p.image.width) / 2, y: titleHeight)
        x += slot + gap
    }
    return out
}

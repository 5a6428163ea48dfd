/// Colours for label values: 25 hues, 14.4 degrees apart, visited in steps of 7 so that neighbouring labels
/// (adjacent vertebrae) differ by about 100 degrees, with three brightness levels on top; label 26 repeats
/// label 1 (C1 and a far-away instance), so the 25 vertebrae of a whole spine (C1...L6) never share a colour.
public enum LabelPalette {
    public static let count = 25

    /// RGB colour of label `label` (> 0).
    public static func color(_ label: Int32) -> (UInt8, UInt8, UInt8) {
        let k = (Int(label) - 1 + count * 1000) % count
        let hue = Double((k * 7) % count) / Double(count)
        let value = [1.0, 0.8, 0.92][k % 3]
        return hsv(hue, 0.85, value)
    }

    /// CSS colour `#rrggbb` of a label.
    public static func css(_ label: Int32) -> String {
        let c = color(label)
        return "#" + [c.0, c.1, c.2].map { String(format: "%02x", $0) }.joined()
    }

    static func hsv(_ h: Double, _ s: Double, _ v: Double) -> (UInt8, UInt8, UInt8) {
        let i = Int(h * 6) % 6, f = h * 6 - Double(Int(h * 6))
        let p = v * (1 - s), q = v * (1 - f * s), t = v * (1 - (1 - f) * s)
        let (r, g, b): (Double, Double, Double)
        switch i {
        case 0: (r, g, b) = (v, t, p)
        case 1: (r, g, b) = (q, v, p)
        case 2: (r, g, b) = (p, v, t)
        case 3: (r, g, b) = (p, q, v)
        case 4: (r, g, b) = (t, p, v)
        default: (r, g, b) = (v, p, q)
        }
        return (UInt8((r * 255).rounded()), UInt8((g * 255).rounded()), UInt8((b * 255).rounded()))
    }
}

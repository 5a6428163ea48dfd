import Foundation

/// One curve of a chart: points in order of x; a nil y breaks the line.
struct ChartSeries {
    var name: String
    var color: String
    var points: [(x: Double, y: Double?)]
}

/// A line chart as inline SVG: axes with round ticks, labelled axes, a legend for several series, and
/// dashed vertical markers (learning-rate steps). Each point carries a tooltip with its values.
struct LineChart {
    var title: String
    var xLabel: String
    var yLabel: String
    var series: [ChartSeries]
    var markers: [(x: Double, label: String)] = []
    /// Fixed y range (e.g. 0...1 for Dice); nil: from the data, with zero included for non-negative data.
    var yRange: ClosedRange<Double>?
    var width = 400
    var height = 270

    func svg() -> String {
        let left = 62.0, right = 14.0, top = series.count > 1 ? 44.0 : 30.0, bottom = 44.0
        let plotW = Double(width) - left - right, plotH = Double(height) - top - bottom
        let xs = series.flatMap { $0.points.map(\.x) } + markers.map(\.x)
        let ys = series.flatMap { $0.points.compactMap(\.y) }.filter(\.isFinite)
        var out = ["<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" "
                   + "viewBox=\"0 0 \(width) \(height)\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">",
                   "<rect width=\"100%\" height=\"100%\" fill=\"#fff\" stroke=\"#ccc\"/>",
                   text(Double(width) / 2, 18, title, size: 14, anchor: "middle", weight: "bold")]
        guard let xMin0 = xs.min(), let xMax0 = xs.max(), !ys.isEmpty else {
            out.append(text(Double(width) / 2, Double(height) / 2, "no values yet", anchor: "middle", color: "#777"))
            out.append("</svg>")
            return out.joined(separator: "\n")
        }
        // Iterations count from 0: the axis starts there, so a run's first epochs sit where they belong.
        let xLo = xMin0 >= 0 ? 0 : xMin0
        let xTicks = Self.ticks(xLo, xMax0 > xLo ? xMax0 : xLo + 1)
        var yLo = yRange?.lowerBound ?? ys.min()!, yHi = yRange?.upperBound ?? ys.max()!
        if yRange == nil && yLo >= 0 { yLo = 0 }
        if yHi - yLo < 1e-12 { yHi = yLo + max(abs(yLo) * 0.1, 1e-3) }
        let yTicks = Self.ticks(yLo, yHi)
        let x0 = min(xTicks.first!, xLo), x1 = max(xTicks.last!, xMax0)
        let y0 = yRange?.lowerBound ?? yTicks.first!, y1 = yRange?.upperBound ?? yTicks.last!
        func px(_ x: Double) -> Double { left + (x - x0) / max(x1 - x0, 1e-12) * plotW }
        func py(_ y: Double) -> Double { top + plotH - (y - y0) / max(y1 - y0, 1e-12) * plotH }
        for t in yTicks where t >= y0 - 1e-9 && t <= y1 + 1e-9 {
            out.append(line(left, py(t), left + plotW, py(t), color: "#e6e6e6"))
            out.append(text(left - 6, py(t) + 4, Self.label(t, step: yTicks.count > 1 ? yTicks[1] - yTicks[0] : 1), anchor: "end"))
        }
        for t in xTicks where t >= x0 - 1e-9 && t <= x1 + 1e-9 {
            out.append(line(px(t), top + plotH, px(t), top + plotH + 4, color: "#333"))
            out.append(text(px(t), top + plotH + 17, Self.label(t, step: xTicks.count > 1 ? xTicks[1] - xTicks[0] : 1), anchor: "middle"))
        }
        out.append("<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotW))\" height=\"\(f(plotH))\" fill=\"none\" stroke=\"#333\"/>")
        out.append(text(left + plotW / 2, Double(height) - 6, xLabel, anchor: "middle"))
        out.append("<text x=\"14\" y=\"\(f(top + plotH / 2))\" text-anchor=\"middle\" fill=\"#222\" "
                   + "transform=\"rotate(-90 14 \(f(top + plotH / 2)))\">\(HTML.escape(yLabel))</text>")
        for m in markers {
            out.append("<line x1=\"\(f(px(m.x)))\" y1=\"\(f(top))\" x2=\"\(f(px(m.x)))\" y2=\"\(f(top + plotH))\" "
                       + "stroke=\"#999\" stroke-dasharray=\"4 3\"><title>\(HTML.escape(m.label))</title></line>")
            out.append(text(px(m.x) + 3, top + 11, m.label, size: 10, color: "#666"))
        }
        for s in series {
            var segment: [String] = []
            func flush() {
                if segment.count > 1 {
                    out.append("<polyline fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"2\" points=\"\(segment.joined(separator: " "))\"/>")
                }
                segment = []
            }
            for p in s.points {
                guard let y = p.y, y.isFinite else { flush(); continue }
                segment.append("\(f(px(p.x))),\(f(py(y)))")
            }
            flush()
            for p in s.points {
                guard let y = p.y, y.isFinite else { continue }
                out.append("<circle cx=\"\(f(px(p.x)))\" cy=\"\(f(py(y)))\" r=\"2.6\" fill=\"\(s.color)\">"
                           + "<title>\(HTML.escape(s.name)): \(xLabel) \(Self.label(p.x, step: 1)), \(yLabel) \(String(format: "%.4g", y))</title></circle>")
            }
        }
        if series.count > 1 {
            var x = left
            for s in series {
                out.append("<rect x=\"\(f(x))\" y=\"\(f(top - 16))\" width=\"14\" height=\"4\" fill=\"\(s.color)\"/>")
                out.append(text(x + 18, top - 11, s.name, size: 11))
                x += 26 + Double(s.name.count) * 6.5
            }
        }
        out.append("</svg>")
        return out.joined(separator: "\n")
    }

    /// Round tick values covering lo...hi (about five).
    static func ticks(_ lo: Double, _ hi: Double) -> [Double] {
        let raw = (hi - lo) / 5
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? raw
        let start = floor(lo / step) * step
        var out: [Double] = []
        var t = start
        while t <= hi + step * 0.999 && out.count < 20 { out.append(t); t += step }
        return out
    }

    static func label(_ v: Double, step: Double) -> String {
        if abs(v) >= 10_000 && step >= 1000 { return String(format: "%gk", v / 1000) }
        let digits = step >= 1 ? 0 : min(4, Int(ceil(-log10(step) + 1e-9)))
        return String(format: "%.\(digits)f", v)
    }

    private func f(_ v: Double) -> String { String(format: "%.1f", v) }
    private func line(_ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, color: String) -> String {
        "<line x1=\"\(f(x1))\" y1=\"\(f(y1))\" x2=\"\(f(x2))\" y2=\"\(f(y2))\" stroke=\"\(color)\"/>"
    }
    private func text(_ x: Double, _ y: Double, _ s: String, size: Int = 12, anchor: String = "start",
                      weight: String = "normal", color: String = "#222") -> String {
        "<text x=\"\(f(x))\" y=\"\(f(y))\" font-size=\"\(size)\" text-anchor=\"\(anchor)\" font-weight=\"\(weight)\" "
            + "fill=\"\(color)\">\(HTML.escape(s))</text>"
    }
}

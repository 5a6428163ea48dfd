import CLibPNG
import Foundation

/// An 8-bit RGB raster, rows top to bottom, 3 bytes per pixel.
public struct RGBImage: Equatable, Sendable {
    public let width: Int
    public let height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, fill: (UInt8, UInt8, UInt8) = (0, 0, 0)) {
        precondition(width >= 1 && height >= 1, "image must be at least 1 x 1")
        self.width = width
        self.height = height
        pixels = [UInt8](repeating: 0, count: width * height * 3)
        if fill != (0, 0, 0) { for i in 0..<(width * height) { set(i % width, i / width, fill) } }
    }

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 3, "pixel count does not match \(width) x \(height) RGB")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    @inline(__always)
    public func get(_ x: Int, _ y: Int) -> (UInt8, UInt8, UInt8) {
        let i = 3 * (y * width + x)
        return (pixels[i], pixels[i + 1], pixels[i + 2])
    }

    @inline(__always)
    public mutating func set(_ x: Int, _ y: Int, _ c: (UInt8, UInt8, UInt8)) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let i = 3 * (y * width + x)
        pixels[i] = c.0; pixels[i + 1] = c.1; pixels[i + 2] = c.2
    }

    /// Blends colour `c` over the pixel with opacity `alpha` (0...1).
    @inline(__always)
    public mutating func blend(_ x: Int, _ y: Int, _ c: (UInt8, UInt8, UInt8), alpha: Double) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let i = 3 * (y * width + x)
        func mix(_ a: UInt8, _ b: UInt8) -> UInt8 { UInt8((Double(a) * (1 - alpha) + Double(b) * alpha).rounded()) }
        pixels[i] = mix(pixels[i], c.0); pixels[i + 1] = mix(pixels[i + 1], c.1); pixels[i + 2] = mix(pixels[i + 2], c.2)
    }

    /// Copies `other` with its top-left corner at (x, y), clipped to this image.
    public mutating func paste(_ other: RGBImage, x: Int, y: Int) {
        for r in 0..<other.height where y + r >= 0 && y + r < height {
            for c in 0..<other.width where x + c >= 0 && x + c < width { set(x + c, y + r, other.get(c, r)) }
        }
    }
}

/// PNG files through libpng's simplified API (png_image_*): a well-kept library, packaged by Debian
/// (libpng-dev), that writes and reads every PNG variant (filters, interlacing, palettes, 16-bit), so
/// the report test can decode Chromium's screenshots as well as write the previews.
public enum PNG {
    /// The PNG encoding of `image` (8-bit RGB).
    public static func encode(_ image: RGBImage) throws -> Data {
        var png = png_image()
        png.version = png_uint_32(PNG_IMAGE_VERSION)
        png.width = png_uint_32(image.width)
        png.height = png_uint_32(image.height)
        png.format = png_uint_32(PNG_FORMAT_RGB)
        var size: Int = 0
        let ok = image.pixels.withUnsafeBytes { px -> Bool in
            // First call: the size needed; second call: the bytes.
            guard png_image_write_to_memory(&png, nil, &size, 0, px.baseAddress, 0, nil) != 0 else { return false }
            return true
        }
        guard ok, size > 0 else { throw ReportError("cannot encode a \(image.width) x \(image.height) PNG: \(message(png))") }
        var out = Data(count: size)
        let written = out.withUnsafeMutableBytes { buf in
            image.pixels.withUnsafeBytes { px in
                png_image_write_to_memory(&png, buf.baseAddress, &size, 0, px.baseAddress, 0, nil)
            }
        }
        png_image_free(&png)
        guard written != 0 else { throw ReportError("cannot encode a \(image.width) x \(image.height) PNG: \(message(png))") }
        return out.prefix(size)
    }

    /// Writes `image` as a PNG file atomically.
    public static func write(_ image: RGBImage, to path: String) throws {
        try writeFile(encode(image), to: path)
    }

    /// Decodes a PNG (any bit depth, colour type or interlacing) to 8-bit RGB, composited on black.
    public static func decode(_ data: Data, name: String = "PNG data") throws -> RGBImage {
        var png = png_image()
        png.version = png_uint_32(PNG_IMAGE_VERSION)
        let begun = data.withUnsafeBytes { png_image_begin_read_from_memory(&png, $0.baseAddress, $0.count) }
        guard begun != 0 else { throw ReportError("\(name): not a readable PNG: \(message(png))") }
        png.format = png_uint_32(PNG_FORMAT_RGB)
        let width = Int(png.width), height = Int(png.height)
        guard width >= 1, height >= 1, width * height <= 1 << 28 else {
            png_image_free(&png)
            throw ReportError("\(name): unusable PNG size \(width) x \(height)")
        }
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        var black = png_color(red: 0, green: 0, blue: 0)
        let finished = pixels.withUnsafeMutableBytes { png_image_finish_read(&png, &black, $0.baseAddress, 0, nil) }
        guard finished != 0 else {
            let m = message(png)
            png_image_free(&png)
            throw ReportError("\(name): cannot decode: \(m)")
        }
        return RGBImage(width: width, height: height, pixels: pixels)
    }

    /// Reads and decodes a PNG file.
    public static func read(_ path: String) throws -> RGBImage {
        guard let data = FileManager.default.contents(atPath: path) else { throw ReportError("\(path): cannot read") }
        return try decode(data, name: path)
    }

    private static func message(_ png: png_image) -> String {
        var m = png.message
        return withUnsafeBytes(of: &m) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
    }
}

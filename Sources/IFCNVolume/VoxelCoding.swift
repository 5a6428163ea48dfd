import Foundation

/// Conversion between Float voxels and raw little/big-endian bytes of each VoxelType.
enum VoxelCoding {
    /// Raw bytes of `values` stored as `type` (integers rounded and clamped), little-endian unless `bigEndian`.
    static func encode(_ values: [Float], as type: VoxelType, bigEndian: Bool = false) -> [UInt8] {
        let n = values.count
        var out = [UInt8](repeating: 0, count: n * type.byteSize)
        values.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBytes { raw in
                let dst = raw.baseAddress!
                switch type {
                case .uint8: store(src, dst, UInt8.self, bigEndian)
                case .int8: store(src, dst, Int8.self, bigEndian)
                case .uint16: store(src, dst, UInt16.self, bigEndian)
                case .int16: store(src, dst, Int16.self, bigEndian)
                case .uint32: store(src, dst, UInt32.self, bigEndian)
                case .int32: store(src, dst, Int32.self, bigEndian)
                case .float32:
                    let p = dst.bindMemory(to: UInt32.self, capacity: n)
                    for i in 0..<n { p[i] = bigEndian ? src[i].bitPattern.bigEndian : src[i].bitPattern.littleEndian }
                case .float64:
                    let p = dst.bindMemory(to: UInt64.self, capacity: n)
                    for i in 0..<n {
                        let b = Double(src[i]).bitPattern
                        p[i] = bigEndian ? b.bigEndian : b.littleEndian
                    }
                }
            }
        }
        return out
    }

    private static func store<T: FixedWidthInteger>(_ src: UnsafeBufferPointer<Float>, _ dst: UnsafeMutableRawPointer,
                                                    _: T.Type, _ bigEndian: Bool) {
        let p = dst.bindMemory(to: T.self, capacity: src.count)
        let lo = Float(T.min), hi = Float(T.max)
        for i in 0..<src.count {
            var v = src[i].rounded()
            if !(v >= lo) { v = lo }  // also maps NaN to the minimum
            let t: T = v >= hi ? T.max : T(v)
            p[i] = bigEndian ? t.bigEndian : t.littleEndian
        }
    }

    /// Decodes `count` voxels of `type` from `bytes` (starting at `offset`) into Floats.
    static func decode(_ bytes: UnsafeRawBufferPointer, offset: Int = 0, count: Int, as type: VoxelType,
                       bigEndian: Bool) -> [Float] {
        precondition(bytes.count - offset >= count * type.byteSize)
        let base = bytes.baseAddress! + offset
        return [Float](unsafeUninitializedCapacity: count) { out, initialized in
            switch type {
            case .uint8: load(base, out, UInt8.self, bigEndian)
            case .int8: load(base, out, Int8.self, bigEndian)
            case .uint16: load(base, out, UInt16.self, bigEndian)
            case .int16: load(base, out, Int16.self, bigEndian)
            case .uint32: load(base, out, UInt32.self, bigEndian)
            case .int32: load(base, out, Int32.self, bigEndian)
            case .float32:
                for i in 0..<count {
                    let b = base.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)
                    out[i] = Float(bitPattern: bigEndian ? UInt32(bigEndian: b) : UInt32(littleEndian: b))
                }
            case .float64:
                for i in 0..<count {
                    let b = base.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)
                    out[i] = Float(Double(bitPattern: bigEndian ? UInt64(bigEndian: b) : UInt64(littleEndian: b)))
                }
            }
            initialized = count
        }
    }

    private static func load<T: FixedWidthInteger>(_ base: UnsafeRawPointer, _ out: UnsafeMutableBufferPointer<Float>,
                                                   _: T.Type, _ bigEndian: Bool) {
        let size = MemoryLayout<T>.size
        for i in 0..<out.count {
            let raw = base.loadUnaligned(fromByteOffset: i * size, as: T.self)
            out[i] = Float(bigEndian ? T(bigEndian: raw) : T(littleEndian: raw))
        }
    }
}

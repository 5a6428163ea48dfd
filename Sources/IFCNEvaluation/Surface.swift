import Foundation
import IFCNSupport

/// Surface of a mask: the mask minus its 6-connected erosion, with everything outside the volume counting as
/// outside the mask (a mask voxel on the volume border is a surface voxel). Index `x + nx * (y + ny * z)`.
public func surface(of mask: [Bool], size: SIMD3<Int>) -> [Bool] {
    let count = size.x * size.y * size.z
    precondition(mask.count == count, "surface: \(mask.count) voxels for size \(size)")
    var result = [Bool](repeating: false, count: count)
    guard count > 0 else { return result }
    let nx = size.x, ny = size.y, nz = size.z, plane = nx * ny
    mask.withUnsafeBufferPointer { m in
        result.withUnsafeMutableBufferPointer { out in
            let slabs = count >= 1 << 16 ? Swift.min(nz, activeCoreCount * 2) : 1
            parallelChunks(count: nz, parts: slabs) { zs in
                for z in zs {
                    for y in 0..<ny {
                        let row = nx * (y + ny * z)
                        for x in 0..<nx where m[row + x] {
                            let i = row + x
                            let interior = x > 0 && x < nx - 1 && y > 0 && y < ny - 1 && z > 0 && z < nz - 1
                                && m[i - 1] && m[i + 1] && m[i - nx] && m[i + nx] && m[i - plane] && m[i + plane]
                            out[i] = !interior
                        }
                    }
                }
            }
        }
    }
    return result
}

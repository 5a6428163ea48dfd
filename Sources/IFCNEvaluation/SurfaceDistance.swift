import Foundation
import IFCNVolume

/// Average symmetric surface distance in mm, as medpy's `assd`: the mean of (mean distance from each surface
/// voxel of `a` to the nearest surface voxel of `b`) and (the same from `b` to `a`). Surfaces as `surface(of:size:)`,
/// distances exact and Euclidean with the anisotropic `spacing`. Nil when either mask is empty.
public func averageSymmetricSurfaceDistance(a: [Bool], b: [Bool], size: SIMD3<Int>,
                                            spacing: SIMD3<Double>) -> Double? {
    let surfaceA = surface(of: a, size: size), surfaceB = surface(of: b, size: size)
    guard let ab = meanDistance(from: surfaceA, to: surfaceB, size: size, spacing: spacing),
          let ba = meanDistance(from: surfaceB, to: surfaceA, size: size, spacing: spacing) else { return nil }
    return (ab + ba) / 2
}

/// Mean over the voxels of `from` of the distance to the nearest voxel of `to`; nil when either set is empty.
private func meanDistance(from: [Bool], to: [Bool], size: SIMD3<Int>, spacing: SIMD3<Double>) -> Double? {
    let squared = squaredDistanceTransform(features: to, size: size, spacing: spacing)
    var sum = 0.0, count = 0
    from.withUnsafeBufferPointer { f in
        squared.withUnsafeBufferPointer { d in
            for i in 0..<f.count where f[i] {
                sum += d[i].squareRoot()
                count += 1
            }
        }
    }
    guard count > 0, sum.isFinite else { return nil }
    return sum / Double(count)
}

/// ASSD of reference label `referenceLabel` and predicted label `predictionLabel`, computed inside `box` only.
/// Exact when `box` holds both instances: both surfaces lie in it, everything outside it is outside both masks
/// (or outside the image), and distances to a point set do not depend on the grid around them.
func averageSymmetricSurfaceDistance(reference: LabelMap, referenceLabel: Int32,
                                     prediction: LabelMap, predictionLabel: Int32, box: VoxelBox) -> Double? {
    let boxSize = box.size
    let count = boxSize.x * boxSize.y * boxSize.z
    var a = [Bool](repeating: false, count: count), b = [Bool](repeating: false, count: count)
    let nx = reference.size.x, ny = reference.size.y
    reference.labels.withUnsafeBufferPointer { ref in
        prediction.labels.withUnsafeBufferPointer { pred in
            a.withUnsafeMutableBufferPointer { ma in
                b.withUnsafeMutableBufferPointer { mb in
                    var j = 0
                    for z in box.lower.z...box.upper.z {
                        for y in box.lower.y...box.upper.y {
                            let row = nx * (y + ny * z)
                            for x in box.lower.x...box.upper.x {
                                ma[j] = ref[row + x] == referenceLabel
                                mb[j] = pred[row + x] == predictionLabel
                                j += 1
                            }
                        }
                    }
                }
            }
        }
    }
    return averageSymmetricSurfaceDistance(a: a, b: b, size: boxSize, spacing: reference.spacing)
}

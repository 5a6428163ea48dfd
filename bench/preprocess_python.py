#!/usr/bin/env python3
"""Reference preprocessing in Python (SimpleITK + scipy), for speed comparisons with `ifcn preprocess`.

Same steps as the public implementation and as ifcn: read image and label map, resample onto the canonical
(identity direction, LPS) isotropic grid covering the scan's voxel centres (linear for the image, fill -1000 HU;
nearest for labels), weight map w = 1 + 8 exp(-d^2/36) with d = edt(B) + edt(!B) in mm (scipy). Prints the
seconds per case (time.perf_counter) and the total. Optionally writes the results (--output) for comparison.

usage: bench/preprocess_python.py INPUT_DIR [--spacing MM] [--output DIR]
"""
import argparse
import os
import time

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

EXTS = (".nii.gz", ".nii", ".mhd", ".mha")
LABEL_SUFFIXES = ("_seg-vert_msk", "_label", "_seg")


def split_ext(name):
    for ext in EXTS:
        if name.lower().endswith(ext) and len(name) > len(ext):
            return name[: -len(ext)], ext
    return None


def find_pairs(folder):
    images, labels = {}, []
    for name in sorted(os.listdir(folder)):
        parts = split_ext(name)
        if not parts or name.startswith("."):
            continue
        stem = parts[0]
        suffix = next((s for s in LABEL_SUFFIXES if stem.endswith(s) and len(stem) > len(s)), None)
        if suffix:
            labels.append((stem[: -len(suffix)], name))
        else:
            images[stem] = name
    pairs = []
    for base, label in labels:
        image = images.get(base) or images.get(base + "_ct")
        if image is None:
            raise SystemExit(f"{os.path.join(folder, label)}: label map without its image")
        pairs.append((base, os.path.join(folder, image), os.path.join(folder, label)))
    return pairs


def canonical_grid(img, spacing):
    d = np.array(img.GetDirection()).reshape(3, 3)
    s = np.diag(img.GetSpacing())
    o = np.array(img.GetOrigin())
    n = np.array(img.GetSize())
    corners = np.array([[i, j, k] for i in (0, n[0] - 1) for j in (0, n[1] - 1) for k in (0, n[2] - 1)], float)
    world = o + corners @ (d @ s).T
    lo, hi = world.min(0), world.max(0)
    size = [int(np.floor((hi[i] - lo[i]) / spacing + 1e-6)) + 1 for i in range(3)]
    return size, lo.tolist()


def preprocess(image_path, label_path, spacing):
    image = sitk.ReadImage(image_path, sitk.sitkFloat32)
    label = sitk.ReadImage(label_path)
    size, origin = canonical_grid(image, spacing)
    identity = np.eye(3).ravel().tolist()
    image_r = sitk.Resample(image, size, sitk.Transform(), sitk.sitkLinear, origin, (spacing,) * 3, identity,
                            -1000.0, sitk.sitkFloat32)
    label_r = sitk.Resample(label, size, sitk.Transform(), sitk.sitkNearestNeighbor, origin, (spacing,) * 3,
                            identity, 0, label.GetPixelID())
    mask = sitk.GetArrayViewFromImage(label_r) > 0
    sampling = (spacing,) * 3
    d = ndimage.distance_transform_edt(mask, sampling=sampling) + ndimage.distance_transform_edt(~mask, sampling=sampling)
    weights = (1 + 8 * np.exp(-d ** 2 / 36)).astype(np.float32)
    weights_img = sitk.GetImageFromArray(weights)
    weights_img.CopyInformation(image_r)
    return image_r, label_r, weights_img


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input")
    parser.add_argument("--spacing", type=float, default=1.0)
    parser.add_argument("--output")
    args = parser.parse_args()
    pairs = find_pairs(args.input)
    if not pairs:
        raise SystemExit(f"{args.input}: no image/label pairs found")
    total = 0.0
    for i, (name, image_path, label_path) in enumerate(pairs):
        t0 = time.perf_counter()
        image, label, weights = preprocess(image_path, label_path, args.spacing)
        seconds = time.perf_counter() - t0
        total += seconds
        print(f"case {i + 1}/{len(pairs)} {name}: {image.GetSize()[0]}x{image.GetSize()[1]}x{image.GetSize()[2]}, "
              f"{seconds:.3f} s")
        if args.output:
            for sub, img in (("images", image), ("labels", label), ("weights", weights)):
                os.makedirs(os.path.join(args.output, sub), exist_ok=True)
                sitk.WriteImage(img, os.path.join(args.output, sub, name + ".nii.gz"))
    print(f"total {total:.3f} s for {len(pairs)} cases ({total / len(pairs):.3f} s per case)")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Generates the IFCNEvaluation test fixtures with numpy/scipy, independently of the Swift code.

Surface and ASSD follow medpy's definitions (medpy itself is not needed):
  surface(m) = m XOR binary_erosion(m, 6-connected structure, border_value=0)
  asd(a, b)  = mean over surface(a) of distance_transform_edt(~surface(b), sampling=spacing)
  assd(a, b) = (asd(a, b) + asd(b, a)) / 2
Matching: greedy by overlap (ties: smaller reference label, then smaller predicted label), one-to-one.

Files (volumes are raw little-endian, x fastest, i.e. numpy arrays indexed [z, y, x] in C order):
  edt_features.u8, edt_expected.f64   feature mask and exact Euclidean distance to the nearest feature
  case<N>_reference.u8, case<N>_prediction.u8   label maps (uint8)
  expected.json   grids, spacings, expected surface voxel counts, distances and per-case evaluations

Run: python3 make_fixtures.py   (writes next to this script)
"""
import json
import os

import numpy as np
from scipy import ndimage

HERE = os.path.dirname(os.path.abspath(__file__))
STRUCT6 = ndimage.generate_binary_structure(3, 1)


def surface(mask):
    return mask ^ ndimage.binary_erosion(mask, structure=STRUCT6, border_value=0)


def sampling(spacing_xyz):
    return tuple(reversed(spacing_xyz))  # numpy axes are z, y, x


def asd(a, b, spacing_xyz):
    dt = ndimage.distance_transform_edt(~surface(b), sampling=sampling(spacing_xyz))
    return float(dt[surface(a)].mean())


def assd(a, b, spacing_xyz):
    return (asd(a, b, spacing_xyz) + asd(b, a, spacing_xyz)) / 2


def dice(a, b):
    total = int(a.sum()) + int(b.sum())
    return 0.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def greedy_match(ref, pred):
    ref_labels = sorted(int(v) for v in np.unique(ref) if v != 0)
    pred_labels = sorted(int(v) for v in np.unique(pred) if v != 0)
    pairs = []
    for r in ref_labels:
        for p in pred_labels:
            n = int(((ref == r) & (pred == p)).sum())
            if n > 0:
                pairs.append((-n, r, p))
    pairs.sort()
    matches, taken = {}, set()
    for _, r, p in pairs:
        if r not in matches and p not in taken:
            matches[r] = p
            taken.add(p)
    return ref_labels, matches, [p for p in pred_labels if p not in taken]


def evaluate(ref, pred, spacing_xyz):
    ref_labels, matches, false_positives = greedy_match(ref, pred)
    nz = ref.shape[0]
    vertebrae = []
    for r in ref_labels:
        mask = ref == r
        zs = np.nonzero(mask.any(axis=(1, 2)))[0]
        complete = bool(zs.min() > 0 and zs.max() < nz - 1)
        p = matches.get(r)
        if p is None:
            vertebrae.append(dict(reference_label=r, predicted_label=None, dice=0.0, assd_mm=None, complete=complete))
        else:
            other = pred == p
            vertebrae.append(dict(reference_label=r, predicted_label=p, dice=dice(mask, other),
                                  assd_mm=assd(mask, other, spacing_xyz), complete=complete))
    return dict(vertebrae=vertebrae, false_positives=false_positives)


def smooth_noise(rng, shape, sigma=2.0):
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return noise / np.abs(noise).max()


def spine(rng, shape, centres, labels, shift=(0, 0, 0), radii=(7.0, 5.5, 1.7), wobble=0.5):
    """Stack of noisy ellipsoids along z; centres are z positions, shift is (x, y, z) in voxels."""
    nz, ny, nx = shape
    z, y, x = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    out = np.zeros(shape, np.uint8)
    noise = smooth_noise(rng, shape)
    for cz, label in zip(centres, labels):
        cx = nx / 2 - 0.5 + shift[0] + rng.uniform(-1, 1)
        cy = ny / 2 - 0.5 + shift[1] + rng.uniform(-1, 1)
        cz = cz + shift[2]
        r = ((x - cx) / radii[0]) ** 2 + ((y - cy) / radii[1]) ** 2 + ((z - cz) / radii[2]) ** 2
        out[(r + wobble * noise < 1) & (out == 0)] = label
    return out


def main():
    rng = np.random.default_rng(20180704)
    shape = (16, 20, 24)  # z, y, x
    spacing = (0.8, 1.0, 2.5)  # x, y, z in mm
    expected = dict(size=[shape[2], shape[1], shape[0]], spacing=list(spacing))

    # Exact distance transform of a sparse random feature set, on a smaller anisotropic grid.
    edt_shape = (10, 12, 16)
    features = rng.random(edt_shape) < 0.01
    features[0, 0, 0] = True
    features.astype(np.uint8).tofile(os.path.join(HERE, "edt_features.u8"))
    edt = ndimage.distance_transform_edt(~features, sampling=sampling(spacing))
    edt.astype("<f8").tofile(os.path.join(HERE, "edt_expected.f64"))
    expected["edt"] = dict(size=[edt_shape[2], edt_shape[1], edt_shape[0]], spacing=list(spacing))

    centres = [1.0, 4.5, 8.0, 11.5, 15.0]
    labels = [20, 21, 22, 23, 24]
    cases = []
    # case1: good prediction with permuted labels
    ref = spine(rng, shape, centres, labels)
    pred = spine(rng, shape, centres, [3, 1, 5, 2, 4], shift=(0.6, -0.4, 0.2))
    cases.append(("case1", ref, pred))
    # case2: one vertebra missed, a false-positive blob, a shifted prediction
    ref = spine(rng, shape, centres, labels)
    pred = spine(rng, shape, centres, [1, 2, 0, 4, 5], shift=(1.5, 0.5, 0.6), radii=(6.0, 5.0, 1.6))
    pred[2:5, 1:4, 1:5] = 9
    cases.append(("case2", ref, pred))
    # case3: a vertebra split into two predicted instances, coarse and shrunken prediction
    ref = spine(rng, shape, centres, labels)
    pred = spine(rng, shape, centres, [11, 12, 13, 14, 15], shift=(-1.0, 1.0, -0.3), radii=(5.5, 4.5, 1.5),
                 wobble=0.8)
    half = (pred == 13) & (np.arange(shape[2])[None, None, :] < 10)
    pred[half] = 16
    cases.append(("case3", ref, pred))

    expected["cases"] = []
    for name, ref, pred in cases:
        ref.tofile(os.path.join(HERE, f"{name}_reference.u8"))
        pred.tofile(os.path.join(HERE, f"{name}_prediction.u8"))
        result = evaluate(ref, pred, spacing)
        result["case"] = name
        expected["cases"].append(result)

    # Binary-mask checks on case1's first complete vertebra and its match: surface sizes, dice, assd.
    ref, pred = cases[0][1], cases[0][2]
    r = expected["cases"][0]["vertebrae"][1]
    a, b = ref == r["reference_label"], pred == r["predicted_label"]
    expected["binary"] = dict(reference_label=r["reference_label"], predicted_label=r["predicted_label"],
                              surface_a=int(surface(a).sum()), surface_b=int(surface(b).sum()),
                              surface_a_indices=np.flatnonzero(surface(a)).tolist(),
                              dice=dice(a, b), assd_mm=assd(a, b, spacing))
    with open(os.path.join(HERE, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Crops a scan and its vertebra mask (gzipped NIfTI-1) to the mask's bounding box plus a margin, keeping the
world geometry (qform and sform shifted), as sub-verse005 and sub-verse008 in data/verse come. Used by
docs/ACCURACY.md, "Field of view", to give sub-verse012 the field of view of the other two scans.
   bench/crop_to_labels.py CT MASK OUT_DIR [MARGIN_VOXELS]
Writes OUT_DIR/<name of CT> and OUT_DIR/<name of MASK>. numpy only."""
import gzip, os, struct, sys
import numpy as np
from nifti_gz import read


def write_cropped(path, out, lo, hi):
    b, dim, offset, a = read(path)
    a = a[lo[2]:hi[2] + 1, lo[1]:hi[1] + 1, lo[0]:hi[0] + 1]
    pix = struct.unpack("<8f", b[76:108])
    qb, qc, qd = struct.unpack("<3f", b[256:268])
    qa = np.sqrt(max(0.0, 1 - qb * qb - qc * qc - qd * qd))
    rotation = np.array([[qa * qa + qb * qb - qc * qc - qd * qd, 2 * (qb * qc - qa * qd), 2 * (qb * qd + qa * qc)],
                         [2 * (qb * qc + qa * qd), qa * qa + qc * qc - qb * qb - qd * qd, 2 * (qc * qd - qa * qb)],
                         [2 * (qb * qd - qa * qc), 2 * (qc * qd + qa * qb), qa * qa + qd * qd - qc * qc - qb * qb]])
    qfac = -1.0 if pix[0] < 0 else 1.0
    shift = rotation @ np.array([lo[0] * pix[1], lo[1] * pix[2], lo[2] * pix[3] * qfac])
    b[268:280] = struct.pack("<3f", *(np.array(struct.unpack("<3f", b[268:280])) + shift))
    if struct.unpack("<h", b[254:256])[0] > 0:  # an sform: move its origin by the same index offset
        s = np.array(struct.unpack("<12f", b[280:328])).reshape(3, 4)
        s[:, 3] += s[:, :3] @ np.array(lo, dtype=float)
        b[280:328] = struct.pack("<12f", *s.ravel())
    dim[1], dim[2], dim[3] = a.shape[2], a.shape[1], a.shape[0]
    b[40:56] = struct.pack("<8h", *dim)
    with gzip.open(os.path.join(out, os.path.basename(path)), "wb") as f:
        f.write(bytes(b[:offset]) + np.ascontiguousarray(a).tobytes())


ct, mask, out = sys.argv[1:4]
margin = int(sys.argv[4]) if len(sys.argv) > 4 else 0
labels = read(mask)[3]
lo, hi = [], []
for axis in (2, 1, 0):  # i, j, k
    present = np.nonzero(labels.any(axis=tuple(a for a in range(3) if a != axis)))[0]
    lo.append(max(0, int(present.min()) - margin))
    hi.append(min(labels.shape[axis] - 1, int(present.max()) + margin))
os.makedirs(out, exist_ok=True)
for path in (ct, mask):
    write_cropped(path, out, lo, hi)
print(f"cropped to voxels {lo}..{hi} (i, j, k) of {list(labels.shape[::-1])} -> {out}")

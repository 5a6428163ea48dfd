"""Regenerates the IFCNVolumeTests fixtures (run from this folder; needs numpy, scipy, SimpleITK, nibabel).

edt.json          mask + scipy.ndimage.distance_transform_edt(sampling=...) reference distances
resample_*.nii.gz oblique anisotropic inputs written by SimpleITK, and SimpleITK's resampling of them onto the
                  canonical 1 mm grid covering their voxel centres (nearest for labels, linear for the image)
resample.json     that output grid
nib_*.nii(.gz)    NIfTI files written by nibabel with particular headers; nib.json gives the expected LPS grid
                  and voxel values
"""
import json
import numpy as np
import nibabel as nib
import SimpleITK as sitk
from scipy import ndimage

rng = np.random.default_rng(1234)

# --- EDT ---------------------------------------------------------------------------------------------------
nx, ny, nz = 13, 11, 9
spacing = (0.7, 1.3, 2.1)
arr = np.zeros((nz, ny, nx), bool)  # z, y, x like ITK/our linear order
arr[2:7, 3:9, 2:11] = True
arr[4, 5, 6] = False
arr[0:3, 0:2, 10:13] = True
arr[rng.random(arr.shape) < 0.04] ^= True
edt = ndimage.distance_transform_edt(arr, sampling=spacing[::-1])
json.dump({"size": [nx, ny, nz], "spacing": list(spacing),
           "mask": arr.astype(int).ravel().tolist(),
           "distance": [round(float(v), 6) for v in edt.ravel()]}, open("edt.json", "w"))


# --- resampling ----------------------------------------------------------------------------------------------
def rotation(axis, angle):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k

size = (18, 14, 10)
sp = (0.9, 1.4, 2.3)
perm = np.array([[0, 0, 1], [1, 0, 0], [0, -1, 0]], float)  # like P-I-R storage, then a tilt
direction = rotation((1, 2, 3), np.deg2rad(23)) @ perm
labels = np.zeros(size[::-1], np.uint8)
zz, yy, xx = np.meshgrid(*[np.arange(n) for n in size[::-1]], indexing="ij")
for lab in range(1, 6):
    c = rng.uniform([0, 0, 0], size[::-1])
    r = rng.uniform(2, 5)
    labels[((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2) < r * r] = lab
image = (100 * np.sin(xx / 3.0) + 50 * np.cos(yy / 2.0) + 20 * zz + rng.normal(0, 5, xx.shape)).astype(np.float32)
for name, a in (("label", labels), ("image", image)):
    im = sitk.GetImageFromArray(a)
    im.SetSpacing(sp)
    im.SetOrigin((12.3, -40.7, 101.9))
    im.SetDirection(direction.ravel().tolist())
    sitk.WriteImage(im, f"resample_in_{name}.nii.gz")

src = sitk.ReadImage("resample_in_label.nii.gz")
D = np.array(src.GetDirection()).reshape(3, 3)
S = np.diag(src.GetSpacing())
O = np.array(src.GetOrigin())
n = np.array(src.GetSize())
corners = np.array([[i, j, k] for i in (0, n[0] - 1) for j in (0, n[1] - 1) for k in (0, n[2] - 1)], float)
world = O + corners @ (D @ S).T
lo, hi = world.min(0), world.max(0)
out_spacing = 1.0
out_size = [int(np.floor((hi[i] - lo[i]) / out_spacing + 1e-6)) + 1 for i in range(3)]
json.dump({"size": out_size, "spacing": out_spacing, "origin": lo.tolist()}, open("resample.json", "w"))
for name, interp, fill in (("label", sitk.sitkNearestNeighbor, 0), ("image", sitk.sitkLinear, -1000)):
    src = sitk.ReadImage(f"resample_in_{name}.nii.gz")
    out = sitk.Resample(src, out_size, sitk.Transform(), interp, lo.tolist(), (out_spacing,) * 3,
                        np.eye(3).ravel().tolist(), fill, src.GetPixelID())
    sitk.WriteImage(out, f"resample_out_{name}.nii.gz")


# --- NIfTI headers written by nibabel -----------------------------------------------------------------------
def lps(affine):
    a = np.diag([-1, -1, 1]) @ affine[:3, :]
    m, o = a[:, :3], a[:, 3]
    s = np.linalg.norm(m, axis=0)
    return {"spacing": s.tolist(), "origin": o.tolist(), "direction": (m / s).ravel().tolist()}

expected = {}
shape = (5, 4, 3)
data = rng.integers(-300, 300, shape).astype(np.int16)
rot = rotation((0.3, -1, 0.5), np.deg2rad(31))
sform = np.eye(4); sform[:3, :3] = rot @ np.diag([0.8, 1.1, 2.5]); sform[:3, 3] = [-20.5, 33.25, 7.0]
qform = np.eye(4); qform[:3, :3] = np.diag([1.5, 1.5, 1.5]); qform[:3, 3] = [1, 2, 3]

img = nib.Nifti1Image(data, None)
img.set_qform(qform, code=1)
img.set_sform(sform, code=2)
img.header.set_slope_inter(2.0, -5.0)
img.header.set_data_dtype(np.int16)
nib.save(img, "nib_sform_slope.nii")
expected["nib_sform_slope.nii"] = {"size": list(shape), **lps(sform),
                                   "values": (data.astype(float) * 2 - 5).ravel(order="F").tolist()}

qrot = rotation((1, 1, 0), np.deg2rad(-17)) @ np.diag([1, -1, 1])  # det -1 (qfac)
q = np.eye(4); q[:3, :3] = qrot @ np.diag([0.6, 0.75, 3.0]); q[:3, 3] = [5.0, -6.5, -80.0]
fdata = rng.normal(0, 100, shape).astype(np.float32)
img = nib.Nifti1Image(fdata, None)
img.set_qform(q, code=1)
img.set_sform(None, code=0)
nib.save(img, "nib_qform_only.nii.gz")
qa = img.get_qform()
expected["nib_qform_only.nii.gz"] = {"size": list(shape), **lps(qa), "values": fdata.astype(float).ravel(order="F").tolist()}

ddata = rng.normal(0, 1, shape)
img = nib.Nifti2Image(ddata, sform)
img.set_sform(sform, code=1)
img.set_qform(sform, code=1)
nib.save(img, "nib_nifti2.nii.gz")
expected["nib_nifti2.nii.gz"] = {"size": list(shape), **lps(img.get_sform()), "values": ddata.astype(np.float32).astype(float).ravel(order="F").tolist()}

u8 = rng.integers(0, 255, shape).astype(np.uint8)
img = nib.Nifti1Image(u8, None)
img.header.set_zooms((0.5, 0.75, 1.25))
img.set_sform(None, code=0)
img.set_qform(None, code=0)
nib.save(img, "nib_noxform.nii")
expected["nib_noxform.nii"] = {"size": list(shape), "spacing": [0.5, 0.75, 1.25], "origin": [0, 0, 0],
                               "direction": [-1, 0, 0, 0, -1, 0, 0, 0, 1], "values": u8.astype(float).ravel(order="F").tolist()}
json.dump(expected, open("nib.json", "w"))

# --- a compressed NIfTI whose header claims 10000 x 10000 x 21 int16 voxels (4.2 GB) but holds 100 bytes ----
import gzip
hdr = nib.Nifti1Header()
hdr.set_data_shape((10000, 10000, 21))
hdr.set_data_dtype(np.int16)
hdr.set_data_offset(352)  # a valid single-file offset: the claim, not the offset, is what is wrong
raw = hdr.binaryblock + b"\x00" * 4 + bytes(100)
with gzip.GzipFile("huge_claim.nii.gz", "wb", mtime=0) as f:
    f.write(raw)

"""Reading gzipped NIfTI-1 files with numpy only (no nibabel), for the bench scripts."""
import gzip, struct
import numpy as np

DTYPES = {2: "u1", 4: "<i2", 8: "<i4", 16: "<f4", 64: "<f8", 512: "<u2", 768: "<u4"}


def read(path):
    """(header bytes as a bytearray, dim[8], data offset, voxels as an array indexed [k, j, i])."""
    b = bytearray(gzip.open(path).read())
    dim = list(struct.unpack("<8h", b[40:56]))
    dtype = np.dtype(DTYPES[struct.unpack("<h", b[70:72])[0]])
    offset = int(struct.unpack("<f", b[108:112])[0])
    n = dim[1] * dim[2] * dim[3]
    voxels = np.frombuffer(bytes(b[offset:offset + n * dtype.itemsize]), dtype=dtype).reshape(dim[3], dim[2], dim[1])
    return b, dim, offset, voxels

#!/usr/bin/env python3
"""Noise of preprocessed images: for each image of each data set folder (ifcn preprocess output), the standard
deviation of neighbour differences / sqrt(2) inside soft tissue (-50..120 HU, both voxels), per axis (z, y, x).
Shows what the resampling filter (`ifcn preprocess --downsampling gaussian|none`) does to the noise a model sees.
   bench/resampling_noise.py DATA_DIR [DATA_DIR ...]
Reads gzipped NIfTI-1 with numpy only (no nibabel needed)."""
import os, sys
import numpy as np
from nifti_gz import read


for folder in sys.argv[1:]:
    images = os.path.join(folder, "images")
    for name in sorted(os.listdir(images)):
        v = read(os.path.join(images, name))[3].astype(np.float32)
        soft = (v > -50) & (v < 120)
        noise = []
        for axis in range(3):
            n = v.shape[axis]
            both = soft.take(range(n - 1), axis=axis) & soft.take(range(1, n), axis=axis)
            noise.append(np.std(np.diff(v, axis=axis)[both]) / np.sqrt(2))
        print(f"{folder} {name.split('.')[0]}: " + " ".join(f"{x:.1f}" for x in noise) + " HU (z y x)")

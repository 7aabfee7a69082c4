"""Tiny procedural completion samples (boxes and spheres in a room corner) for tests and
notebooks: no rendering or fusion, only numpy. Real pipelines use data_tools scenes."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from sparse3d.tasks.completion.dataset import Sample


def procedural_sample(size: int = 32, seed: int = 0, trunc: float = 3.0, holes: int = 3) -> Sample:
    """A ``size**3`` sample: floor, two walls and random boxes/spheres; the partial scan misses
    ``holes`` random boxes of space and everything deeper than ``trunc`` inside solids."""
    rng = np.random.default_rng(seed)
    n = size
    solid = np.zeros((n, n, n), bool)
    solid[:, :, :2] = True  # floor
    solid[:2] = True  # wall x=0
    solid[:, :2] = True  # wall y=0
    g = np.indices((n, n, n)).transpose(1, 2, 3, 0)
    for _ in range(int(rng.integers(2, 5))):
        c = rng.uniform(0.25 * n, 0.8 * n, 3)
        c[2] = rng.uniform(2, 0.5 * n)
        if rng.random() < 0.5:
            h = rng.uniform(0.08 * n, 0.2 * n, 3)
            solid |= (np.abs(g - c) < h).all(-1)
        else:
            solid |= ((g - c) ** 2).sum(-1) < rng.uniform(0.08 * n, 0.18 * n) ** 2
    # voxel centres are half a voxel from the boundary between a solid and a free voxel
    sdf = np.where(solid, 0.5 - ndimage.distance_transform_edt(solid), ndimage.distance_transform_edt(~solid) - 0.5)
    target = np.clip(sdf, -trunc, trunc).astype(np.float32)
    known = sdf > -trunc  # the back of a surface is never seen
    surf = np.argwhere(np.abs(sdf) < 1)
    for _ in range(holes):  # each hole is centred on a surface voxel, so it hides geometry
        sz = rng.integers(max(2, n // 4), max(3, n // 2), 3)
        lo = np.clip(surf[rng.integers(len(surf))] - sz // 2, 0, n - 1)
        known[lo[0]:lo[0] + sz[0], lo[1]:lo[1] + sz[1], lo[2]:lo[2] + sz[2]] = False
    return Sample(np.where(known, target, 0).astype(np.float32), known, target, sdf > -trunc - 1,
                  voxel_size=0.05, trunc=trunc, origin=np.zeros(3, np.int64))

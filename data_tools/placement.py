"""Where the crops of a scene go: a strided grid, seeded random boxes, or the whole scene.

All boxes live on the scene lattice (voxel (i, j, k) samples the world point (i, j, k) * voxel_size).
A placement returns the *scene grid* (origin int64 [3], dims int64 [3]) on which dense masks are
computed, and crop origins int64 [K,3] (scene lattice) with one size int64 [3].

    grid    crops of crop_size every crop_stride covering the target band's box, origins multiples
            of 2**(n_levels-1) (hierarchy levels nest across crops)             (labels recipe)
    random  crops_per_scene crops of crop_size drawn uniformly in the padded scene grid whose target
            holds >= min_surface surface voxels (|tsdf| < 1 voxel, known); seeded  (completion recipe)
    whole   one crop covering the padded scene grid (held-out evaluation of whole scenes)

The padded scene grid of `random` / `whole`: the box of every fused target voxel grown by 2 voxels
below and 2 above, its dims rounded up to a multiple of `pad_to` (and, for random, at least crop_size:
the grid grows at its upper end).
"""
from __future__ import annotations

from typing import List, Tuple

import numpy as np

from .frames import Seed


def grid_origins(lo: np.ndarray, hi: np.ndarray, size: np.ndarray, stride: np.ndarray, align: int) -> np.ndarray:
    """int64 [K,3] crop origins (multiples of `align`) covering the voxel box [lo, hi) (lo, hi int [3])."""
    start = np.floor_divide(lo, align) * align
    axes = []
    for a in range(3):
        n = max(1, int(np.ceil(max(hi[a] - start[a] - size[a], 0) / stride[a])) + 1)
        axes.append(start[a] + stride[a] * np.arange(n))
    g = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    return g.astype(np.int64)


def padded_scene_grid(coords: np.ndarray, pad_to: int, min_dims: np.ndarray | None = None
                      ) -> Tuple[np.ndarray, np.ndarray]:
    """(origin int64 [3], dims int64 [3]) of the box of `coords` int [N,3] (N >= 1) grown by 2 voxels
    on each side (3 above: the box is [min-2, max+3)), dims rounded up to a multiple of pad_to, then
    at least min_dims [3]."""
    coords = np.asarray(coords, np.int64)
    if coords.ndim != 2 or coords.shape[1] != 3 or len(coords) == 0:
        raise ValueError(f"coords: expected [N,3] with N >= 1, got {list(coords.shape)}")
    if pad_to < 1:
        raise ValueError(f"pad_to: expected >= 1, got {pad_to}")
    lo = coords.min(0) - 2
    dims = coords.max(0) - lo + 3
    dims = ((dims + pad_to - 1) // pad_to) * pad_to
    if min_dims is not None:
        dims = np.maximum(dims, np.asarray(min_dims, np.int64))
    return lo, dims


def random_origins(surface: np.ndarray, size: np.ndarray, n: int, seed: Seed, min_surface: int,
                   tries: int = 20) -> np.ndarray:
    """int64 [K,3] (K <= n) origins, relative to the grid of `surface` bool [X,Y,Z], of boxes of `size`
    int [3] holding >= min_surface True voxels. Draws an origin uniformly in [0, dims - size] per axis
    (numpy default_rng(seed)), keeps it if it qualifies, and stops after n kept or n * tries draws;
    the same origin can be kept twice."""
    size = np.asarray(size, np.int64)
    if any(int(d) < int(s) for d, s in zip(surface.shape, size)):
        raise ValueError(f"surface: grid {list(surface.shape)} smaller than the crop size {size.tolist()}")
    rng = np.random.default_rng(seed)
    # prefix sums make each box count O(1)
    c = np.zeros(tuple(d + 1 for d in surface.shape), np.int64)
    c[1:, 1:, 1:] = surface.astype(np.int64).cumsum(0).cumsum(1).cumsum(2)
    out: List[List[int]] = []
    for _ in range(n * tries):
        if len(out) == n:
            break
        lo = [int(rng.integers(0, d - s + 1)) for d, s in zip(surface.shape, size)]
        x0, y0, z0 = lo
        x1, y1, z1 = (a + int(s) for a, s in zip(lo, size))
        count = (c[x1, y1, z1] - c[x0, y1, z1] - c[x1, y0, z1] - c[x1, y1, z0]
                 + c[x0, y0, z1] + c[x0, y1, z0] + c[x1, y0, z0] - c[x0, y0, z0])
        if count >= min_surface:
            out.append(lo)
    return np.asarray(out, np.int64).reshape(-1, 3)

"""Coarser levels of a sparse target (ScanComplete / SG-NN hierarchy): each level halves resolution."""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np


def downsample_level(coords: np.ndarray, tsdf: np.ndarray, labels: Optional[np.ndarray], factor: int
                     ) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """Pool sparse voxels by `factor` (a power of 2).

    coords int [N,3] (level 0, non-negative or not); tsdf float [N] (level-0 voxels); labels [N] or None.
    Returns coarse coords int32 [M,3] = floor(coords / factor) (sorted by x, y, z), tsdf float32 [M] =
    tsdf of the child with the smallest |tsdf| divided by `factor`, and that child's label.
    """
    coords = np.asarray(coords)
    if coords.ndim != 2 or coords.shape[1] != 3:
        raise ValueError(f"coords: expected [N,3], got {list(coords.shape)}")
    if factor < 1 or factor & (factor - 1):
        raise ValueError(f"factor: expected a power of 2, got {factor}")
    if len(coords) == 0:
        return np.zeros((0, 3), np.int32), np.zeros(0, np.float32), None if labels is None else np.zeros(0, np.uint8)
    c = np.floor_divide(coords.astype(np.int64), factor)
    key = ((c[:, 0] + (1 << 20)) << 42) | ((c[:, 1] + (1 << 20)) << 21) | (c[:, 2] + (1 << 20))
    order = np.lexsort((np.abs(tsdf), key))  # by key, then |tsdf| ascending
    ks = key[order]
    first = np.ones(len(ks), bool)
    first[1:] = ks[1:] != ks[:-1]
    pick = order[first]
    out_l = None if labels is None else np.asarray(labels)[pick]
    return c[pick].astype(np.int32), (np.asarray(tsdf)[pick] / factor).astype(np.float32), out_l


def hierarchy(coords: np.ndarray, tsdf: np.ndarray, labels: Optional[np.ndarray], n_levels: int
              ) -> List[Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]]:
    """Levels 1 .. n_levels-1 of `downsample_level` (level l uses factor 2**l, from level 0)."""
    if n_levels < 1:
        raise ValueError(f"n_levels: expected >= 1, got {n_levels}")
    return [downsample_level(coords, tsdf, labels, 2 ** l) for l in range(1, n_levels)]

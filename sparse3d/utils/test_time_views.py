"""Test-time views shared by the tasks: a scene turned about up (z), mirrored and shifted on the voxel grid, the
network run on each view and its per-voxel outputs brought back to the scene's own voxels and averaged.

    views = tta_views(8)                                     # [(turns, flip, shift int64 [3]), ...]
    q, n = view_transform(coords, normals, *views[3])        # a point set (segmentation, 3DMV)
    rot, offset, view_shape = box_view(shape, *views[3])     # a dense box (completion): q = c @ rot.T + offset

Every view is exact on the integer grid (no resampling, no two voxels merge): a quarter turn and a mirror are
permutations of the axes with signs. The shifts move the stride-2 grids of a network's coarser levels, so the
views also differ in how voxels are grouped at each level.
"""
from __future__ import annotations

from typing import List, Optional, Tuple, Union

import numpy as np

TTA_MAX = 8  # test-time views: the 4 right-angle rotations about up, each with and without the x flip


def tta_views(n: int) -> List[tuple]:
    """The first ``n`` (1..TTA_MAX) test-time views: (quarter turns about z, x flipped, shift int64 [3]) for view
    i = (i % 4, i >= 4, ((3 i) % 8, (5 i) % 8, (7 i) % 8)). View 0 is the identity."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= TTA_MAX:
        raise ValueError(f"tta must be an int in 1..{TTA_MAX}, got {n!r}")
    return [(i % 4, i >= 4, np.array([(3 * i) % 8, (5 * i) % 8, (7 * i) % 8], np.int64)) for i in range(int(n))]


def view_rotation(turns: int, flip: bool) -> np.ndarray:
    """int64 [3, 3]: ``turns`` quarter turns about z (x -> y), then x negated when ``flip``; row vectors map as
    ``q = c @ rot.T``."""
    rot = np.eye(3, dtype=np.int64)
    for _ in range(turns % 4):
        rot = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], np.int64) @ rot
    if flip:
        rot = np.diag([-1, 1, 1]).astype(np.int64) @ rot
    return rot


def view_transform(coords: np.ndarray, normals: Optional[np.ndarray], turns: int, flip: bool, shift: np.ndarray
                   ) -> tuple:
    """coords int [N, 3] turned ``turns`` quarter turns about z, x negated when ``flip``, then moved so that their
    lowest corner is the input's lowest corner + ``shift``: int32 [N, 3] (exact; no two voxels merge; turns 0, no
    flip and shift 0 give the input); normals float [N, 3] (or None) rotated alike."""
    rot = view_rotation(turns, flip)
    q = np.asarray(coords, np.int64) @ rot.T
    q = (q - q.min(0) + np.asarray(coords, np.int64).min(0) + shift).astype(np.int32) if len(q) else q.astype(np.int32)
    n = None if normals is None else (np.asarray(normals, np.float32) @ rot.T.astype(np.float32))
    return q, n


def box_view(shape: Tuple[int, int, int], turns: int, flip: bool, shift: np.ndarray
             ) -> Tuple[np.ndarray, np.ndarray, Tuple[int, int, int]]:
    """The view of a dense box ``[0, shape)``: (rot int64 [3, 3], offset int64 [3], view_shape) with
    ``q = c @ rot.T + offset`` taking the box's voxels onto ``[shift, shift + turned shape)`` and ``view_shape`` =
    shift + turned shape (the view's bounds: its low ``shift`` slab is empty). Back: ``c = (q - offset) @ rot``."""
    shape_a = np.asarray(shape, np.int64)
    if shape_a.shape != (3,) or (shape_a < 1).any():
        raise ValueError(f"shape must be 3 positive sizes, got {tuple(shape)!r}")
    shift = np.asarray(shift, np.int64)
    rot = view_rotation(turns, flip)
    low = np.minimum(rot * (shape_a - 1)[None, :], 0).sum(1)  # the turned box's lowest corner before the offset
    end = shift + np.abs(rot) @ shape_a
    offset: np.ndarray = np.asarray(shift - low, np.int64)
    return rot, offset, (int(end[0]), int(end[1]), int(end[2]))


def volume_to_view(volume: np.ndarray, rot: np.ndarray, offset: np.ndarray, view_shape: Tuple[int, int, int],
                   fill: Union[float, bool]) -> np.ndarray:
    """A dense volume ``[X, Y, Z]`` (any dtype) in the view of :func:`box_view`: ``view_shape``, ``fill`` where no
    voxel of the box lands."""
    out = np.full(view_shape, fill, volume.dtype)
    c = np.indices(volume.shape).reshape(3, -1).T
    out[tuple((c @ rot.T + offset).T)] = volume.reshape(-1)
    return out


def coords_from_view(q: np.ndarray, rot: np.ndarray, offset: np.ndarray, shape: Tuple[int, int, int]
                     ) -> Tuple[np.ndarray, np.ndarray]:
    """Voxels int [M, 3] of a view back in the box: (coords int64 [K, 3], keep bool [M]) with the voxels that fall
    outside ``[0, shape)`` (the view's empty slab) dropped."""
    c = (np.asarray(q, np.int64).reshape(-1, 3) - offset) @ rot
    keep = ((c >= 0) & (c < np.asarray(shape, np.int64))).all(1)
    return c[keep], keep

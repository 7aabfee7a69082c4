"""Meshes: marching cubes on the zero level set of a TSDF (dense or sparse) and a binary PLY writer.

    verts, faces = tsdf_to_mesh(tsdf, mask, voxel_size, origin)          # dense [X, Y, Z] volume
    verts, faces = sparse_tsdf_to_mesh(coords, tsdf, voxel_size, weight) # sparse voxels [N, 3]
    write_ply(path, verts, faces, colors=None, labels=None)              # binary little-endian, atomic

Both extractors mesh only cubes whose 8 corners all carry a value (a cube with an unobserved corner
produces no triangle) and return (verts float32 [V, 3] in metres, faces int32 [F, 3]); an input
without a sign change gives an empty mesh ([0, 3] each).
"""
from __future__ import annotations

import os
from typing import Optional, Tuple, Union

import numpy as np

from sparse3d.utils.atomic_io import atomic_open

Mesh = Tuple[np.ndarray, np.ndarray]
PathLike = Union[str, os.PathLike]


def _empty() -> Mesh:
    return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32)


def _full_cubes(mask: np.ndarray) -> np.ndarray:
    """bool [X-1, Y-1, Z-1]: cube with lower corner (i, j, k) has all 8 corners in ``mask``."""
    m = mask
    return (m[:-1, :-1, :-1] & m[1:, :-1, :-1] & m[:-1, 1:, :-1] & m[:-1, :-1, 1:]
            & m[1:, 1:, :-1] & m[1:, :-1, 1:] & m[:-1, 1:, 1:] & m[1:, 1:, 1:])


def tsdf_to_mesh(tsdf: np.ndarray, mask: np.ndarray, voxel_size: float,
                 origin: Optional[np.ndarray] = None) -> Mesh:
    """Dense tsdf [X, Y, Z] (positive in front), mask bool [X, Y, Z] (voxels that carry a value)
    -> (verts float32 [V, 3] metres, faces int32 [F, 3], counter-clockwise seen from the front).
    origin int [3]: the voxel index of ``tsdf[0, 0, 0]`` (vertex = (index + origin) * voxel_size)."""
    from skimage.measure import marching_cubes
    if tsdf.shape != mask.shape:
        raise ValueError(f"tsdf and mask must share one shape, got {tsdf.shape} and {mask.shape}")
    vol = np.pad(np.where(mask, tsdf, 1.0).astype(np.float32), 1, constant_values=1.0)
    m = np.pad(mask, 1)
    if not (vol[m] < 0).any() or not (vol[m] > 0).any():
        return _empty()
    cube = np.zeros_like(m)
    cube[:-1, :-1, :-1] = _full_cubes(m)
    if not cube.any():
        return _empty()
    try:
        verts, faces, _, _ = marching_cubes(vol, level=0.0, mask=cube, allow_degenerate=False)
    except RuntimeError as e:  # every sign change lies in a cube with an unobserved corner (or the border)
        if "No surface found" in str(e):
            return _empty()
        raise
    # skimage's mask does not stop every cube that touches an invalid corner: keep the faces whose
    # cube (floor of the centroid) has all 8 corners valid, then drop unused vertices
    cell = np.clip(np.floor(verts[faces].mean(1)).astype(np.int64), 0, np.array(cube.shape) - 1)
    faces = faces[cube[tuple(cell.T)]]
    if len(faces) == 0:
        return _empty()
    used, inv = np.unique(faces, return_inverse=True)
    verts, faces = verts[used], inv.reshape(faces.shape)
    o = np.zeros(3) if origin is None else np.asarray(origin, np.float64)
    return ((verts - 1 + o) * voxel_size).astype(np.float32), faces[:, ::-1].astype(np.int32)


def sparse_tsdf_to_mesh(coords: np.ndarray, tsdf: np.ndarray, voxel_size: float,
                        weight: Optional[np.ndarray] = None) -> Mesh:
    """Zero level set of a sparse TSDF: coords int [N, 3] (voxel indices), tsdf float [N] (any unit,
    positive outside), weight [N] (voxels with weight <= 0 are unobserved) -> (verts float32 [V, 3]
    metres = index * voxel_size, faces int32 [F, 3]). Cubes with an unobserved corner produce no triangles."""
    from skimage.measure import marching_cubes as sk_mc
    coords = np.asarray(coords)
    if coords.ndim != 2 or coords.shape[1] != 3:
        raise ValueError(f"coords: expected [N,3], got {list(coords.shape)}")
    if len(coords) == 0:
        return _empty()
    lo = coords.min(0) - 1
    shape = tuple(coords.max(0) - lo + 2)
    vol = np.full(shape, 1.0, np.float32)
    mask = np.zeros(shape, bool)
    idx = tuple((coords - lo).T)
    vol[idx] = tsdf
    mask[idx] = True if weight is None else np.asarray(weight) > 0
    if not (vol[mask] < 0).any() or not (vol[mask] > 0).any():
        return _empty()
    # scikit-image evaluates the cube whose *upper* corner has mask True (tests/test_data_fusion.py checks it)
    cube_mask = np.zeros(shape, bool)
    cube_mask[1:, 1:, 1:] = _full_cubes(mask)
    verts, faces, _, _ = sk_mc(vol, level=0.0, mask=cube_mask, allow_degenerate=False)
    verts = (verts + lo) * voxel_size
    return verts.astype(np.float32), faces.astype(np.int32)


def write_ply(path: PathLike, vertices: np.ndarray, faces: np.ndarray, colors: Optional[np.ndarray] = None,
              labels: Optional[np.ndarray] = None) -> None:
    """Write a binary little-endian PLY mesh atomically (the layout ScanNet's ``*_vh_clean_2.ply`` uses).

    vertices float [N, 3]; faces int [M, 3]; colors uint8 [N, 3] or [N, 4] (written as red, green, blue,
    alpha; alpha 255 when absent; no colour properties when None); labels int [N] in [0, 65535]
    (a ushort ``label`` property, as in ``*_vh_clean_2.labels.ply``).
    """
    v = np.asarray(vertices)
    fc = np.asarray(faces)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices: expected [N,3], got {list(v.shape)}")
    if fc.ndim != 2 or fc.shape[1] != 3:
        raise ValueError(f"faces: expected [M,3], got {list(fc.shape)}")
    n = len(v)
    fields = [("x", "<f4", "float"), ("y", "<f4", "float"), ("z", "<f4", "float")]
    if colors is not None:
        colors = np.asarray(colors)
        if colors.shape == (n, 3):
            colors = np.concatenate([colors, np.full((n, 1), 255, colors.dtype)], 1)
        if colors.shape != (n, 4):
            raise ValueError(f"colors: expected [{n},3] or [{n},4], got {list(colors.shape)}")
        fields += [(c, "u1", "uchar") for c in ("red", "green", "blue", "alpha")]
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (n,):
            raise ValueError(f"labels: expected [{n}], got {list(labels.shape)}")
        if labels.size and (labels.min() < 0 or labels.max() > 65535):
            raise ValueError(f"labels: expected values in [0, 65535], got [{labels.min()}, {labels.max()}]")
        fields.append(("label", "<u2", "ushort"))
    va = np.zeros(n, np.dtype([(name, dt) for name, dt, _ in fields]))
    va["x"], va["y"], va["z"] = v[:, 0], v[:, 1], v[:, 2]
    if colors is not None:
        va["red"], va["green"], va["blue"], va["alpha"] = colors[:, 0], colors[:, 1], colors[:, 2], colors[:, 3]
    if labels is not None:
        va["label"] = labels
    fa = np.zeros(len(fc), np.dtype([("n", "u1"), ("v", "<i4", (3,))]))
    fa["n"] = 3
    fa["v"] = fc
    props = "".join(f"property {t} {name}\n" for name, _, t in fields)
    header = (f"ply\nformat binary_little_endian 1.0\nelement vertex {n}\n{props}"
              f"element face {len(fc)}\nproperty list uchar int vertex_indices\nend_header\n")
    with atomic_open(path) as f:
        f.write(header.encode("ascii"))
        f.write(va.tobytes())
        f.write(fa.tobytes())

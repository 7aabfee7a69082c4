"""Meshes from sparse / dense TSDF volumes (marching cubes on the zero level set)."""
from __future__ import annotations

import os
from typing import Optional, Tuple

import numpy as np


def tsdf_to_mesh(tsdf: np.ndarray, mask: np.ndarray, voxel_size: float,
                 origin: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Dense tsdf [X, Y, Z] (positive in front), mask bool [X, Y, Z] (voxels that carry a value)
    -> (verts float32 [V, 3] metres, faces int32 [F, 3]); cubes need all 8 corners in ``mask``."""
    from skimage.measure import marching_cubes
    if tsdf.shape != mask.shape:
        raise ValueError(f"tsdf and mask must share one shape, got {tsdf.shape} and {mask.shape}")
    vol = np.pad(np.where(mask, tsdf, 1.0).astype(np.float32), 1, constant_values=1.0)
    m = np.pad(mask, 1)
    if not (vol[m] < 0).any() or not (vol[m] > 0).any():
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32)
    cube = np.zeros_like(m)
    c = m[:-1, :-1, :-1] & m[1:, :-1, :-1] & m[:-1, 1:, :-1] & m[:-1, :-1, 1:] \
        & m[1:, 1:, :-1] & m[1:, :-1, 1:] & m[:-1, 1:, 1:] & m[1:, 1:, 1:]
    cube[:-1, :-1, :-1] = c
    if not cube.any():
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32)
    verts, faces, _, _ = marching_cubes(vol, level=0.0, mask=cube, allow_degenerate=False)
    # skimage's mask does not stop every cube that touches an invalid corner: keep the faces whose
    # cube (floor of the centroid) has all 8 corners valid, then drop unused vertices
    cell = np.clip(np.floor(verts[faces].mean(1)).astype(np.int64), 0, np.array(cube.shape) - 1)
    faces = faces[cube[tuple(cell.T)]]
    if len(faces) == 0:
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32)
    used, inv = np.unique(faces, return_inverse=True)
    verts, faces = verts[used], inv.reshape(faces.shape)
    o = np.zeros(3) if origin is None else np.asarray(origin, np.float64)
    return ((verts - 1 + o) * voxel_size).astype(np.float32), faces[:, ::-1].astype(np.int32)


def write_ply(path: str, verts: np.ndarray, faces: np.ndarray, colors: Optional[np.ndarray] = None) -> None:
    """Binary little-endian PLY, written atomically."""
    v = np.asarray(verts, np.float32)
    f = np.asarray(faces, np.int32)
    head = ["ply", "format binary_little_endian 1.0", f"element vertex {len(v)}",
            "property float x", "property float y", "property float z"]
    vd = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if colors is not None:
        head += ["property uchar red", "property uchar green", "property uchar blue"]
        vd += [("r", "u1"), ("g", "u1"), ("b", "u1")]
    head += [f"element face {len(f)}", "property list uchar int vertex_indices", "end_header"]
    va = np.zeros(len(v), vd)
    va["x"], va["y"], va["z"] = v.T
    if colors is not None:
        c = np.asarray(colors, np.uint8)
        va["r"], va["g"], va["b"] = c.T
    fa = np.zeros(len(f), [("n", "u1"), ("i", "<i4", (3,))])
    fa["n"], fa["i"] = 3, f
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(("\n".join(head) + "\n").encode())
        fh.write(va.tobytes())
        fh.write(fa.tobytes())
    os.replace(tmp, path)

"""Mesh voxelization, sparse around the surface (Open3D RaycastingScene distances).

Voxel (i, j, k) samples the point (i, j, k) * voxel_size. For a triangle mesh:

* `surface_band(vertices, faces, voxel_size, band_voxels)` -> every voxel whose sample point
  lies within band_voxels * voxel_size of the surface, with its unsigned distance (voxels);
* occupancy: voxels with unsigned distance <= 0.5 voxel (`occupancy`);
* signed distance: Open3D's `compute_signed_distance` sign (inside = negative; meaningful
  for closed meshes) (`mesh_sdf_band`);
* ternary unknown / free / occupied from camera visibility (`ternary_from_depth`).
"""
from __future__ import annotations

from typing import Iterable, Tuple

import numpy as np
import open3d as o3d
from scipy import ndimage

UNKNOWN, FREE, OCCUPIED = 0, 1, 2


def _check_mesh(vertices: np.ndarray, faces: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices: expected [V,3], got {list(v.shape)}")
    if f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
        raise ValueError(f"faces: expected [F,3] with F > 0, got {list(f.shape)}")
    if f.min() < 0 or f.max() >= len(v):
        raise ValueError(f"faces: indices out of range [0, {len(v)})")
    return v, f


def sample_surface(vertices: np.ndarray, faces: np.ndarray, spacing: float) -> np.ndarray:
    """float64 [P,3] deterministic points on every triangle, no two neighbours farther than `spacing`
    apart along an edge (barycentric grid with ceil(longest edge / spacing) subdivisions)."""
    v, f = _check_mesh(vertices, faces)
    tri = v[f]
    edge = np.max(np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2), axis=1)
    n = np.maximum(1, np.ceil(edge / spacing)).astype(np.int64)
    out = [tri.reshape(-1, 3)]
    for m in np.unique(n):
        sel = tri[n == m]
        i, j = np.meshgrid(np.arange(m + 1), np.arange(m + 1), indexing="ij")
        ok = i + j <= m
        a, b = i[ok] / m, j[ok] / m
        w = np.stack([1 - a - b, a, b], 1)  # [S,3]
        out.append(np.einsum("sk,tkd->tsd", w, sel).reshape(-1, 3))
    return np.concatenate(out)


def _scene(v: np.ndarray, f: np.ndarray) -> o3d.t.geometry.RaycastingScene:
    sc = o3d.t.geometry.RaycastingScene()
    sc.add_triangles(o3d.core.Tensor(v.astype(np.float32)), o3d.core.Tensor(f.astype(np.uint32)))
    return sc


def band_candidates(vertices: np.ndarray, faces: np.ndarray, voxel_size: float, band_voxels: float) -> np.ndarray:
    """int64 [N,3]: a superset of the voxels within band_voxels of the surface (dense dilation)."""
    v, f = _check_mesh(vertices, faces)
    pts = sample_surface(v, f, 0.5 * voxel_size)
    vox = np.round(pts / voxel_size).astype(np.int64)
    r = int(np.ceil(band_voxels + 1))
    lo = vox.min(0) - r
    dims = vox.max(0) - lo + r + 1
    grid = np.zeros(tuple(dims), bool)
    grid[tuple((vox - lo).T)] = True
    grid = ndimage.binary_dilation(grid, structure=np.ones((3, 3, 3), bool), iterations=r)
    return np.argwhere(grid) + lo


def surface_band(vertices: np.ndarray, faces: np.ndarray, voxel_size: float, band_voxels: float = 3.0
                 ) -> Tuple[np.ndarray, np.ndarray]:
    """Voxels within `band_voxels` (unsigned) of the mesh: (coords int32 [N,3] sorted by x,y,z,
    unsigned distance float32 [N] in voxels)."""
    if not voxel_size > 0:
        raise ValueError(f"voxel_size: expected > 0, got {voxel_size}")
    if not band_voxels > 0:
        raise ValueError(f"band_voxels: expected > 0, got {band_voxels}")
    v, f = _check_mesh(vertices, faces)
    cand = band_candidates(v, f, voxel_size, band_voxels)
    d = _scene(v, f).compute_distance(o3d.core.Tensor((cand * voxel_size).astype(np.float32))).numpy() / voxel_size
    keep = d <= band_voxels
    return cand[keep].astype(np.int32), d[keep].astype(np.float32)


def occupancy(vertices: np.ndarray, faces: np.ndarray, voxel_size: float) -> np.ndarray:
    """int32 [N,3] occupied voxels: unsigned distance from the sample point to the surface <= voxel_size / 2."""
    c, d = surface_band(vertices, faces, voxel_size, 0.5)
    return c[d <= 0.5]


def mesh_sdf_band(vertices: np.ndarray, faces: np.ndarray, voxel_size: float, trunc_voxels: float = 3.0
                  ) -> Tuple[np.ndarray, np.ndarray]:
    """Signed distance (voxels, negative inside) of voxels with |sdf| < trunc_voxels:
    (coords int32 [N,3], sdf float32 [N]). Sign by Open3D's ray parity (closed meshes)."""
    c, d = surface_band(vertices, faces, voxel_size, trunc_voxels)
    keep = d < trunc_voxels
    c, d = c[keep], d[keep]
    v, f = _check_mesh(vertices, faces)
    s = _scene(v, f).compute_signed_distance(o3d.core.Tensor((c * voxel_size).astype(np.float32))).numpy()
    return c, np.where(s < 0, -d, d).astype(np.float32)


def ternary_from_depth(coords: np.ndarray, voxel_size: float, occupied: np.ndarray, depth_frames: Iterable,
                       intrinsic: np.ndarray, trunc: float, depth_max: float = 10.0) -> np.ndarray:
    """uint8 [N] state per voxel: OCCUPIED (2) where `occupied` (bool [N]), else FREE (1) if some
    camera sees it more than `trunc` metres in front of the observed surface, else UNKNOWN (0).

    coords int [N,3]; depth_frames: iterable of (depth float32 [H,W] metres, camera_to_world [4,4]).
    """
    import torch
    from .fusion import native_fusion
    coords = np.asarray(coords)
    occupied = np.asarray(occupied, bool)
    if occupied.shape != (len(coords),):
        raise ValueError(f"occupied: expected [{len(coords)}], got {list(occupied.shape)}")
    nat = native_fusion()
    ct = torch.from_numpy(np.ascontiguousarray(coords, np.int32))
    K = torch.from_numpy(np.ascontiguousarray(np.asarray(intrinsic, np.float64)[:3, :3]))
    free = np.zeros(len(coords), bool)
    for depth, pose in depth_frames:
        st = nat.visibility(ct, float(voxel_size), torch.from_numpy(np.ascontiguousarray(depth, np.float32)), K,
                            torch.from_numpy(np.asarray(pose, np.float64)), float(trunc), float(depth_max)).numpy()
        free |= st == 1
    out = np.where(free, FREE, UNKNOWN).astype(np.uint8)
    out[occupied] = OCCUPIED
    return out


def virtual_scan_frames(vertices: np.ndarray, faces: np.ndarray, poses: np.ndarray, intrinsic: np.ndarray,
                        width: int, height: int):
    """Yield (depth float32 [H,W] metres, camera_to_world) rendered from the mesh at each pose
    (a "virtual scan": partial observations of a complete mesh)."""
    from .synthetic.render import MeshRenderer
    v, f = _check_mesh(vertices, faces)
    r = MeshRenderer(v, f, np.zeros((len(f), 3), np.uint8))
    for pose in poses:
        depth, _, _ = r.render(intrinsic, pose, width, height, shade=False)
        yield depth, np.asarray(pose, np.float64)

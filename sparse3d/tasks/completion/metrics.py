"""Scene-completion metrics on dense volumes ``[X, Y, Z]`` (voxel units).

* IoU of occupied (surface) voxels, counted only where the target is known;
* L1 of the distance on known target space (voxels) — the prediction's tsdf where it predicts
  a voxel, +trunc (free space) elsewhere; the same rule scores the raw input;
* chamfer distance (metres, symmetric mean of nearest-neighbour distances) of two meshes'
  sampled surface points.
"""
from __future__ import annotations

from typing import Dict

import numpy as np
from scipy.spatial import cKDTree


def iou(pred_occ: np.ndarray, target_occ: np.ndarray, valid: np.ndarray) -> float:
    """bool [X, Y, Z] each -> IoU over ``valid`` voxels (1.0 when both are empty)."""
    if pred_occ.shape != target_occ.shape or valid.shape != pred_occ.shape:
        raise ValueError(f"pred_occ, target_occ and valid must share one shape, got "
                         f"{pred_occ.shape}, {target_occ.shape}, {valid.shape}")
    p, t = pred_occ & valid, target_occ & valid
    union = int((p | t).sum())
    return 1.0 if union == 0 else float((p & t).sum()) / union


def l1_known(pred_tsdf: np.ndarray, target_tsdf: np.ndarray, known: np.ndarray, trunc: float,
             band_only: bool = True) -> float:
    """Mean |pred - target| (voxels) over known voxels (with ``band_only``: where the target is
    within the truncation band or the prediction is, so free space does not dominate)."""
    p = np.clip(pred_tsdf, -trunc, trunc)
    t = np.clip(target_tsdf, -trunc, trunc)
    m = known.copy()
    if band_only:
        m &= (np.abs(t) < trunc) | (np.abs(p) < trunc)
    return float(np.abs(p - t)[m].mean()) if m.any() else 0.0


def chamfer(points_a: np.ndarray, points_b: np.ndarray) -> float:
    """Symmetric chamfer distance (mean of both directions' mean NN distance) of [P, 3] / [Q, 3]."""
    if len(points_a) == 0 or len(points_b) == 0:
        return float("inf")
    da, _ = cKDTree(points_b).query(points_a)
    db, _ = cKDTree(points_a).query(points_b)
    return float(0.5 * (da.mean() + db.mean()))


def sample_mesh(verts: np.ndarray, faces: np.ndarray, n: int = 20000, seed: int = 0) -> np.ndarray:
    """Area-weighted random surface points [n, 3] of a triangle mesh (empty mesh -> [0, 3])."""
    if len(faces) == 0:
        return np.zeros((0, 3), np.float32)
    rng = np.random.default_rng(seed)
    tri = verts[faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    f = rng.choice(len(faces), n, p=area / area.sum())
    u, v = rng.random(n), rng.random(n)
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    t = tri[f]
    return (t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + v[:, None] * (t[:, 2] - t[:, 0])).astype(np.float32)


def completion_metrics(pred_tsdf: np.ndarray, pred_occ: np.ndarray, target_tsdf: np.ndarray,
                       target_known: np.ndarray, trunc: float, occ_thresh: float = 1.0,
                       pred_mesh=None, target_mesh=None) -> Dict[str, float]:
    """All metrics of one scene; meshes are (verts [V, 3] metres, faces [F, 3]) or None."""
    target_occ = target_known & (np.abs(target_tsdf) < occ_thresh)
    out = {"iou": iou(pred_occ, target_occ, target_known),
           "l1": l1_known(pred_tsdf, target_tsdf, target_known, trunc),
           "pred_voxels": int(pred_occ.sum()), "target_voxels": int(target_occ.sum())}
    if pred_mesh is not None and target_mesh is not None:
        out["chamfer_m"] = chamfer(sample_mesh(*pred_mesh), sample_mesh(*target_mesh))
    return out

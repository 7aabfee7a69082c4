"""Scene-completion metrics on dense volumes ``[X, Y, Z]`` (voxel units).

* IoU of occupied (surface) voxels, counted only where the target is known;
* L1 of the distance on known target space (voxels) — the prediction's tsdf where it predicts
  a voxel, +trunc (free space) elsewhere; the same rule scores the raw input;
* chamfer distance (metres, symmetric mean of nearest-neighbour distances) of two meshes'
  sampled surface points; :func:`voxel_chamfer` is its cheap stand-in on surface-voxel centres
  (no meshing: the validation during training uses it);
* precision and recall of the predicted surface voxels (does the prediction invent surface? does it
  find the target's?), overall and separately on *observed* and *unobserved* space.

Observed space is every voxel the partial input observed (``input_known``: the voxels its depth
fusion reached, its surface band and the free space it carved); unobserved space is the rest. Both
are counted only where the target is known. With ``P`` the predicted surface voxels, ``T`` the
target's and ``R`` a region::

    precision_R = |P & T & R| / |P & R|      recall_R = |P & T & R| / |T & R|      (nan when 0 / 0)

*Reach*: the recall of the target surface in unobserved space by its distance to observed space
(:func:`reach_recall`, Euclidean, voxels, in the bins of ``REACH_BINS``): how far into the unseen the
prediction finds surface.

Metrics that cannot be computed (a ratio 0 / 0, the chamfer distance of an empty mesh) are nan / inf;
the tables show them as "n/a" and JSON as null.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

# distance bins (voxels, (lo, hi]; hi None = no bound) of :func:`reach_recall`
REACH_BINS: Tuple[Tuple[int, Optional[int]], ...] = ((0, 2), (2, 4), (4, 8), (8, 12), (12, 16), (16, None))


def reach_key(lo: int, hi: Optional[int]) -> str:
    """The metric key of a :data:`REACH_BINS` bin: ``recall_unobserved_d{lo}_{hi}`` (hi ``inf`` when unbounded)."""
    return f"recall_unobserved_d{lo}_{'inf' if hi is None else hi}"


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


def precision_recall(pred_occ: np.ndarray, target_occ: np.ndarray, region: np.ndarray) -> Tuple[float, float]:
    """bool [X, Y, Z] each -> (precision, recall) of the predicted surface voxels inside ``region``
    (see the module docstring; nan where the denominator is 0)."""
    if pred_occ.shape != target_occ.shape or region.shape != pred_occ.shape:
        raise ValueError(f"pred_occ, target_occ and region must share one shape, got "
                         f"{pred_occ.shape}, {target_occ.shape}, {region.shape}")
    p, t = pred_occ & region, target_occ & region
    hit, n_p, n_t = int((p & t).sum()), int(p.sum()), int(t.sum())
    return (hit / n_p if n_p else float("nan")), (hit / n_t if n_t else float("nan"))


def region_metrics(pred_occ: np.ndarray, target_occ: np.ndarray, target_known: np.ndarray,
                   input_known: np.ndarray) -> Dict[str, float]:
    """Precision / recall of the predicted surface overall and on observed (``input_known``) and
    unobserved space, and IoU per region; all over ``target_known`` voxels. bool [X, Y, Z] each.
    Keys: precision, recall, {iou,precision,recall}_{observed,unobserved}."""
    out: Dict[str, float] = {}
    out["precision"], out["recall"] = precision_recall(pred_occ, target_occ, target_known)
    for name, region in (("observed", target_known & input_known), ("unobserved", target_known & ~input_known)):
        p, r = precision_recall(pred_occ, target_occ, region)
        out[f"iou_{name}"] = iou(pred_occ, target_occ, region)
        out[f"precision_{name}"], out[f"recall_{name}"] = p, r
    return out


def reach_recall(pred_occ: np.ndarray, target_occ: np.ndarray, target_known: np.ndarray,
                 input_known: np.ndarray) -> Dict[str, float]:
    """Recall of the target surface voxels in unobserved known space (``target_known & ~input_known``) binned by
    their Euclidean distance (voxels) to the nearest observed voxel, bool [X, Y, Z] each: {:func:`reach_key`: recall
    (nan for an empty bin)} and {``target_unobserved_d..``: the bin's target voxel count}. Without observed voxels
    every distance is unbounded (the last bin)."""
    shapes = {a.shape for a in (pred_occ, target_occ, target_known, input_known)}
    if len(shapes) != 1:
        raise ValueError(f"pred_occ, target_occ, target_known and input_known must share one shape, got {sorted(shapes)}")
    unseen = target_occ & target_known & ~input_known
    dist = ndimage.distance_transform_edt(~input_known) if input_known.any() else np.full(unseen.shape, np.inf)
    out: Dict[str, float] = {}
    for lo, hi in REACH_BINS:
        m = unseen & (dist > lo) & (dist <= (np.inf if hi is None else hi))
        n = int(m.sum())
        key = reach_key(lo, hi)
        out[key] = int((pred_occ & m).sum()) / n if n else float("nan")
        out[key.replace("recall_", "target_")] = n
    return out


def voxel_chamfer(pred_occ: np.ndarray, target_occ: np.ndarray, voxel_size: float) -> float:
    """Chamfer distance (metres, as :func:`chamfer`) of the centres of two sets of surface voxels,
    bool [X, Y, Z] each: a cheap stand-in for the mesh chamfer distance (no meshing, no sampling;
    the distance is quantised to the voxel grid). inf when either set is empty."""
    if pred_occ.shape != target_occ.shape:
        raise ValueError(f"pred_occ and target_occ must share one shape, got {pred_occ.shape}, {target_occ.shape}")
    return chamfer(np.argwhere(pred_occ) * float(voxel_size), np.argwhere(target_occ) * float(voxel_size))


def completion_metrics(pred_tsdf: np.ndarray, pred_occ: np.ndarray, target_tsdf: np.ndarray,
                       target_known: np.ndarray, trunc: float, occ_thresh: float = 1.0,
                       pred_mesh=None, target_mesh=None, input_known: Optional[np.ndarray] = None
                       ) -> Dict[str, float]:
    """All metrics of one scene; meshes are (verts [V, 3] metres, faces [F, 3]) or None.
    input_known bool [X, Y, Z]: the input's observed voxels; given, the precision / recall keys of
    :func:`region_metrics` and :func:`reach_recall` are added."""
    target_occ = target_known & (np.abs(target_tsdf) < occ_thresh)
    out = {"iou": iou(pred_occ, target_occ, target_known),
           "l1": l1_known(pred_tsdf, target_tsdf, target_known, trunc),
           "pred_voxels": int(pred_occ.sum()), "target_voxels": int(target_occ.sum())}
    if input_known is not None:
        out.update(region_metrics(pred_occ, target_occ, target_known, input_known))
        out.update(reach_recall(pred_occ, target_occ, target_known, input_known))
    if pred_mesh is not None and target_mesh is not None:
        out["chamfer_m"] = chamfer(sample_mesh(*pred_mesh), sample_mesh(*target_mesh))
    return out

"""Whole-scene prediction and evaluation of a trained completion network.

    pred = predict_sample(net, sample)              # dense volumes [X, Y, Z]
    report = evaluate_sample(net, sample)           # {"input": metrics, "prediction": metrics}
    write_outputs(folder, name, sample, pred)       # meshes (.ply) + sparse grid (.npz)

A sample must have the model's truncation (and, where the checkpoint records it, voxel size):
``check_sample`` raises a ValueError naming both values otherwise. Metrics that cannot be
computed (chamfer of an empty mesh: inf) are written as JSON null and shown as "n/a".
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from sparse3d.tasks.completion.dataset import Sample, sparse_input
from sparse3d.tasks.completion.metrics import completion_metrics
from sparse3d.tasks.completion.model import CompletionNet
from sparse3d.tensor import SparseTensor
from sparse3d.utils.atomic_io import atomic_save_npz, atomic_write_text
from sparse3d.utils.mesh import Mesh, tsdf_to_mesh, write_ply



@dataclass
class Prediction:
    """tsdf float32 [X, Y, Z] (+trunc where nothing was predicted; |tsdf| >= 1 where the classifier
    rejected a scored voxel), occ bool [X, Y, Z] (kept finest
    voxels), scored bool [X, Y, Z] (every finest voxel the network scored), coords int32 [M, 3] and
    surface_tsdf float32 [M] of the kept voxels (the sparse output grid)."""

    tsdf: np.ndarray
    occ: np.ndarray
    scored: np.ndarray
    coords: np.ndarray
    surface_tsdf: np.ndarray


def check_sample(net: CompletionNet, sample: Sample) -> None:
    """Raise ValueError when ``sample``'s trunc (voxels) differs from the model's ``config.trunc``, or
    its voxel size (metres) from the training data's ``config.voxel_size`` (checked where recorded)."""
    cfg = net.config
    if not math.isclose(float(sample.trunc), float(cfg.trunc), rel_tol=1e-4):
        raise ValueError(f"sample trunc ({sample.trunc} voxels) differs from the model's trunc ({cfg.trunc} voxels): "
                         "prepare the sample with the truncation the model was trained with")
    vs = getattr(cfg, "voxel_size", None)
    if vs is not None and not math.isclose(float(sample.voxel_size), float(vs), rel_tol=1e-4):
        raise ValueError(f"sample voxel_size ({sample.voxel_size} m) differs from the model's training voxel_size "
                         f"({vs} m): prepare the sample at the voxel size the model was trained on")


@torch.no_grad()
def predict_sample(net: CompletionNet, sample: Sample, device: str | torch.device = "cpu",
                   frontier: bool = True, keep_observed: bool = True, occ_thresh: float = 1.0) -> Prediction:
    """Run ``net`` (eval mode) on a whole sample of any size (checked with :func:`check_sample`).

    keep_observed: voxels the input observed (``input_known``) keep their measured distance and
    occupancy (``|tsdf| < occ_thresh``); the network's output fills the unobserved space. Off: the
    network's output alone (it re-predicts observed space too, less accurately than the measurement).
    """
    check_sample(net, sample)
    net.eval()
    c, f = sparse_input(sample.input_tsdf, sample.input_known, sample.trunc, frontier)
    shape = sample.shape
    tsdf = np.full(shape, sample.trunc, np.float32)
    occ = np.zeros(shape, bool)
    scored = np.zeros(shape, bool)
    if len(c) == 0:
        return Prediction(tsdf, occ, scored, np.zeros((0, 3), np.int32), np.zeros(0, np.float32))
    x = SparseTensor(torch.from_numpy(np.concatenate([np.zeros((len(c), 1), np.int32), c], 1)),
                     torch.from_numpy(f)).to(device)
    out = net(x, bounds=shape)
    fine = out.levels[-1].coords[:, 1:].long().cpu().numpy()
    d = out.tsdf_all.float().cpu().numpy()
    idx = tuple(fine.T)
    keep = (out.logits[-1] > 0).cpu().numpy()
    # a voxel the classifier rejects is not on the surface: keep its sign, push it off the band
    tsdf[idx] = np.where(keep, d, np.sign(d) * np.maximum(np.abs(d), 1.0))
    scored[idx] = True
    occ[tuple(fine[keep].T)] = True
    if keep_observed:
        seen = sample.input_known
        tsdf = np.where(seen, sample.input_tsdf, tsdf).astype(np.float32)
        occ = np.where(seen, np.abs(sample.input_tsdf) < occ_thresh, occ)
        scored = scored | seen
        coords = np.argwhere(occ).astype(np.int32)
        return Prediction(tsdf, occ, scored, coords, tsdf[tuple(coords.T)])
    return Prediction(tsdf, occ, scored, fine[keep].astype(np.int32), d[keep].astype(np.float32))


def input_prediction(sample: Sample, occ_thresh: float = 1.0) -> Prediction:
    """The raw partial scan scored like a prediction (the baseline of every table)."""
    occ = sample.input_known & (np.abs(sample.input_tsdf) < occ_thresh)
    tsdf = np.where(sample.input_known, sample.input_tsdf, sample.trunc).astype(np.float32)
    coords = np.argwhere(occ).astype(np.int32)
    return Prediction(tsdf, occ, sample.input_known.copy(), coords, tsdf[tuple(coords.T)])


def occupancy_mesh(occ: np.ndarray, voxel_size: float, origin=None) -> Mesh:
    """Mesh of the boundary of a set of occupied voxels bool [X, Y, Z] (a shell around the surface band)."""
    return tsdf_to_mesh(np.where(occ, -0.5, 0.5).astype(np.float32), np.ones(occ.shape, bool), voxel_size, origin)


def meshes(sample: Sample, pred: Prediction, occ_thresh: float = 1.0) -> Dict[str, Mesh]:
    """input / prediction: shells of their occupied (surface) voxels, so both are meshed the same way
    (the regressed distance is too weak to mesh from: see docs/completion.md); target: its TSDF.
    occ_thresh: |tsdf| < occ_thresh (voxels) is an occupied input voxel (the config's ``occ_thresh``)."""
    vs, o = sample.voxel_size, sample.origin
    base = input_prediction(sample, occ_thresh)
    return {"input": occupancy_mesh(base.occ, vs, o),
            "prediction": occupancy_mesh(pred.occ, vs, o),
            "target": tsdf_to_mesh(sample.target_tsdf, sample.target_known, vs, o)}


def evaluate_sample(net: CompletionNet, sample: Sample, device: str | torch.device = "cpu",
                    occ_thresh: float = 1.0, with_chamfer: bool = True, frontier: bool = True,
                    keep_observed: bool = True) -> Tuple[Dict[str, Dict[str, float]], Prediction, Dict[str, Mesh]]:
    """Metrics of the prediction (see :func:`predict_sample` for ``keep_observed``) and of the raw input
    against the target."""
    pred = predict_sample(net, sample, device, frontier, keep_observed, occ_thresh)
    base = input_prediction(sample, occ_thresh)
    ms = meshes(sample, pred, occ_thresh) if with_chamfer else {}
    report = {}
    for name, p in (("input", base), ("prediction", pred)):
        report[name] = completion_metrics(p.tsdf, p.occ, sample.target_tsdf, sample.target_known, sample.trunc,
                                          occ_thresh, ms.get(name), ms.get("target"))
    return report, pred, ms


def write_outputs(folder: str, name: str, sample: Sample, pred: Prediction,
                  ms: Optional[Dict[str, Mesh]] = None, occ_thresh: float = 1.0) -> Dict[str, str]:
    """Write ``<name>_{input,prediction,target}.ply`` and ``<name>_prediction_grid.npz``
    (coords int32 [M, 3], tsdf float32 [M], origin, voxel_size); returns the paths.
    occ_thresh: used to mesh the input when ``ms`` is not given (see :func:`meshes`)."""
    os.makedirs(folder, exist_ok=True)
    ms = ms if ms else meshes(sample, pred, occ_thresh)
    paths = {}
    for k, (v, f) in ms.items():
        p = os.path.join(folder, f"{name}_{k}.ply")
        write_ply(p, v, f)
        paths[k] = p
    grid = os.path.join(folder, f"{name}_prediction_grid.npz")
    atomic_save_npz(grid, coords=pred.coords, tsdf=pred.surface_tsdf, origin=np.asarray(sample.origin),
                    voxel_size=np.float64(sample.voxel_size))
    paths["grid"] = grid
    return paths


def _json_safe(obj: Any) -> Any:
    """Non-finite floats (inf chamfer of an empty mesh, nan) -> None, recursively (JSON has no inf/nan)."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def write_json(path: str, obj) -> None:
    """Atomic write of ``obj`` as strict JSON: non-finite values (a metric that cannot be computed,
    e.g. the chamfer distance of an empty mesh) are written as null."""
    atomic_write_text(path, json.dumps(_json_safe(obj), indent=1, allow_nan=False) + "\n")


_COLUMNS = [("IoU input", "input", "iou", 10, 3), ("IoU pred", "prediction", "iou", 10, 3),
            ("L1 input", "input", "l1", 9, 3), ("L1 pred", "prediction", "l1", 9, 3),
            ("CD input", "input", "chamfer_m", 9, 4), ("CD pred", "prediction", "chamfer_m", 9, 4)]


def _cell(v: Optional[float], width: int, digits: int) -> str:
    return f"{v:>{width}.{digits}f}" if v is not None and math.isfinite(v) else f"{'n/a':>{width}}"


def format_table(rows: Dict[str, Dict[str, Dict[str, float]]]) -> str:
    """{scene: {"input": m, "prediction": m}} -> a text table of IoU / L1 / chamfer, with the mean.
    A value that is missing or not finite (chamfer of an empty mesh) shows as "n/a"; the mean of a
    column skips such values and the table says how many it skipped."""
    lines = [f"{'scene':<16} " + " ".join(f"{h:>{w}}" for h, _, _, w, _ in _COLUMNS)]
    vals: List[List[Optional[float]]] = []
    for scene, r in rows.items():
        v = [r.get(a, {}).get(b) for _, a, b, _, _ in _COLUMNS]
        v = [None if x is None or not math.isfinite(x) else float(x) for x in v]
        vals.append(v)
        lines.append(f"{scene:<16} " + " ".join(_cell(x, w, d) for x, (_, _, _, w, d) in zip(v, _COLUMNS)))
    if len(rows) > 1:
        cells, skipped = [], []
        for j, (h, _, _, w, d) in enumerate(_COLUMNS):
            col = [v[j] for v in vals if v[j] is not None]
            cells.append(_cell(float(np.mean(col)) if col else None, w, d))
            if len(col) < len(vals):
                skipped.append(f"{h} {len(vals) - len(col)} of {len(vals)}")
        lines.append(f"{'mean':<16} " + " ".join(cells))
        if skipped:
            lines.append("(the mean skips scenes where a value is n/a: " + ", ".join(skipped) + ")")
    lines.append("(IoU of surface voxels |tsdf| < 1 voxel on known target space; L1 in voxels on the known "
                 "truncation band; CD = chamfer distance of meshes in metres; n/a: not computed or an empty mesh)")
    return "\n".join(lines)

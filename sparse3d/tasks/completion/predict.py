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
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from sparse3d.tasks.completion.dataset import Sample, sparse_input
from sparse3d.tasks.completion.metrics import completion_metrics
from sparse3d.tasks.completion.model import CompletionNet
from sparse3d.utils.test_time_views import box_view, coords_from_view, tta_views, volume_to_view
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


@dataclass
class NetworkOutput:
    """The network's finest level on a whole sample: coords int [M, 3] (every finest voxel it scored),
    tsdf float32 [M] (predicted distance, voxels) and logits float32 [M] (occupancy logits)."""

    coords: np.ndarray
    tsdf: np.ndarray
    logits: np.ndarray


def threshold_logit(threshold: float) -> float:
    """The occupancy logit of a probability threshold in (0, 1): log(t / (1 - t)) (0.5 -> exactly 0.0)."""
    t = float(threshold)
    if not 0.0 < t < 1.0:
        raise ValueError(f"threshold must be an occupancy probability in (0, 1), got {threshold!r}")
    return 0.0 if t == 0.5 else math.log(t / (1.0 - t))


@torch.no_grad()
def run_network(net: CompletionNet, sample: Sample, device: str | torch.device = "cpu",
                frontier: bool = True, tta: int = 1) -> NetworkOutput:
    """Run ``net`` (eval mode) on a whole sample of any size (checked with :func:`check_sample`);
    :func:`decide` turns the result into a :class:`Prediction` (at any threshold, without rerunning).

    tta: test-time views (1..8, :func:`~sparse3d.utils.test_time_views.tta_views`: the scene turned about up,
    mirrored and shifted on the grid). With more than one, the network runs on every view and each finest voxel
    gets the mean of its occupancy probability over the views (0 in a view that did not score it: its coarser
    levels pruned it there) as a logit, and the mean distance of the views that scored it; tta 1 is the single
    run, unchanged."""
    views = tta_views(tta)
    check_sample(net, sample)
    net.eval()
    if len(views) == 1:
        return _run_once(net, sample.input_tsdf, sample.input_known, sample.trunc, sample.shape, device, frontier)
    shape = sample.shape
    prob = np.zeros(shape, np.float64)
    dist = np.zeros(shape, np.float64)
    count = np.zeros(shape, np.int32)
    for turns, flip, shift in views:
        rot, offset, vshape = box_view(shape, turns, flip, shift)
        out = _run_once(net, volume_to_view(sample.input_tsdf, rot, offset, vshape, sample.trunc),
                        volume_to_view(sample.input_known, rot, offset, vshape, False), sample.trunc, vshape,
                        device, frontier)
        c, keep = coords_from_view(out.coords, rot, offset, shape)
        idx = tuple(c.T)
        prob[idx] += 1.0 / (1.0 + np.exp(-out.logits[keep].astype(np.float64)))
        dist[idx] += out.tsdf[keep]
        count[idx] += 1
    scored = count > 0
    p = np.clip(prob[scored] / len(views), 1e-7, 1 - 1e-7)
    return NetworkOutput(np.argwhere(scored).astype(np.int64), (dist[scored] / count[scored]).astype(np.float32),
                         (np.log(p) - np.log1p(-p)).astype(np.float32))


@torch.no_grad()
def _run_once(net: CompletionNet, input_tsdf: np.ndarray, input_known: np.ndarray, trunc: float,
              shape: Tuple[int, int, int], device: str | torch.device, frontier: bool) -> NetworkOutput:
    """One forward pass of ``net`` on dense input volumes [X, Y, Z] inside the bounds ``shape``."""
    c, f = sparse_input(input_tsdf, input_known, trunc, frontier)
    if len(c) == 0:
        return NetworkOutput(np.zeros((0, 3), np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32))
    x = SparseTensor(torch.from_numpy(np.concatenate([np.zeros((len(c), 1), np.int32), c], 1)),
                     torch.from_numpy(f)).to(device)
    out = net(x, bounds=shape)
    return NetworkOutput(out.levels[-1].coords[:, 1:].long().cpu().numpy(), out.tsdf_all.float().cpu().numpy(),
                         out.logits[-1].float().cpu().numpy())


def decide(sample: Sample, raw: NetworkOutput, threshold: float = 0.5, keep_observed: bool = True,
           occ_thresh: float = 1.0) -> Prediction:
    """The prediction of :func:`run_network`'s output: a scored finest voxel is occupied when its
    occupancy probability is > ``threshold`` (0.5: logit > 0, the training's decision).

    keep_observed: voxels the input observed (``input_known``) keep their measured distance and
    occupancy (``|tsdf| < occ_thresh``); the network's output fills the unobserved space. Off: the
    network's output alone (it re-predicts observed space too, less accurately than the measurement).
    """
    shape = sample.shape
    tsdf = np.full(shape, sample.trunc, np.float32)
    occ = np.zeros(shape, bool)
    scored = np.zeros(shape, bool)
    fine, d = raw.coords, raw.tsdf
    keep = raw.logits > threshold_logit(threshold)
    if len(fine):
        idx = tuple(fine.T)
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
    return Prediction(tsdf, occ, scored, fine[keep].astype(np.int32).reshape(-1, 3), d[keep].astype(np.float32))


def predict_sample(net: CompletionNet, sample: Sample, device: str | torch.device = "cpu",
                   frontier: bool = True, keep_observed: bool = True, occ_thresh: float = 1.0,
                   threshold: float = 0.5, tta: int = 1) -> Prediction:
    """:func:`run_network` (``tta`` test-time views) then :func:`decide` (see there for ``keep_observed`` and
    ``threshold``)."""
    return decide(sample, run_network(net, sample, device, frontier, tta), threshold, keep_observed, occ_thresh)


def input_prediction(sample: Sample, occ_thresh: float = 1.0) -> Prediction:
    """The raw partial scan scored like a prediction (the baseline of every table)."""
    occ = sample.input_known & (np.abs(sample.input_tsdf) < occ_thresh)
    tsdf = np.where(sample.input_known, sample.input_tsdf, sample.trunc).astype(np.float32)
    coords = np.argwhere(occ).astype(np.int32)
    return Prediction(tsdf, occ, sample.input_known.copy(), coords, tsdf[tuple(coords.T)])


def occupancy_mesh(occ: np.ndarray, voxel_size: float, origin=None) -> Mesh:
    """Mesh of the boundary of a set of occupied voxels bool [X, Y, Z] (a shell around the surface band)."""
    return tsdf_to_mesh(np.where(occ, -0.5, 0.5).astype(np.float32), np.ones(occ.shape, bool), voxel_size, origin)


class NoSurfaceError(ValueError):
    """A mesh of a sample cannot be extracted (marching cubes finds no surface in the cubes whose
    corners are all known): the sample has no surface to score by chamfer distance."""


def _mesh_or_raise(name: str, make: Callable[[], Mesh]) -> Mesh:
    try:
        return make()
    except RuntimeError as e:  # skimage: "No surface found at the given iso value."
        raise NoSurfaceError(f"the {name} mesh: marching cubes found no surface ({e})") from e


def meshes(sample: Sample, pred: Prediction, occ_thresh: float = 1.0) -> Dict[str, Mesh]:
    """input / prediction: shells of their occupied (surface) voxels, so both are meshed the same way
    (the regressed distance is too weak to mesh from: see docs/completion.md); target: its TSDF.
    occ_thresh: |tsdf| < occ_thresh (voxels) is an occupied input voxel (the config's ``occ_thresh``).
    Raises :class:`NoSurfaceError` naming the mesh when marching cubes finds no surface."""
    vs, o = sample.voxel_size, sample.origin
    base = input_prediction(sample, occ_thresh)
    return {"input": _mesh_or_raise("input", lambda: occupancy_mesh(base.occ, vs, o)),
            "prediction": _mesh_or_raise("prediction", lambda: occupancy_mesh(pred.occ, vs, o)),
            "target": _mesh_or_raise("target", lambda: tsdf_to_mesh(sample.target_tsdf, sample.target_known, vs, o))}


def evaluate_sample(net: CompletionNet, sample: Sample, device: str | torch.device = "cpu",
                    occ_thresh: float = 1.0, with_chamfer: bool = True, frontier: bool = True,
                    keep_observed: bool = True, threshold: float = 0.5, tta: int = 1
                    ) -> Tuple[Dict[str, Dict[str, float]], Prediction, Dict[str, Mesh]]:
    """Metrics of the prediction (see :func:`decide` for ``keep_observed`` and ``threshold``, :func:`run_network`
    for ``tta``) and of the raw input against the target. Raises :class:`NoSurfaceError` (with_chamfer) when a
    mesh cannot be made."""
    return score_prediction(sample, predict_sample(net, sample, device, frontier, keep_observed, occ_thresh,
                                                   threshold, tta), occ_thresh, with_chamfer)


def score_prediction(sample: Sample, pred: Prediction, occ_thresh: float = 1.0, with_chamfer: bool = True
                     ) -> Tuple[Dict[str, Dict[str, float]], Prediction, Dict[str, Mesh]]:
    """({"input": metrics, "prediction": metrics}, pred, meshes) of a prediction of ``sample``
    (:func:`~sparse3d.tasks.completion.metrics.completion_metrics`, with precision / recall on observed and
    unobserved space)."""
    base = input_prediction(sample, occ_thresh)
    ms = meshes(sample, pred, occ_thresh) if with_chamfer else {}
    report = {}
    for name, p in (("input", base), ("prediction", pred)):
        report[name] = completion_metrics(p.tsdf, p.occ, sample.target_tsdf, sample.target_known, sample.trunc,
                                          occ_thresh, ms.get(name), ms.get("target"), sample.input_known)
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


_PR_COLUMNS = [("P", "precision"), ("R", "recall"), ("P obs", "precision_observed"), ("R obs", "recall_observed"),
               ("P unobs", "precision_unobserved"), ("R unobs", "recall_unobserved"),
               ("IoU unobs", "iou_unobserved")]


def _name_width(rows: Dict[str, Any]) -> int:
    """Width of the first column of a table: 16, or the longest scene name."""
    return max([16] + [len(k) for k in rows])


def _finite(v: Any) -> Optional[float]:
    return float(v) if isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(v) else None


def format_pr_table(rows: Dict[str, Dict[str, Dict[str, float]]]) -> str:
    """{scene: {"input": m, "prediction": m}} -> a text table of the surface's precision / recall overall,
    on observed and on unobserved space (:func:`~sparse3d.tasks.completion.metrics.region_metrics`), input and
    prediction on two lines per scene, with the means (of the scenes where a value is defined)."""
    n = _name_width(rows)
    head = f"{'scene':<{n}} {'':<5} " + " ".join(f"{h:>9}" for h, _ in _PR_COLUMNS)
    lines = [head]
    for scene, r in rows.items():
        for j, (label, key) in enumerate((("input", "input"), ("pred", "prediction"))):
            v = [_finite(r.get(key, {}).get(k)) for _, k in _PR_COLUMNS]
            lines.append(f"{scene if j == 0 else '':<{n}} {label:<5} " + " ".join(_cell(x, 9, 3) for x in v))
    if len(rows) > 1:
        for j, (label, key) in enumerate((("input", "input"), ("pred", "prediction"))):
            cells = []
            for _, k in _PR_COLUMNS:
                col = [x for x in (_finite(r.get(key, {}).get(k)) for r in rows.values()) if x is not None]
                cells.append(_cell(float(np.mean(col)) if col else None, 9, 3))
            lines.append(f"{'mean' if j == 0 else '':<{n}} {label:<5} " + " ".join(cells))
    lines.append("(surface voxels |tsdf| < 1 voxel on known target space; P = precision: the share of predicted "
                 "surface that is in the target; R = recall; obs / unobs: voxels the input observed / did not; "
                 "n/a: 0 / 0)")
    return "\n".join(lines)


def format_reach_table(rows: Dict[str, Dict[str, Dict[str, float]]]) -> str:
    """{scene: {"input": m, "prediction": m}} -> a text table of the prediction's recall of the unobserved target
    surface by distance to observed space (:func:`~sparse3d.tasks.completion.metrics.reach_recall`), with each bin's
    share of that surface, one line per scene and the means."""
    from sparse3d.tasks.completion.metrics import REACH_BINS, reach_key
    keys = [reach_key(lo, hi) for lo, hi in REACH_BINS]
    heads = [f"({lo},{'inf' if hi is None else hi}]" for lo, hi in REACH_BINS]
    n = _name_width(rows)
    lines = [f"{'scene':<{n}} " + " ".join(f"{h:>9}" for h in heads)]
    recalls, shares = [], []
    for scene, r in rows.items():
        m = r.get("prediction", {})
        counts = [m.get(k.replace("recall_", "target_"), 0) or 0 for k in keys]
        total = sum(counts)
        rec = [_finite(m.get(k)) for k in keys]
        recalls.append(rec)
        shares.append([c / total if total else None for c in counts])
        lines.append(f"{scene:<{n}} " + " ".join(_cell(x, 9, 3) for x in rec))
    if len(rows) > 1:
        for label, table in (("mean", recalls), ("share", shares)):
            cells = []
            for j in range(len(keys)):
                col = [v[j] for v in table if v[j] is not None]
                cells.append(_cell(float(np.mean(col)) if col else None, 9, 3))
            lines.append(f"{label:<{n}} " + " ".join(cells))
    elif shares:
        lines.append(f"{'share':<{n}} " + " ".join(_cell(x, 9, 3) for x in shares[0]))
    lines.append("(recall of the target's surface voxels in unobserved known space by their distance to the nearest "
                 "observed voxel, voxels; share: the part of that surface in each bin; n/a: an empty bin)")
    return "\n".join(lines)


def _cell(v: Optional[float], width: int, digits: int) -> str:
    return f"{v:>{width}.{digits}f}" if v is not None and math.isfinite(v) else f"{'n/a':>{width}}"


def format_table(rows: Dict[str, Dict[str, Dict[str, float]]]) -> str:
    """{scene: {"input": m, "prediction": m}} -> a text table of IoU / L1 / chamfer, with the mean.
    A value that is missing or not finite (chamfer of an empty mesh) shows as "n/a"; the mean of a
    column skips such values and the table says how many it skipped."""
    n = _name_width(rows)
    lines = [f"{'scene':<{n}} " + " ".join(f"{h:>{w}}" for h, _, _, w, _ in _COLUMNS)]
    vals: List[List[Optional[float]]] = []
    for scene, r in rows.items():
        v = [r.get(a, {}).get(b) for _, a, b, _, _ in _COLUMNS]
        v = [None if x is None or not math.isfinite(x) else float(x) for x in v]
        vals.append(v)
        lines.append(f"{scene:<{n}} " + " ".join(_cell(x, w, d) for x, (_, _, _, w, d) in zip(v, _COLUMNS)))
    if len(rows) > 1:
        cells, skipped = [], []
        for j, (h, _, _, w, d) in enumerate(_COLUMNS):
            col = [v[j] for v in vals if v[j] is not None]
            cells.append(_cell(float(np.mean(col)) if col else None, w, d))
            if len(col) < len(vals):
                skipped.append(f"{h} {len(vals) - len(col)} of {len(vals)}")
        lines.append(f"{'mean':<{n}} " + " ".join(cells))
        if skipped:
            lines.append("(the mean skips scenes where a value is n/a: " + ", ".join(skipped) + ")")
    lines.append("(IoU of surface voxels |tsdf| < 1 voxel on known target space; L1 in voxels on the known "
                 "truncation band; CD = chamfer distance of meshes in metres; n/a: not computed or an empty mesh)")
    return "\n".join(lines)

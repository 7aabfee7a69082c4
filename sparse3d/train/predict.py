"""Whole-scene prediction and evaluation of a trained completion network.

    pred = predict_sample(net, sample)              # dense volumes [X, Y, Z]
    report = evaluate_sample(net, sample)           # {"input": metrics, "prediction": metrics}
    write_outputs(folder, name, sample, pred)       # meshes (.ply) + sparse grid (.npz)
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from sparse3d.data.completion_dataset import Sample, sparse_input
from sparse3d.models.completion import CompletionNet
from sparse3d.models.mesh import tsdf_to_mesh, write_ply
from sparse3d.tensor import SparseTensor
from sparse3d.train.metrics import completion_metrics

Mesh = Tuple[np.ndarray, np.ndarray]


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


@torch.no_grad()
def predict_sample(net: CompletionNet, sample: Sample, device: str | torch.device = "cpu",
                   frontier: bool = True) -> Prediction:
    """Run ``net`` (eval mode) on a whole sample of any size."""
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


def meshes(sample: Sample, pred: Prediction) -> Dict[str, Mesh]:
    """input / prediction: shells of their occupied (surface) voxels, so both are meshed the same way
    (the regressed distance is too weak to mesh from: see docs/completion.md); target: its TSDF."""
    vs, o = sample.voxel_size, sample.origin
    base = input_prediction(sample)
    return {"input": occupancy_mesh(base.occ, vs, o),
            "prediction": occupancy_mesh(pred.occ, vs, o),
            "target": tsdf_to_mesh(sample.target_tsdf, sample.target_known, vs, o)}


def evaluate_sample(net: CompletionNet, sample: Sample, device: str | torch.device = "cpu",
                    occ_thresh: float = 1.0, with_chamfer: bool = True, frontier: bool = True
                    ) -> Tuple[Dict[str, Dict[str, float]], Prediction, Dict[str, Mesh]]:
    """Metrics of the prediction and of the raw input against the target."""
    pred = predict_sample(net, sample, device, frontier)
    base = input_prediction(sample, occ_thresh)
    ms = meshes(sample, pred) if with_chamfer else {}
    report = {}
    for name, p in (("input", base), ("prediction", pred)):
        report[name] = completion_metrics(p.tsdf, p.occ, sample.target_tsdf, sample.target_known, sample.trunc,
                                          occ_thresh, ms.get(name), ms.get("target"))
    return report, pred, ms


def write_outputs(folder: str, name: str, sample: Sample, pred: Prediction,
                  ms: Optional[Dict[str, Mesh]] = None) -> Dict[str, str]:
    """Write ``<name>_{input,prediction,target}.ply`` and ``<name>_prediction_grid.npz``
    (coords int32 [M, 3], tsdf float32 [M], origin, voxel_size); returns the paths."""
    os.makedirs(folder, exist_ok=True)
    ms = ms if ms else meshes(sample, pred)
    paths = {}
    for k, (v, f) in ms.items():
        p = os.path.join(folder, f"{name}_{k}.ply")
        write_ply(p, v, f)
        paths[k] = p
    grid = os.path.join(folder, f"{name}_prediction_grid.npz")
    np.savez_compressed(grid + ".tmp.npz", coords=pred.coords, tsdf=pred.surface_tsdf,
                        origin=np.asarray(sample.origin), voxel_size=np.float64(sample.voxel_size))
    os.replace(grid + ".tmp.npz", grid)
    paths["grid"] = grid
    return paths


def write_json(path: str, obj) -> None:
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(path + ".tmp", path)


def format_table(rows: Dict[str, Dict[str, Dict[str, float]]]) -> str:
    """{scene: {"input": m, "prediction": m}} -> a text table of IoU / L1 / chamfer, with the mean."""
    lines = [f"{'scene':<16} {'IoU input':>10} {'IoU pred':>10} {'L1 input':>9} {'L1 pred':>9} "
             f"{'CD input':>9} {'CD pred':>9}"]
    keys = [("input", "iou"), ("prediction", "iou"), ("input", "l1"), ("prediction", "l1"),
            ("input", "chamfer_m"), ("prediction", "chamfer_m")]
    vals = []
    for scene, r in rows.items():
        v = [r[a].get(b, float("nan")) for a, b in keys]
        vals.append(v)
        lines.append(f"{scene:<16} {v[0]:>10.3f} {v[1]:>10.3f} {v[2]:>9.3f} {v[3]:>9.3f} {v[4]:>9.4f} {v[5]:>9.4f}")
    if len(rows) > 1:
        m = np.nanmean(np.array(vals), 0)
        lines.append(f"{'mean':<16} {m[0]:>10.3f} {m[1]:>10.3f} {m[2]:>9.3f} {m[3]:>9.3f} {m[4]:>9.4f} {m[5]:>9.4f}")
    lines.append("(IoU of surface voxels |tsdf| < 1 voxel on known target space; L1 in voxels on the known "
                 "truncation band; CD = chamfer distance of meshes in metres)")
    return "\n".join(lines)

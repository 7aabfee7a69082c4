"""Validation of scene completion during training: the ``val`` split of the training dataset, scored every
``val_every`` steps by the step loop (:mod:`sparse3d.train.loop`: ``val.jsonl``, the loss plot's validation
panel, ``best.pt`` = the weights of the best ``iou``).

Each validation crop is predicted whole, as ``sparse3d eval completion`` does (observed voxels keep their
measurement, the network fills the rest, decision threshold 0.5), and scored against its target:

    iou, precision, recall     surface voxels (|tsdf| < occ_thresh) on known target space
    l1                         voxels, on the known truncation band
    chamfer_vox                metres: :func:`~sparse3d.tasks.completion.metrics.voxel_chamfer`, the cheap
                               stand-in for the mesh chamfer distance (no marching cubes; ~1 ms a crop)
    iou_input, chamfer_vox_input   the raw input's, for reference (constant over a run)

Each is the mean over the crops where it is finite.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional

import numpy as np
import torch

from data_tools import load_manifest
from sparse3d.tasks.completion.dataset import CompletionDataset, Sample, surface
from sparse3d.tasks.completion.model import CompletionNet
from sparse3d.tasks.completion.metrics import iou, l1_known, precision_recall, voxel_chamfer
from sparse3d.tasks.completion.predict import input_prediction, predict_sample

VAL_KEY = "iou"  # the metric that picks best.pt (higher is better)


def load_val_samples(data: str, n: int) -> Optional[List[Sample]]:
    """Up to ``n`` crops of the ``val`` split of the dataset ``data``, evenly spaced over the split (the same
    crops every time); None when the dataset has no val crops."""
    if n < 1:
        raise ValueError(f"val_crops must be >= 1, got {n}")
    if not load_manifest(data).get("splits", {}).get("val"):
        return None
    ds = CompletionDataset(data, split="val")
    idx = np.unique(np.linspace(0, len(ds) - 1, min(n, len(ds))).round().astype(int))
    return [ds[int(i)] for i in idx]


def validation_scores(net: CompletionNet, samples: List[Sample], device: str | torch.device = "cpu",
                      frontier: bool = True, occ_thresh: float = 1.0) -> Dict[str, float]:
    """The metrics of the module docstring, means over ``samples``."""
    vals: Dict[str, List[float]] = {}
    for s in samples:
        pred = predict_sample(net, s, device, frontier, keep_observed=True, occ_thresh=occ_thresh)
        base = input_prediction(s, occ_thresh)
        t_occ = surface(s.target_tsdf, s.target_known, occ_thresh)
        p, r = precision_recall(pred.occ, t_occ, s.target_known)
        row = {"iou": iou(pred.occ, t_occ, s.target_known), "precision": p, "recall": r,
               "l1": l1_known(pred.tsdf, s.target_tsdf, s.target_known, s.trunc),
               "chamfer_vox": voxel_chamfer(pred.occ, t_occ, s.voxel_size),
               "iou_input": iou(base.occ, t_occ, s.target_known),
               "chamfer_vox_input": voxel_chamfer(base.occ, t_occ, s.voxel_size)}
        for k, v in row.items():
            if math.isfinite(v):
                vals.setdefault(k, []).append(float(v))
    return {k: float(np.mean(v)) for k, v in vals.items()}

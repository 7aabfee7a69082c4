"""Loss of the segmentation U-Net and the per-voxel scores logged beside it.

    w = class_weights(label_counts(train_scenes), "median_freq")      # float32 [C] or None
    loss = segmentation_loss(logits, labels, w)                         # cross-entropy, 255 ignored
    conf = confusion(pred, labels); miou(conf)                          # batch / held-out mIoU

Class weighting (from the training scenes' labelled voxels per class, f_c = count_c / total):

    none         every class 1
    median_freq  w_c = median(f over present classes) / f_c  (Eigen & Fergus 2015)
    inv_log      w_c = 1 / ln(1.02 + f_c)                     (ENet, Paszke et al. 2016)

A class without training voxels gets weight 0 (it has nothing to be weighed in the loss).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from sparse3d.tasks.segmentation.config import CLASS_WEIGHTING, IGNORE


def class_weights(counts: np.ndarray, mode: str) -> Optional[np.ndarray]:
    """float32 [C] loss weights from int counts [C] (see the module docstring); None for mode "none"."""
    if mode not in CLASS_WEIGHTING:
        raise ValueError(f"mode must be one of {list(CLASS_WEIGHTING)}, got {mode!r}")
    counts = np.asarray(counts, np.float64)
    if counts.ndim != 1 or np.any(counts < 0):
        raise ValueError(f"counts must be a 1-D array of counts >= 0, got shape {counts.shape}")
    if mode == "none":
        return None
    if counts.sum() == 0:
        raise ValueError("counts has no labelled voxels: class weights need labelled training data")
    f = counts / counts.sum()
    present = f > 0
    w = np.zeros_like(f)
    if mode == "median_freq":
        w[present] = np.median(f[present]) / f[present]
    else:
        w[present] = 1.0 / np.log(1.02 + f[present])
    return w.astype(np.float32)


def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor,
                      weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Cross-entropy of logits float [N, C] against labels int64 [N] (0..C-1, 255 = ignored), averaged over
    the labelled voxels (weighted mean with ``weights`` float [C]). No labelled voxel: 0, still tied to
    the logits (so backward runs)."""
    if logits.dim() != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(f"logits must be [N, C] and labels [N], got {tuple(logits.shape)} and {tuple(labels.shape)}")
    valid = labels != IGNORE
    if not bool(valid.any()):
        return logits.sum() * 0.0
    bad = valid & ((labels < 0) | (labels >= logits.shape[1]))
    if bool(bad.any()):
        raise ValueError(f"labels must be in 0..{logits.shape[1] - 1} or {IGNORE}, got {int(labels[bad][0])}")
    w = None if weights is None else weights.to(device=logits.device, dtype=torch.float32)
    return F.cross_entropy(logits.float(), labels, weight=w, ignore_index=IGNORE)

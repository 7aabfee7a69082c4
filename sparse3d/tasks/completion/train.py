"""Training of scene completion: the task's model, batch and loss handed to the generic step loop
(:func:`sparse3d.train.loop.run_steps`: resume, Ctrl-C guard, checkpoints, DDP, metrics.jsonl, loss.png), and
the validation on the data's ``val`` split every ``val_every`` steps (:mod:`.validation`; best.pt).

Every random choice is a function of (seed, step): the model's initial weights (torch's seed), the
global batch of a step (:func:`batch_indices`) and each sample's augmentation.
"""
from __future__ import annotations

import math
import sys
from typing import Any, Dict, List, Tuple

import numpy as np
import torch

import sparse3d.nn as snn
from sparse3d.tasks.completion.checkpoint import TASK
from sparse3d.tasks.completion.config import CompletionTrainConfig
from sparse3d.tasks.completion.dataset import CompletionDataset, augment, collate
from sparse3d.tasks.completion.loss import CompletionTarget, LossWeights, completion_loss
from sparse3d.tasks.completion.model import CompletionNet
from sparse3d.tasks.completion.validation import VAL_KEY, load_val_samples, validation_scores
from sparse3d.tensor import SparseTensor
from sparse3d.train.distributed import DistInfo
from sparse3d.train.loop import StepTask, run_steps


def lr_at(cfg: CompletionTrainConfig, step: int) -> float:
    """Step schedule: x0.3 at each fraction in ``lr_decay_at`` (stateless, so resuming is exact)."""
    n = sum(step >= int(f * cfg.steps) for f in cfg.lr_decay_at)
    return cfg.lr * (0.3 ** n)


def batch_indices(cfg: CompletionTrainConfig, step: int, n: int) -> List[int]:
    """The global batch of ``step``: a function of (seed, step) only."""
    rng = np.random.default_rng([cfg.seed, step])
    return rng.choice(n, cfg.batch_size, replace=n < cfg.batch_size).tolist()


def completion_task(cfg: CompletionTrainConfig, info: DistInfo, device: torch.device) -> StepTask:
    """The completion task for the step loop; loads ``cfg.data`` and checks it against the config."""
    ds = CompletionDataset(cfg.data, cache_mib=cfg.cache_mib)
    first = ds[0]
    if not math.isclose(first.trunc, cfg.model.trunc, rel_tol=1e-4):
        raise ValueError(f"the training samples' trunc ({first.trunc} voxels, {ds.paths[0]}) differs from the "
                         f"config's trunc ({cfg.model.trunc} voxels): set model: trunc: {first.trunc} in the config")
    vs = cfg.model.voxel_size
    if vs is not None and not math.isclose(first.voxel_size, vs, rel_tol=1e-4):
        raise ValueError(f"the training samples' voxel size ({first.voxel_size} m, {ds.paths[0]}) differs from the "
                         f"config's model.voxel_size ({vs} m): remove model.voxel_size (it is taken from the data)")
    val_samples = load_val_samples(cfg.data, cfg.val_crops) if cfg.val_every > 0 else None
    if cfg.val_every > 0 and val_samples is None and info.is_main:
        print(f"note: {cfg.data} has no val split: no validation and no best.pt (make one with "
              "`sparse3d preprocess ... --val-fraction F`; set val_every: 0 to silence this)", file=sys.stderr)
    per_rank = cfg.batch_size // info.world_size
    weights = LossWeights(cfg.loss_occupancy, cfg.loss_distance, cfg.log_l1)

    def batch(step: int, info: DistInfo, device: torch.device) -> Tuple[SparseTensor, CompletionTarget]:
        idx = batch_indices(cfg, step, len(ds))[info.rank * per_rank:(info.rank + 1) * per_rank]
        samples = [ds[i] for i in idx]
        if cfg.augment:
            samples = [augment(s, np.random.default_rng([cfg.seed, step, j])) for s, j in zip(samples, idx)]
        x, target = collate(samples, cfg.frontier, cfg.occ_thresh)
        return x.to(device), CompletionTarget(target.tsdf.to(device), target.known.to(device), cfg.occ_thresh)

    def loss(model: torch.nn.Module, b: Tuple[SparseTensor, CompletionTarget]
             ) -> Tuple[torch.Tensor, Dict[str, float], Dict[str, Any]]:
        x, target = b
        out = model(x, bounds=target.shape, target_fn=target.occupied)
        total, logs = completion_loss(out, target, weights)
        return total, logs, {"voxels": len(out.levels[-1])}

    return StepTask(
        name=TASK,
        build_model=lambda: snn.set_backend(CompletionNet(cfg.model), cfg.backend),
        make_optimizer=lambda net: torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay),
        lr_at=lambda step: lr_at(cfg, step), batch=batch, loss=loss, config=cfg.to_dict(),
        extra_state={"data": {"voxel_size": float(first.voxel_size), "trunc": float(first.trunc)}},
        postfix=("loss", "l1"), not_plotted=("voxels",),
        validate=None if val_samples is None else (
            lambda net: validation_scores(net, val_samples, device, cfg.frontier, cfg.occ_thresh)),
        val_key=VAL_KEY)


def train(cfg: CompletionTrainConfig, resume: bool = True, progress: bool = True) -> Dict[str, float]:
    """Train (resuming from ``<cfg.out>/last.pt`` when it exists and ``resume``); returns the last step's
    logged values. Under torchrun, every process calls this."""
    return run_steps(lambda info, device: completion_task(cfg, info, device), cfg.loop_settings(), resume, progress)

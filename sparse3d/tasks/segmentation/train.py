"""Training of the segmentation U-Net: the task's model, batch and loss handed to the generic step loop
(:func:`sparse3d.train.loop.run_steps`: resume, Ctrl-C guard, checkpoints, DDP, metrics.jsonl, loss.png),
then the mIoU on the held-out scenes into ``<out>/metrics.json``.

A step's global batch: ``batch_size`` boxes (``cfg.box`` voxels) of training scenes, each around a random
voxel, augmented (:func:`sparse3d.tasks.segmentation.dataset.augment`). Every random choice is a function
of (seed, step, position in the global batch), so resuming, and any number of DDP processes, repeat it
exactly. Logged per step: loss, the batch's mIoU (classes present in the batch) and accuracy.
"""
from __future__ import annotations

import math
import os
import time
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

import sparse3d.nn as snn
from data_tools.scannet.labels import SCANNET20_NAMES
from sparse3d.tasks.segmentation.checkpoint import TASK, load_model
from sparse3d.tasks.segmentation.config import SegmentationModelConfig, SegmentationTrainConfig
from sparse3d.tasks.segmentation.dataset import (SegmentationDataset, augment, collate, label_counts, random_box,
                                                 sample_features)
from sparse3d.tasks.segmentation.benchmark import class_confusion, scores_from_confusion, voxel_scores_dict
from sparse3d.tasks.segmentation.loss import class_weights, segmentation_loss
from sparse3d.tasks.segmentation.model import SegmentationUNet, predict_labels
from sparse3d.tasks.segmentation.sample import SegSample
from sparse3d.tensor import SparseTensor
from sparse3d.train.distributed import DistInfo
from sparse3d.train.loop import StepTask, run_steps
from sparse3d.utils.atomic_io import atomic_write_json


def lr_at(cfg: SegmentationTrainConfig, step: int) -> float:
    """cosine: from lr down to lr / 100 at the last step; constant: lr (stateless: resuming is exact)."""
    if cfg.lr_schedule == "constant":
        return cfg.lr
    t = min(step / max(cfg.steps - 1, 1), 1.0)
    return cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t)))


def batch_indices(cfg: SegmentationTrainConfig, step: int, n: int) -> List[int]:
    """The global batch of ``step`` (scene indices): a function of (seed, step) only."""
    rng = np.random.default_rng([cfg.seed, step])
    return rng.choice(n, cfg.batch_size, replace=n < cfg.batch_size).tolist()


def training_item(sample: SegSample, cfg: SegmentationTrainConfig, rng: np.random.Generator
                  ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One box of a training scene: (coords int32 [N, 3], feats float32 [N, F], labels uint8 [N]), features
    taken before augmentation (heights and normals of the scene as it is)."""
    box = random_box(sample, cfg.box, rng, cfg.box_centre)
    feats = sample_features(box, cfg.model).numpy()
    if not cfg.augment:
        return box.coords, feats, box.labels
    return augment(box.coords, feats, box.labels, rng, cfg)


def segmentation_task(cfg: SegmentationTrainConfig, info: DistInfo, device: torch.device) -> StepTask:
    """The segmentation task for the step loop; loads ``cfg.data`` (its train split) and checks it."""
    ds = SegmentationDataset(cfg.data, "train", cfg.max_abs_tsdf)
    samples = [ds[i] for i in range(len(ds))]
    vs = {round(s.voxel_size, 6) for s in samples}
    if len(vs) != 1:
        raise ValueError(f"{cfg.data}: the training scenes have different voxel sizes {sorted(vs)}")
    voxel_size = samples[0].voxel_size
    if cfg.model.voxel_size is not None and not math.isclose(voxel_size, cfg.model.voxel_size, rel_tol=1e-4):
        raise ValueError(f"the training scenes' voxel size ({voxel_size} m, {cfg.data}) differs from the config's "
                         f"model.voxel_size ({cfg.model.voxel_size} m): remove model.voxel_size (taken from the data)")
    counts = label_counts(samples, cfg.model.num_classes)
    w = class_weights(counts, cfg.class_weighting)
    weights = None if w is None else torch.from_numpy(w).to(device)
    per_rank = cfg.batch_size // info.world_size

    def batch(step: int, info: DistInfo, device: torch.device) -> Tuple[SparseTensor, torch.Tensor]:
        idx = batch_indices(cfg, step, len(samples))
        mine = range(info.rank * per_rank, (info.rank + 1) * per_rank)
        items = [training_item(samples[idx[k]], cfg, np.random.default_rng([cfg.seed, step, k])) for k in mine]
        x, y = collate(items)
        return x.to(device), y.to(device)

    def loss(model: torch.nn.Module, b: Tuple[SparseTensor, torch.Tensor]
             ) -> Tuple[torch.Tensor, Dict[str, float], Dict[str, Any]]:
        x, y = b
        logits = model(x).feats
        total = segmentation_loss(logits, y, weights)
        sc = scores_from_confusion(class_confusion(logits.detach().argmax(1), y))
        logs = {"loss": float(total.detach()), "miou": sc.miou, "acc": sc.accuracy}
        return total, logs, {"voxels": len(x)}

    return StepTask(
        name=TASK,
        build_model=lambda: snn.set_backend(SegmentationUNet(cfg.model), cfg.backend),
        # fused: one kernel over all weight tensors instead of torch's per-tensor loop, the CPU default
        # (benchmarks/bm_adamw.py: the same weights to 1.5e-8, a cheaper optimizer and training step)
        make_optimizer=lambda net: torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                                     fused=True),
        lr_at=lambda step: lr_at(cfg, step), batch=batch, loss=loss, config=cfg.to_dict(),
        extra_state={"data": {"voxel_size": float(voxel_size), "max_abs_tsdf": cfg.max_abs_tsdf,
                              "class_weights": None if w is None else w.tolist(),
                              "label_counts": counts.tolist()}},
        postfix=("loss", "miou"), not_plotted=("voxels",))


def held_out_samples(cfg: SegmentationTrainConfig) -> List[SegSample]:
    """The evaluation scenes: every scene of ``cfg.val_data``, else the "val" split of ``cfg.data``
    (empty when it has none)."""
    if cfg.val_data:
        ds = SegmentationDataset(cfg.val_data, None, cfg.max_abs_tsdf)
    else:
        ds = SegmentationDataset(cfg.data, None, cfg.max_abs_tsdf)
        if not ds.manifest.get("splits", {}).get("val"):
            return []
        ds = SegmentationDataset(cfg.data, "val", cfg.max_abs_tsdf)
    return [ds[i] for i in range(len(ds))]


def evaluate(model: SegmentationUNet, samples: Sequence[SegSample], cfg: Optional[SegmentationModelConfig] = None
             ) -> Dict[str, Any]:
    """Whole-scene voxel scores (``benchmark.voxel_scores_dict``: "miou" over classes present in the ground
    truth, "accuracy", "iou" [20] (None where absent), "present", "voxels", "confusion" int [20][20], rows =
    truth) and "scenes": {scene_id: {"miou", "accuracy", "voxels", "seconds"}}."""
    cfg = cfg or model.config
    total = np.zeros((len(SCANNET20_NAMES), len(SCANNET20_NAMES)), np.int64)
    per_scene = {}
    for s in samples:
        t0 = time.perf_counter()
        pred = predict_labels(model, s, cfg)
        secs = time.perf_counter() - t0
        conf = class_confusion(pred, s.labels)
        total += conf
        sc = voxel_scores_dict(scores_from_confusion(conf))
        per_scene[s.scene_id] = {"miou": sc["miou"], "accuracy": sc["accuracy"], "voxels": sc["voxels"],
                                 "seconds": round(secs, 4)}
    out = voxel_scores_dict(scores_from_confusion(total))
    out["class_names"] = list(SCANNET20_NAMES)
    out["scenes"] = per_scene
    return out


def train(cfg: SegmentationTrainConfig, resume: bool = True, progress: bool = True) -> Dict[str, float]:
    """Train (resuming from ``<cfg.out>/last.pt`` when it exists and ``resume``); then, with
    ``cfg.eval_at_end``, score the held-out scenes (:func:`held_out_samples`) with the checkpoint into
    ``<cfg.out>/metrics.json`` (process 0 only) and add ``val_miou`` to the returned last step's logs.
    Under torchrun, every process calls this."""
    t0 = time.perf_counter()
    logs = run_steps(lambda info, device: segmentation_task(cfg, info, device), cfg.loop_settings(), resume,
                     progress)
    if not cfg.eval_at_end or int(os.environ.get("RANK", "0")) != 0:
        return logs
    train_s = time.perf_counter() - t0
    samples = held_out_samples(cfg)
    if not samples:
        warnings.warn(f"no held-out scenes (no val split in {cfg.data} and no val_data): metrics.json not written; "
                      f"preprocess with --val-fraction > 0 or pass --val-data", stacklevel=2)
        return logs
    device = cfg.device
    if device.startswith("cuda") and "LOCAL_RANK" in os.environ:  # under torchrun: this process's GPU
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    model, model_cfg = load_model(os.path.join(cfg.out, "last.pt"), device)
    snn.set_backend(model, cfg.backend)
    threads = torch.get_num_threads()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    try:
        t1 = time.perf_counter()
        result = evaluate(model, samples, model_cfg)
        result["eval_seconds"] = round(time.perf_counter() - t1, 3)
    finally:
        torch.set_num_threads(threads)
    result["train_seconds"] = round(train_s, 3)
    result["steps"] = cfg.steps
    atomic_write_json(os.path.join(cfg.out, "metrics.json"), result)
    return {**logs, "val_miou": result["miou"]}

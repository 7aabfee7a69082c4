"""Training of the joint 3DMV network on the shared step loop (:func:`sparse3d.train.loop.run_steps`: resume,
Ctrl-C guard, checkpoints of task "threedmv", metrics.jsonl, loss.png), then the held-out voxel scores into
``<out>/metrics.json``.

A step's batch: ``batch_size`` boxes (``cfg.box`` voxels) of training scenes, each around a voxel of a
uniformly drawn class (as the segmentation U-Net trains); per box the ``cfg.views`` frames covering most of
its voxels (`sparse3d.ops.select_views`); the 2D net's features of those frames lifted into the box's voxels
(max over the views) *before* augmentation (the voxels' world positions), then the box is augmented as in
segmentation (rotation, flip, scale, colour jitter) and the lifted features follow their voxels. Every
random choice is a function of (seed, step, position in the batch). Single process (no DDP).
"""
from __future__ import annotations

import math
import os
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

import sparse3d.nn as snn
from sparse3d.tasks.segmentation.benchmark import class_confusion, scores_from_confusion
from sparse3d.tasks.segmentation.config import SegmentationTrainConfig
from sparse3d.tasks.segmentation.dataset import augment, collate, random_box, sample_features
from sparse3d.tasks.segmentation.loss import segmentation_loss
from sparse3d.tasks.threedmv.config import TASK, ThreeDMVTrainConfig
from sparse3d.tasks.threedmv.data import Scene, choose_views, lift_features, load_scenes
from sparse3d.tasks.threedmv.model import ThreeDMVNet
from sparse3d.tasks.threedmv.net2d import image_input
from sparse3d.train.checkpoint import load_checkpoint
from sparse3d.train.distributed import DistInfo
from sparse3d.train.loop import StepTask, run_steps
from sparse3d.utils.atomic_io import atomic_write_json


class ScaledAdamW(torch.optim.AdamW):
    """AdamW whose param groups may hold ``lr_scale``: a group steps with lr * lr_scale (the loop sets one lr
    for every group; the 2D net trained end to end takes a smaller one)."""

    def step(self, closure=None):  # type: ignore[override]
        saved = [g["lr"] for g in self.param_groups]
        for g in self.param_groups:
            g["lr"] = g["lr"] * g.get("lr_scale", 1.0)
        try:
            return super().step(closure)
        finally:
            for g, lr in zip(self.param_groups, saved):
                g["lr"] = lr


def lr_at(cfg: ThreeDMVTrainConfig, step: int) -> float:
    """cosine: from lr to lr / 100 at the last step; constant: lr."""
    if cfg.lr_schedule == "constant":
        return cfg.lr
    t = min(step / max(cfg.steps - 1, 1), 1.0)
    return cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t)))


def augment_config(cfg: ThreeDMVTrainConfig) -> SegmentationTrainConfig:
    """The segmentation settings `segmentation.dataset.augment` reads (rotation, scale, translation, colour
    jitter, features)."""
    return SegmentationTrainConfig(rotate=cfg.rotate, scale=list(cfg.scale), translate=cfg.translate,
                                   color_jitter=cfg.color_jitter, model=cfg.model.geometry())


def depth_threshold(cfg: ThreeDMVTrainConfig) -> Optional[float]:
    return cfg.depth_thresh if cfg.depth_thresh > 0 else None


def make_batch(scenes: Sequence[Scene], picks: Sequence[int], cfg: ThreeDMVTrainConfig,
               rngs: Sequence[np.random.Generator], train: bool = True) -> Dict[str, Any]:
    """A batch of boxes: {"x": SparseTensor of geometry features, "y": labels int64 [N], "images": float
    [V, 3, H, W] of every box's views (box order), "items": [(box sample, frames, views)], "order": int64 [N]
    (row of the lifted features, in lift order, of each voxel of x)}. ``train``: random boxes + augmentation."""
    geo = cfg.model.geometry()
    aug = augment_config(cfg)
    items, lift_items, images = [], [], []
    at = 0
    for k, (i, rng) in enumerate(zip(picks, rngs)):
        sc = scenes[i]
        box = random_box(sc.sample, cfg.box, rng, "class") if train else sc.sample
        feats = sample_features(box, geo).numpy()
        idx = np.arange(len(box), dtype=np.float32)[:, None] + at
        coords, labels = box.coords, box.labels
        if train and cfg.augment:
            coords, both, labels = augment(box.coords, np.concatenate([feats, idx], 1), box.labels, rng, aug)
            feats, idx = both[:, :-1], both[:, -1:]
        items.append((coords, feats, labels))
        at += len(box)
        if cfg.model.use_2d:
            views = choose_views(box, sc.frames, cfg.views, depth_threshold(cfg))
            lift_items.append((box, sc.frames, views))
            images.append(image_input(sc.frames.color[views]))
        lift_order = idx[:, 0].astype(np.int64)
        items[-1] = items[-1] + (lift_order,)
    x, y = collate([it[:3] for it in items])
    order = torch.from_numpy(np.concatenate([it[3] for it in items]))
    img = torch.cat(images) if images else None
    return {"x": x, "y": y, "images": img, "items": lift_items, "order": order}


def forward_batch(model: ThreeDMVNet, b: Dict[str, Any], cfg: ThreeDMVTrainConfig, device: torch.device
                  ) -> torch.Tensor:
    """Logits [N, num_classes] of a batch of :func:`make_batch` (2D features lifted when the model has them)."""
    x = b["x"].to(device)
    if not cfg.model.use_2d:
        return model(x).feats
    feats2d = model.features_2d(b["images"].to(device))
    lifted, _ = lift_features(feats2d, b["items"], depth_threshold(cfg))
    return model(x, lifted[b["order"].to(device)]).feats


def build_model(cfg: ThreeDMVTrainConfig) -> ThreeDMVNet:
    """The joint network, its 2D net loaded from ``cfg.net2d`` (when given and the model has a 2D stream)."""
    net = ThreeDMVNet(cfg.model, fix_2d=cfg.fix_2d)
    if cfg.model.use_2d and cfg.net2d:
        from sparse3d.tasks.threedmv.pretrain2d import load_net2d
        net2d = load_net2d(cfg.net2d)
        if net2d.config != cfg.model.net2d():
            raise ValueError(f"net2d {cfg.net2d!r}: its 2D net {net2d.config} differs from the model's "
                             f"{cfg.model.net2d()} (set model.widths2d / feat2d_channels to match)")
        if net.net2d is None:
            raise ValueError("the model has no 2D stream to load net2d into")
        net.net2d.load_state_dict(net2d.state_dict())
    return snn.set_backend(net, cfg.backend)


def threedmv_task(cfg: ThreeDMVTrainConfig, info: DistInfo, device: torch.device) -> StepTask:
    """The 3DMV task for the step loop; loads the training scenes of ``cfg.data`` with their frames."""
    if info.world_size != 1:
        raise ValueError(f"sparse3d train threedmv runs in one process, got {info.world_size} (torchrun)")
    scenes = load_scenes(cfg.data, "train", cfg.max_abs_tsdf, cfg.frame_step, cfg.depth_step, cfg.color_step,
                         cfg.label_tsv, with_labels=False)
    vs = {round(s.sample.voxel_size, 6) for s in scenes}
    if len(vs) != 1:
        raise ValueError(f"{cfg.data}: the training scenes have different voxel sizes {sorted(vs)}")
    voxel_size = scenes[0].sample.voxel_size
    cfg.model.voxel_size = float(voxel_size)

    def batch(step: int, info: DistInfo, device: torch.device) -> Dict[str, Any]:
        rng = np.random.default_rng([cfg.seed, step])
        picks = rng.choice(len(scenes), cfg.batch_size, replace=len(scenes) < cfg.batch_size).tolist()
        return make_batch(scenes, picks, cfg, [np.random.default_rng([cfg.seed, step, k]) for k in range(len(picks))])

    def loss(model: torch.nn.Module, b: Dict[str, Any]) -> Tuple[torch.Tensor, Dict[str, float], Dict[str, Any]]:
        logits = forward_batch(model, b, cfg, device)
        y = b["y"].to(device)
        total = segmentation_loss(logits, y)
        sc = scores_from_confusion(class_confusion(logits.detach().argmax(1), y))
        return total, {"loss": float(total.detach()), "miou": sc.miou, "acc": sc.accuracy}, {"voxels": len(y)}

    def optimizer(net: torch.nn.Module) -> torch.optim.Optimizer:
        n3 = [p for n, p in net.named_parameters() if not n.startswith("net2d.")]
        n2 = [p for n, p in net.named_parameters() if n.startswith("net2d.") and p.requires_grad]
        groups: List[Dict[str, Any]] = [{"params": n3}]
        if n2:
            groups.append({"params": n2, "lr_scale": cfg.lr_2d / cfg.lr})
        return ScaledAdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)

    return StepTask(name=TASK, build_model=lambda: build_model(cfg), make_optimizer=optimizer,
                    lr_at=lambda step: lr_at(cfg, step), batch=batch, loss=loss, config=cfg.to_dict(),
                    extra_state={"data": {"voxel_size": float(voxel_size), "max_abs_tsdf": cfg.max_abs_tsdf}},
                    postfix=("loss", "miou"), not_plotted=("voxels",))


def load_model(path: str, device: str | torch.device = "cpu") -> Tuple[ThreeDMVNet, ThreeDMVTrainConfig]:
    """(the joint network in eval mode with the checkpoint's weights, its training config)."""
    state = load_checkpoint(path, device, task=TASK, require=("model", "config"))
    try:
        cfg = ThreeDMVTrainConfig.from_dict(state["config"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"checkpoint {path!r}: its config cannot be read as a threedmv config ({e})") from e
    vs = (state.get("data") or {}).get("voxel_size")
    if vs is not None:
        cfg.model.voxel_size = float(vs)
    net = ThreeDMVNet(cfg.model, fix_2d=cfg.fix_2d)
    try:
        net.load_state_dict(state["model"])
    except RuntimeError as e:
        raise ValueError(f"checkpoint {path!r}: its weights do not fit the network of its config ({e})") from e
    snn.set_backend(net, cfg.backend)
    return net.to(device).eval(), cfg


def train(cfg: ThreeDMVTrainConfig, resume: bool = True, progress: bool = True) -> Dict[str, float]:
    """Train (resuming from ``<cfg.out>/last.pt``), then with ``eval_at_end`` score the held-out scenes
    (``cfg.val_data``) per voxel into ``<cfg.out>/metrics.json`` and add ``val_miou`` to the returned logs."""
    t0 = time.perf_counter()
    logs = run_steps(lambda info, device: threedmv_task(cfg, info, device), cfg.loop_settings(), resume, progress)
    if not cfg.eval_at_end or not cfg.val_data:
        return logs
    from sparse3d.tasks.threedmv.predict import evaluate_scenes
    train_s = time.perf_counter() - t0
    model, mcfg = load_model(os.path.join(cfg.out, "last.pt"), cfg.device)
    scenes = load_scenes(cfg.val_data, None, mcfg.max_abs_tsdf, mcfg.frame_step, mcfg.depth_step, mcfg.color_step,
                         mcfg.label_tsv, with_labels=False)
    result = evaluate_scenes(model, mcfg, scenes)
    result["train_seconds"] = round(train_s, 3)
    result["steps"] = cfg.steps
    atomic_write_json(os.path.join(cfg.out, "metrics.json"), result)
    return {**logs, "val_miou": result["miou"]}

"""Pre-training of the 3DMV 2D net on the rendered frames' per-pixel labels (`sparse3d train threedmv-2d`),
on the shared step loop (checkpoints of task "threedmv-2d"), then the held-out pixel scores into
``<out>/metrics.json``.

A step: ``batch_size`` frames drawn from every frame of the training scenes (function of (seed, step)), each
flipped left-right with probability 1/2 and given a brightness and per-channel shift N(0, color_jitter)
(the input is RGB / 255 - 0.5); loss: per-pixel cross-entropy (`net2d.pixel_loss`, 255 ignored), weighted
by class as ``class_weighting`` says (`segmentation.loss.class_weights` of the training frames' pixel counts).
"""
from __future__ import annotations

import math
import os
import time
from typing import Any, Dict, List, Tuple

import numpy as np
import torch

from data_tools.scannet.labels import SCANNET20_NAMES
from sparse3d.tasks.segmentation.benchmark import class_confusion, scores_from_confusion, voxel_scores_dict
from sparse3d.tasks.segmentation.loss import class_weights
from sparse3d.tasks.threedmv.config import TASK_2D, Net2DTrainConfig
from sparse3d.tasks.threedmv.data import label_lut
from sparse3d.tasks.threedmv.frames import SceneFrames, load_scene_frames
from sparse3d.tasks.threedmv.net2d import Net2D, Net2DConfig, image_input, pixel_labels, pixel_loss
from sparse3d.train.checkpoint import load_checkpoint
from sparse3d.train.distributed import DistInfo
from sparse3d.train.loop import StepTask, run_steps
from sparse3d.utils.atomic_io import atomic_write_json


def load_frames(root: str, split, cfg: Net2DTrainConfig) -> List[SceneFrames]:
    """The labelled frames of every whole-scene crop of ``root`` under ``split`` (None = all)."""
    from data_tools import split_crop_paths
    _, paths = split_crop_paths(root, split, f"make it with `sparse3d preprocess SCANS {root} --recipe segmentation`")
    lut = label_lut(cfg.label_tsv)
    out = [load_scene_frames(p, cfg.frame_step, 1, cfg.color_step, lut) for p in paths]
    for fr, p in zip(out, paths):
        if fr.color.shape[1] % 8 or fr.color.shape[2] % 8:
            raise ValueError(f"{p}: frames of {fr.color.shape[2]} x {fr.color.shape[1]} pixels (color_step "
                             f"{cfg.color_step}); the 2D net needs multiples of 8")
    return out


def _batch(frames: List[SceneFrames], cfg: Net2DTrainConfig, step: int) -> Tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng([cfg.seed, step])
    pool = [(s, f) for s, fr in enumerate(frames) for f in range(len(fr))]
    pick = rng.choice(len(pool), cfg.batch_size, replace=len(pool) < cfg.batch_size)
    imgs, labs = [], []
    for j in pick:
        s, f = pool[int(j)]
        c, lab = frames[s].color[f], frames[s].labels[f]  # type: ignore[index]
        if rng.random() < 0.5:
            c, lab = c[:, ::-1], lab[:, ::-1]
        x = image_input(c[None])[0]
        shift = rng.normal(0, cfg.color_jitter, 4) if cfg.color_jitter > 0 else np.zeros(4)
        imgs.append(x + torch.from_numpy((shift[0] + shift[1:]).astype(np.float32))[:, None, None])
        labs.append(torch.from_numpy(np.ascontiguousarray(lab).astype(np.int64)))
    return torch.stack(imgs), torch.stack(labs)


def lr_at(cfg: Net2DTrainConfig, step: int) -> float:
    """Cosine from lr to lr / 100 at the last step."""
    t = min(step / max(cfg.steps - 1, 1), 1.0)
    return float(cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t))))


def net2d_task(cfg: Net2DTrainConfig, info: DistInfo, device: torch.device) -> StepTask:
    frames = load_frames(cfg.data, "train", cfg)
    counts = np.zeros(cfg.model.num_classes, np.int64)
    for fr in frames:
        lab = fr.labels[fr.labels != 255].astype(np.int64)  # type: ignore[index]
        counts += np.bincount(lab, minlength=cfg.model.num_classes)[:cfg.model.num_classes]
    w = class_weights(counts, cfg.class_weighting)
    weights = None if w is None else torch.from_numpy(w).to(device)

    def batch(step: int, info: DistInfo, device: torch.device):
        x, y = _batch(frames, cfg, step)
        return x.to(device), y.to(device)

    def loss(model: torch.nn.Module, b) -> Tuple[torch.Tensor, Dict[str, float], Dict[str, Any]]:
        x, y = b
        logits, _ = model(x)
        total = pixel_loss(logits, y, weights)
        sc = scores_from_confusion(class_confusion(pixel_labels(logits.detach(), y.shape[1:]).flatten(), y.flatten()))
        return total, {"loss": float(total.detach()), "miou": sc.miou, "acc": sc.accuracy}, {}

    return StepTask(name=TASK_2D, build_model=lambda: Net2D(cfg.model),
                    make_optimizer=lambda net: torch.optim.AdamW(net.parameters(), lr=cfg.lr,
                                                                 weight_decay=cfg.weight_decay),
                    lr_at=lambda step: lr_at(cfg, step),
                    batch=batch, loss=loss, config=cfg.to_dict(), postfix=("loss", "miou"),
                    extra_state={"data": {"pixel_counts": counts.tolist(),
                                          "class_weights": None if w is None else w.tolist()}})


def load_net2d(path: str, device: str | torch.device = "cpu") -> Net2D:
    """The pre-trained 2D net of a `threedmv-2d` checkpoint, in eval mode."""
    state = load_checkpoint(path, device, task=TASK_2D, require=("model", "config"))
    try:
        cfg = Net2DConfig(**dict(state["config"]["model"]))
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"checkpoint {path!r}: no readable 2D net config ({e})") from e
    net = Net2D(cfg)
    try:
        net.load_state_dict(state["model"])
    except RuntimeError as e:
        raise ValueError(f"checkpoint {path!r}: its weights do not fit its 2D net config ({e})") from e
    return net.to(device).eval()


def evaluate_pixels(net: Net2D, frames: List[SceneFrames], chunk: int = 8) -> Dict[str, Any]:
    """Pixel scores of the 2D net over every labelled frame (voxel_scores_dict layout; "voxels" = pixels)."""
    total = np.zeros((len(SCANNET20_NAMES), len(SCANNET20_NAMES)), np.int64)
    net.eval()
    device = next(net.parameters()).device
    with torch.no_grad():
        for fr in frames:
            for i in range(0, len(fr), chunk):
                logits, _ = net(image_input(fr.color[i:i + chunk]).to(device))
                pred = pixel_labels(logits, fr.color.shape[1:3])
                truth = torch.from_numpy(fr.labels[i:i + chunk])  # type: ignore[index]
                total += class_confusion(pred.flatten(), truth.flatten())
    out = voxel_scores_dict(scores_from_confusion(total))
    out["class_names"] = list(SCANNET20_NAMES)
    return out


def train_2d(cfg: Net2DTrainConfig, resume: bool = True, progress: bool = True) -> Dict[str, float]:
    """Pre-train (resuming from ``<out>/last.pt``); then the held-out pixel scores of ``cfg.val_data`` into
    ``<out>/metrics.json`` (``val_miou`` in the returned logs)."""
    t0 = time.perf_counter()
    logs = run_steps(lambda info, device: net2d_task(cfg, info, device), cfg.loop_settings(), resume, progress)
    if not cfg.eval_at_end or not cfg.val_data:
        return logs
    train_s = time.perf_counter() - t0
    net = load_net2d(os.path.join(cfg.out, "last.pt"), cfg.device)
    result = evaluate_pixels(net, load_frames(cfg.val_data, None, cfg))
    result["train_seconds"] = round(train_s, 3)
    result["steps"] = cfg.steps
    atomic_write_json(os.path.join(cfg.out, "metrics.json"), result)
    return {**logs, "val_miou": result["miou"]}

"""A trained segmentation U-Net back from a checkpoint written by
:func:`sparse3d.tasks.segmentation.train.train` (format in sparse3d.train.checkpoint)::

    {"model": state_dict, "optimizer": ..., "step": int, "config": SegmentationTrainConfig.to_dict(),
     "data": {"voxel_size": metres, "max_abs_tsdf": voxels, "class_weights": [C] | None,
              "label_counts": [C]},
     ["scaler": GradScaler state (amp fp16)], "format_version": 2, "task": "segmentation"}
"""
from __future__ import annotations

from typing import Any, Dict, Tuple

import torch

from sparse3d.tasks.segmentation.config import SegmentationModelConfig, SegmentationTrainConfig
from sparse3d.tasks.segmentation.model import SegmentationUNet
from sparse3d.train.checkpoint import load_checkpoint

TASK = "segmentation"


def load_segmentation_checkpoint(path: str, map_location: str | torch.device = "cpu") -> Dict[str, Any]:
    """The checkpoint dict after its format, task ("segmentation") and entries were checked."""
    return load_checkpoint(path, map_location, task=TASK, require=("model", "config"))


def train_config(state: Dict[str, Any], path: str) -> SegmentationTrainConfig:
    """The training config of a loaded checkpoint; ``model.voxel_size`` = the training data's voxel size
    where the checkpoint records it."""
    try:
        cfg = SegmentationTrainConfig.from_dict(state["config"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"checkpoint {path!r}: its config cannot be read as a segmentation config ({e})") from e
    data = state.get("data") or {}
    if data.get("voxel_size") is not None:
        cfg.model.voxel_size = float(data["voxel_size"])
    return cfg


def load_model(path: str, device: str | torch.device = "cpu") -> Tuple[SegmentationUNet, SegmentationModelConfig]:
    """(SegmentationUNet in eval mode on ``device`` with the checkpoint's weights, its model config with
    ``voxel_size`` = the training data's)."""
    state = load_segmentation_checkpoint(path, device)
    cfg = train_config(state, path)
    net = SegmentationUNet(cfg.model)
    try:
        net.load_state_dict(state["model"])
    except RuntimeError as e:
        raise ValueError(f"checkpoint {path!r}: its weights do not fit the network of its config ({e})") from e
    return net.to(device).eval(), cfg.model

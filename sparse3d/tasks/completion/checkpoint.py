"""A trained completion network back from a checkpoint written by :func:`sparse3d.tasks.completion.train.train`.

Checkpoint entries of this task (sparse3d.train.checkpoint describes the format versions)::

    {"model": state_dict, "optimizer": ..., "step": int, "config": CompletionTrainConfig.to_dict(),
     "data": {"voxel_size": metres, "trunc": voxels},   # of the training samples (absent in early files)
     ["scaler": GradScaler state (amp fp16)], "format_version": 2, "task": "completion"}

Format-1 files (no ``format_version``; their ``config`` holds the network keys at the top level) load
too: their config is read with :meth:`CompletionTrainConfig.from_dict`.
"""
from __future__ import annotations

from typing import Any, Dict, Tuple

import torch

from sparse3d.tasks.completion.config import CompletionTrainConfig
from sparse3d.tasks.completion.model import CompletionNet
from sparse3d.train.checkpoint import load_checkpoint

TASK = "completion"


def load_completion_checkpoint(path: str, map_location: str | torch.device = "cpu") -> Dict[str, Any]:
    """The checkpoint dict (format 1 or 2) after its format, task and entries were checked."""
    return load_checkpoint(path, map_location, task=TASK, require=("model", "config"))


def load_model(path: str, map_location: str | torch.device = "cpu") -> Tuple[CompletionNet, CompletionTrainConfig]:
    """Rebuild a CompletionNet from a checkpoint's config and weights (eval mode) and return it with the
    training config. The training data's voxel size (where the checkpoint records it) goes into
    ``net.config.voxel_size`` (and ``cfg.model.voxel_size``)."""
    state = load_completion_checkpoint(path, map_location)
    try:
        cfg = CompletionTrainConfig.from_dict(state["config"], source=f"checkpoint {path!r}")
    except (TypeError, ValueError) as e:
        raise ValueError(f"checkpoint {path!r}: its config cannot be read as a completion config ({e})") from e
    data = state.get("data") or {}
    if data.get("voxel_size") is not None:
        cfg.model.voxel_size = float(data["voxel_size"])
    net = CompletionNet(cfg.model)
    net.load_state_dict(state["model"])
    return net.eval(), cfg

"""Checkpoints: a plain ``state_dict``-style dict, written atomically, loaded with weights_only=True.

    {"model": ..., "optimizer": ..., "step": int, "config": dict,
     "data": {"voxel_size": metres, "trunc": voxels}}   # of the training samples (absent in older files)
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional

import torch


def save_checkpoint(path: str, state: Dict[str, Any]) -> None:
    """Write ``state`` to ``path`` via a temp file and os.replace (never a half-written file)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str, map_location: str | torch.device = "cpu") -> Dict[str, Any]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"checkpoint {path!r} cannot be loaded ({e})") from e
    if not isinstance(state, dict) or "model" not in state:
        raise ValueError(f"checkpoint {path!r} is not a sparse3d checkpoint (no 'model' entry)")
    return state


def latest_checkpoint(folder: str) -> Optional[str]:
    p = os.path.join(folder, "last.pt")
    return p if os.path.isfile(p) else None


def load_model(path: str, map_location: str | torch.device = "cpu"):
    """Rebuild a CompletionNet from a checkpoint's config and weights (eval mode). The training data's
    voxel size (where the checkpoint records it) goes into ``net.config.voxel_size``."""
    from sparse3d.models.completion import CompletionNet
    from sparse3d.train.config import TrainConfig
    state = load_checkpoint(path, map_location)
    cfg = TrainConfig(**state["config"])
    mcfg = cfg.model_config()
    data = state.get("data") or {}
    if data.get("voxel_size") is not None:
        mcfg.voxel_size = float(data["voxel_size"])
    net = CompletionNet(mcfg)
    net.load_state_dict(state["model"])
    return net.eval(), cfg

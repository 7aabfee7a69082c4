"""Checkpoints of every trainer: a plain dict of tensors, numbers, strings, lists and dicts, written
atomically and loaded with ``weights_only=True``. Every checkpoint carries

    "format_version": FORMAT_VERSION   # the layout of the dict (below)
    "task": str                        # who wrote it: "completion", "gen2d", ...

Format versions:

* 1 (no ``format_version`` field; written before sparse3d grouped its tasks): completion checkpoints
  ``{"model", "optimizer", "step", "config" (flat TrainConfig fields), "data", ["scaler"]}``;
  gen2d ``{"modules", "optimizers", "history"}`` / ``{"modules", "epoch", "val"}``.
* 2: the same entries plus ``format_version`` and ``task``; a completion ``config`` holds its network
  settings under ``"model"`` (see sparse3d.tasks.completion.config). Each task migrates version 1.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional

import torch

from sparse3d.utils.atomic_io import atomic_torch_save

FORMAT_VERSION = 2
OLDEST_FORMAT_VERSION = 1  # checkpoints without a format_version field


def save_checkpoint(path: str, state: Dict[str, Any], task: str) -> None:
    """Write ``state`` plus ``format_version`` and ``task`` to ``path`` atomically (never half a file)."""
    if not isinstance(task, str) or not task:
        raise ValueError(f"task: expected a non-empty name such as 'completion', got {task!r}")
    atomic_torch_save(path, {**state, "format_version": FORMAT_VERSION, "task": task})


def format_version(state: Dict[str, Any]) -> int:
    """The format version of a loaded checkpoint (1 when it has no ``format_version`` field)."""
    return int(state.get("format_version", OLDEST_FORMAT_VERSION))


def load_checkpoint(path: str, map_location: str | torch.device = "cpu", task: Optional[str] = None,
                    require: tuple = ()) -> Dict[str, Any]:
    """Load a checkpoint (``weights_only=True``) and check its format version, its ``task`` (when both
    the file and ``task`` name one) and that it has the entries ``require``. Errors name the file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"checkpoint {path!r} cannot be loaded ({e})") from e
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {path!r} is not a sparse3d checkpoint (a {type(state).__name__}, "
                         "expected a dict)")
    version = state.get("format_version", OLDEST_FORMAT_VERSION)
    if not isinstance(version, int) or not OLDEST_FORMAT_VERSION <= version <= FORMAT_VERSION:
        raise ValueError(f"checkpoint {path!r} has format version {version!r}; this sparse3d reads format "
                         f"versions {OLDEST_FORMAT_VERSION} to {FORMAT_VERSION} (written by a newer sparse3d? "
                         "upgrade sparse3d to load it)")
    if task is not None and state.get("task", task) != task:
        raise ValueError(f"checkpoint {path!r} was written by task {state['task']!r}, expected a {task!r} checkpoint")
    missing = [k for k in require if k not in state]
    if missing:
        raise ValueError(f"checkpoint {path!r} (format version {version}) lacks the entries {missing}: "
                         f"not a {task or 'sparse3d'} checkpoint")
    return state


def latest_checkpoint(folder: str) -> Optional[str]:
    """``<folder>/last.pt`` when it exists."""
    p = os.path.join(folder, "last.pt")
    return p if os.path.isfile(p) else None

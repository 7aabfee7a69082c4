"""Options of one gen2d training run (shared by the CLI, the report and the tests).
``None`` means "the task's default"."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class TaskOptions:
    """out_dir: where checkpoints, PNGs and results.json go; levels: 2 or 17 (digit
    models); epochs, patience, max_minutes: stopping rules; batch_size, lr; hidden,
    layers: model size; n_train: training set size for synthetic data; seed; resume;
    progress: tqdm bars and per-epoch lines; samples: draw sample grids / clips."""

    out_dir: str = "runs/gen2d"
    levels: int = 2
    epochs: Optional[int] = None
    patience: Optional[int] = None
    max_minutes: Optional[float] = None
    batch_size: Optional[int] = None
    lr: Optional[float] = None
    hidden: Optional[int] = None
    layers: Optional[int] = None
    n_train: Optional[int] = None
    seed: int = 0
    resume: bool = False
    progress: bool = True
    samples: bool = True
    extra: dict = field(default_factory=dict)

    def get(self, name: str, default):
        v = getattr(self, name)
        return default if v is None else v

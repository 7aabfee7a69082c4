"""Training of the sliding-window baseline (sparse3d.tasks.segmentation.window_model) on the shared step loop
(:func:`sparse3d.train.loop.run_steps`: resume, Ctrl-C guard, checkpoints with task "segmentation-window",
DDP, metrics.jsonl, loss.png).

A step takes ``batch_size`` labelled columns of the training scenes (a function of (seed, step)), their
31 x 31 x 62 windows (rotated by multiples of 90 degrees about up and flipped, with ``augment``), and
minimises the cross entropy of the 62 x 20 column logits, ignoring label 255 (empty cells and unlabelled
voxels).

    cfg = load_config(None, {"data": "crops", "out": "runs/seg_window", "steps": 300})
    train(cfg)

Checkpoint entries: {"model", "optimizer", "step", "config": WindowTrainConfig.to_dict(),
"data": {"voxel_size"}, "format_version": 2, "task": "segmentation-window"}.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from data_tools.scannet.labels import IGNORE
from sparse3d.tasks.segmentation.window_data import WindowDataset, augment_windows, window_input
from sparse3d.tasks.segmentation.window_model import TASK, WindowModelConfig, WindowNet
from sparse3d.train.distributed import DistInfo
from sparse3d.train.config import from_mapping, layered_config
from sparse3d.train.loop import AMP_DTYPES, LoopSettings, StepTask, run_steps


@dataclass
class WindowTrainConfig:
    data: str = ""  # a sparse3d.crops dataset (whole-scene crops); its "train" split is used
    out: str = "runs/segmentation_window"  # last.pt, metrics.jsonl, loss.png, config.json
    init: str = ""  # start from this checkpoint's weights with a fresh optimizer
    seed: int = 0
    steps: int = 300
    batch_size: int = 32  # columns (windows) per step, global
    lr: float = 2e-3
    weight_decay: float = 1e-4
    lr_decay_at: List[float] = field(default_factory=lambda: [0.7, 0.9])  # fractions of steps, x0.3 each
    augment: bool = True
    max_abs_tsdf: float = 1.0  # near-surface voxels of the samples (voxels), as the sparse U-Net's
    checkpoint_every: int = 50
    log_every: int = 1
    device: str = "cpu"
    threads: int = 0
    amp: str = "off"
    model: WindowModelConfig = field(default_factory=WindowModelConfig)

    def __post_init__(self) -> None:
        if isinstance(self.model, Mapping):
            self.model = from_mapping(WindowModelConfig, self.model, "model", "model keys")
        if not isinstance(self.model, WindowModelConfig):
            raise TypeError(f"model must be a WindowModelConfig or a mapping of its fields, got {type(self.model).__name__}")
        if self.amp is False:  # YAML 1.1 reads an unquoted `amp: off` as false
            self.amp = "off"
        if self.amp not in AMP_DTYPES:
            raise ValueError(f"amp must be one of {sorted(AMP_DTYPES)}, got {self.amp!r}")
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps and batch_size must be >= 1, got {self.steps} and {self.batch_size}")
        if not self.max_abs_tsdf > 0:
            raise ValueError(f"max_abs_tsdf must be > 0 (voxels), got {self.max_abs_tsdf}")

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "WindowTrainConfig":
        return cls(**dict(d))

    def loop_settings(self) -> LoopSettings:
        return LoopSettings.of(self)


def load_config(path: Optional[str] = None, overrides: Optional[Dict[str, Any]] = None) -> WindowTrainConfig:
    """Defaults <- YAML file ``path`` <- ``overrides`` (None values ignored; ``model`` merged key by key).
    Unknown keys raise ValueError naming them."""
    return layered_config(WindowTrainConfig, WindowModelConfig, path, overrides)


def lr_at(cfg: WindowTrainConfig, step: int) -> float:
    """x0.3 at each fraction of ``lr_decay_at`` (stateless, so resuming is exact)."""
    return cfg.lr * 0.3 ** sum(step >= int(f * cfg.steps) for f in cfg.lr_decay_at)


def batch_indices(cfg: WindowTrainConfig, step: int, n: int) -> np.ndarray:
    """The global batch of ``step`` (indices into the dataset's columns): a function of (seed, step) only."""
    rng = np.random.default_rng([cfg.seed, step])
    return rng.choice(n, cfg.batch_size, replace=n < cfg.batch_size)


def window_loss(logits: torch.Tensor, labels: torch.Tensor) -> Tuple[torch.Tensor, Dict[str, float]]:
    """Cross entropy of logits float [B, 20, 62] against labels int64 [B, 62] (255 ignored); the loss is 0
    (no gradient) when every label is ignored. Logs: loss, acc (over labelled cells)."""
    valid = labels != IGNORE
    if not bool(valid.any()):
        return logits.sum() * 0.0, {"loss": 0.0, "acc": float("nan")}
    loss = F.cross_entropy(logits.float(), labels, ignore_index=IGNORE)
    acc = (logits.argmax(1)[valid] == labels[valid]).float().mean()
    return loss, {"loss": float(loss.detach()), "acc": float(acc)}


def window_task(cfg: WindowTrainConfig, info: DistInfo, device: torch.device) -> StepTask:
    """The sliding-window baseline for the step loop; loads the "train" split of ``cfg.data``."""
    ds = WindowDataset(cfg.data, "train", cfg.max_abs_tsdf)
    per_rank = cfg.batch_size // info.world_size

    def batch(step: int, info: DistInfo, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
        ids = batch_indices(cfg, step, len(ds))[info.rank * per_rank:(info.rank + 1) * per_rank]
        wins, labels = ds.batch(ids)
        if cfg.augment:
            wins = augment_windows(wins, np.random.default_rng([cfg.seed, step, info.rank]))
        return window_input(wins).to(device), torch.from_numpy(labels).to(device)

    def loss(model: torch.nn.Module, b: Tuple[torch.Tensor, torch.Tensor]
             ) -> Tuple[torch.Tensor, Dict[str, float], Dict[str, float]]:
        total, logs = window_loss(model(b[0]), b[1])
        return total, logs, {"labelled": float((b[1] != IGNORE).sum())}

    return StepTask(
        name=TASK, build_model=lambda: WindowNet(cfg.model),
        make_optimizer=lambda net: torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay),
        lr_at=lambda step: lr_at(cfg, step), batch=batch, loss=loss, config=cfg.to_dict(),
        extra_state={"data": {"voxel_size": float(ds.samples[0].voxel_size), "columns": int(len(ds)),
                              "scenes": len(ds.samples)}},
        postfix=("loss", "acc"), not_plotted=("labelled",))


def train(cfg: WindowTrainConfig, resume: bool = True, progress: bool = True) -> Dict[str, float]:
    """Train (resuming from ``<cfg.out>/last.pt`` when it exists and ``resume``); the last step's logs."""
    if not cfg.data:
        raise ValueError("data must name a sparse3d.crops dataset folder, got ''")
    return run_steps(lambda info, device: window_task(cfg, info, device), cfg.loop_settings(), resume, progress)

"""Training configuration of scene completion: a dataclass whose defaults are documented in
configs/completion_default.yaml; YAML files override any subset of fields."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, List, Optional

import torch
import yaml


@dataclass
class TrainConfig:
    data: str = ""  # folder of training samples (manifest.json + *.npz)
    out: str = "runs/completion"  # checkpoints, metrics.jsonl, loss.png
    init: str = ""  # start from this checkpoint's weights (fine-tuning); optimizer starts fresh
    seed: int = 0
    steps: int = 300
    batch_size: int = 4  # global batch; each DDP process takes batch_size / world_size
    lr: float = 2e-3
    weight_decay: float = 0.0
    lr_decay_at: List[float] = field(default_factory=lambda: [0.7, 0.9])  # fractions of steps, x0.3 each
    augment: bool = True
    frontier: bool = True  # add unobserved frontier voxels to the input
    occ_thresh: float = 1.0  # |tsdf| < occ_thresh (voxels) = occupied
    loss_occupancy: float = 1.0
    loss_distance: float = 1.0
    log_l1: bool = True
    checkpoint_every: int = 50
    log_every: int = 1
    device: str = "cpu"  # "cpu", "cuda", "cuda:1"; under torchrun, cuda uses LOCAL_RANK
    backend: str = "native"  # sparse conv backend
    channels: List[int] = field(default_factory=lambda: [16, 32, 64])
    grow_steps: int = 3
    coarse_dense: bool = False
    blocks: int = 1
    trunc: float = 3.0
    threads: int = 0  # torch.set_num_threads (0 = leave torch's default)
    amp: str = "off"  # mixed precision: "off", "bf16" (autocast) or "fp16" (autocast + gradient scaling)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def model_config(self):
        from sparse3d.models.completion import CompletionConfig
        return CompletionConfig(channels=tuple(self.channels), grow_steps=self.grow_steps, blocks=self.blocks,
                                coarse_dense=self.coarse_dense,
                                trunc=self.trunc)


# TrainConfig.amp -> the autocast dtype of the forward pass and the loss (None: float32 throughout)
AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def load_config(path: Optional[str] = None, overrides: Optional[Dict[str, Any]] = None) -> TrainConfig:
    """Defaults <- YAML file ``path`` <- ``overrides`` (None values ignored). Unknown keys raise."""
    values: Dict[str, Any] = {}
    if path:
        try:
            with open(path) as f:
                loaded = yaml.safe_load(f) or {}
        except OSError as e:
            raise ValueError(f"config file {path!r} cannot be read ({e})") from e
        if not isinstance(loaded, dict):
            raise ValueError(f"config file {path!r} must hold a mapping, got {type(loaded).__name__}")
        values.update(loaded)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown config keys {unknown}; expected a subset of {sorted(known)}")
    if values.get("amp") is False:  # YAML 1.1 reads an unquoted `amp: off` as false
        values["amp"] = "off"
    cfg = TrainConfig(**values)
    if cfg.amp not in AMP_DTYPES:
        raise ValueError(f"amp must be one of {sorted(AMP_DTYPES)}, got {cfg.amp!r}")
    if cfg.steps < 1 or cfg.batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {cfg.steps} and {cfg.batch_size}")
    return cfg

"""Training configuration of scene completion: :class:`CompletionTrainConfig` holds the network's
:class:`~sparse3d.tasks.completion.model.CompletionConfig` under ``model`` and the training settings
beside it. Defaults are documented in configs/completion_default.yaml; a YAML file overrides any
subset of fields (``model:`` as a nested section)::

    cfg = load_config("configs/completion_default.yaml", {"steps": 100, "model": {"channels": [8, 16, 32]}})
    cfg.model.channels, cfg.steps, cfg.loop_settings()

The network keys of older configs (``channels``, ``grow_steps``, ``blocks``, ``coarse_dense``,
``trunc`` at the top level) are still read: they are moved under ``model`` with a FutureWarning
naming the file and the keys.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional


from sparse3d.tasks.completion.model import CompletionConfig
from sparse3d.train.config import from_mapping, layered_config
from sparse3d.train.loop import AMP_DTYPES, LoopSettings

# top-level keys of format-1 configs that now live under `model:`
FLAT_MODEL_KEYS = ("channels", "grow_steps", "blocks", "coarse_dense", "trunc")
BACKENDS = ("native", "torch", "spconv")


@dataclass
class CompletionTrainConfig:
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
    backend: str = "native"  # sparse conv backend: native | torch | spconv
    threads: int = 0  # torch.set_num_threads (0 = leave torch's default)
    amp: str = "off"  # mixed precision: "off", "bf16" (autocast) or "fp16" (autocast + gradient scaling)
    cache_mib: float = 1024  # decoded training crops kept in memory, MiB (0: decode each crop on every step)
    val_every: int = 250  # steps between validations on the data's val split (0 = none); best.pt = best val IoU
    val_crops: int = 8  # validation crops (evenly spaced over the val split)
    model: CompletionConfig = field(default_factory=CompletionConfig)  # the network

    def __post_init__(self) -> None:
        if isinstance(self.model, Mapping):
            self.model = from_mapping(CompletionConfig, self.model, "model", "model keys")
        if not isinstance(self.model, CompletionConfig):
            raise TypeError(f"model: expected a CompletionConfig or a mapping of its fields, "
                            f"got {type(self.model).__name__}")
        if self.amp is False:  # YAML 1.1 reads an unquoted `amp: off` as false
            self.amp = "off"
        if self.amp not in AMP_DTYPES:
            raise ValueError(f"amp must be one of {sorted(AMP_DTYPES)}, got {self.amp!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {list(BACKENDS)}, got {self.backend!r}")
        if self.val_every < 0 or self.val_crops < 1:
            raise ValueError(f"val_every must be >= 0 and val_crops >= 1, got {self.val_every} and {self.val_crops}")
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps and batch_size must be >= 1, got {self.steps} and {self.batch_size}")

    def to_dict(self) -> Dict[str, Any]:
        """Plain types only (a checkpoint's ``config``): ``model`` as a nested dict."""
        d = asdict(self)
        d["model"] = self.model.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "config") -> "CompletionTrainConfig":
        """The inverse of :meth:`to_dict`; also reads the flat layout of older configs and checkpoints
        (network keys at the top level; moved under ``model`` without a warning: ``source`` is a file
        the user did not write by hand)."""
        return cls(**_nest(dict(d), source, warn=False))

    def loop_settings(self) -> LoopSettings:
        """The settings of :func:`sparse3d.train.loop.run_steps`."""
        return LoopSettings.of(self)


def _nest(values: Dict[str, Any], source: str, warn: bool) -> Dict[str, Any]:
    """Move format-1 top-level network keys under ``model`` (a FutureWarning with ``warn``)."""
    flat = [k for k in FLAT_MODEL_KEYS if k in values]
    if flat:
        model = dict(values.get("model") or {})
        both = [k for k in flat if k in model]
        if both:
            raise ValueError(f"{source}: {both} given both at the top level and under model:; keep only model:")
        if warn:
            warnings.warn(f"{source}: the network keys {flat} belong under `model:` now (read as model.{flat[0]} "
                          "etc.); the top-level form will be removed", FutureWarning, stacklevel=3)
        model.update({k: values.pop(k) for k in flat})
        values["model"] = model
    return values


def _nest_source(values: Dict[str, Any], source: str) -> Dict[str, Any]:
    """:func:`_nest` of a hand-written source (a YAML file, command-line overrides): warns."""
    return _nest(values, source, warn=True)


def load_config(path: Optional[str] = None, overrides: Optional[Dict[str, Any]] = None) -> CompletionTrainConfig:
    """Defaults <- YAML file ``path`` <- ``overrides`` (None values ignored; a ``model`` mapping is merged
    key by key). Unknown keys raise ValueError naming them."""
    return layered_config(CompletionTrainConfig, CompletionConfig, path, overrides, _nest_source)

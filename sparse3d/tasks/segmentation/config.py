"""Configuration of the segmentation U-Net: :class:`SegmentationModelConfig` (the network and its input
features) and :class:`SegmentationTrainConfig` (training, holding the network's config under ``model``).
Defaults are documented in configs/segmentation_default.yaml; a YAML file overrides any subset of fields
(``model:`` as a nested section)::

    cfg = load_config("configs/segmentation_default.yaml", {"steps": 100, "model": {"widths": [16, 32]}})
    cfg.model.widths, cfg.steps, cfg.loop_settings()
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple


from sparse3d.train.config import from_mapping, layered_config
from sparse3d.train.loop import AMP_DTYPES, LoopSettings

NUM_CLASSES = 20  # ScanNet-20 benchmark classes (data_tools.scannet.labels.SCANNET20_NAMES)
IGNORE = 255  # label of voxels without a benchmark class
# input feature groups and their channels, in the order sample_features concatenates them
FEATURE_CHANNELS = {"color": 3, "height": 1, "normals": 3, "tsdf": 1}
BACKENDS = ("native", "torch", "spconv")
CLASS_WEIGHTING = ("none", "median_freq", "inv_log")
LR_SCHEDULES = ("cosine", "constant")
ROTATIONS = ("any", "right", "none")
NORMS = ("batch", "sample")
BOX_CENTRES = ("class", "voxel")


@dataclass
class SegmentationModelConfig:
    """The network (see :class:`sparse3d.tasks.segmentation.model.SegmentationUNet`).

    in_features: input feature groups, a subset of ``FEATURE_CHANNELS`` ("color" = RGB / 255 - 0.5;
    "height" = metres above the floor: the up-aligned world's z = 0 (the floor of ScanNet and synthetic rooms), or
    the sample's ``floor_z`` (``predict segmentation --floor lowest``);
    "normals" = unsigned surface normal (z >= 0) of the voxel neighbourhood; "tsdf" = fused distance
    / 3 voxels), concatenated in that order;
    widths: channels per level, finest first (len = levels; each level halves the resolution);
    blocks: residual blocks per level in the encoder and in the decoder;
    norm: "batch" (BatchNorm: batch statistics in training, running averages at prediction) or "sample"
    (``sparse3d.nn.SampleNorm``: each scene or box normalised over its own voxels, in training and at prediction
    alike; for training on whole scenes, where BatchNorm's running averages do not fit any one scene);
    voxel_size: metres per voxel of the training data (set by training / load_model; None = not recorded,
    not a network parameter: prediction checks a sample against it)."""

    in_features: Tuple[str, ...] = ("color", "height")
    widths: Tuple[int, ...] = (16, 32, 64, 96, 128)
    blocks: int = 1
    norm: str = "sample"
    num_classes: int = NUM_CLASSES
    voxel_size: Optional[float] = None

    def __post_init__(self) -> None:
        feats = self.in_features
        if isinstance(feats, str):
            feats = tuple(f for f in feats.replace(",", "+").split("+") if f)
        feats = tuple(feats)
        bad = [f for f in feats if f not in FEATURE_CHANNELS]
        if not feats or bad or len(set(feats)) != len(feats):
            raise ValueError(f"in_features must be a non-empty list of distinct names from "
                             f"{list(FEATURE_CHANNELS)}, got {list(feats)}")
        self.in_features = tuple(f for f in FEATURE_CHANNELS if f in feats)  # canonical order
        try:
            self.widths = tuple(int(w) for w in self.widths)
        except (TypeError, ValueError):
            raise ValueError(f"widths must be a list of ints >= 1, got {self.widths!r}") from None
        if not self.widths or any(w < 1 for w in self.widths):
            raise ValueError(f"widths must be a non-empty list of ints >= 1 (finest level first), "
                             f"got {list(self.widths)}")
        if isinstance(self.blocks, bool) or not isinstance(self.blocks, int) or self.blocks < 1:
            raise ValueError(f"blocks must be an int >= 1, got {self.blocks!r}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {list(NORMS)}, got {self.norm!r}")
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {self.num_classes!r}")
        if self.voxel_size is not None and not float(self.voxel_size) > 0:
            raise ValueError(f"voxel_size must be > 0 metres or None, got {self.voxel_size}")

    @property
    def in_channels(self) -> int:
        """F, the channels of :func:`sparse3d.tasks.segmentation.dataset.sample_features`."""
        return sum(FEATURE_CHANNELS[f] for f in self.in_features)

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["in_features"] = list(self.in_features)
        d["widths"] = list(self.widths)
        return d


@dataclass
class SegmentationTrainConfig:
    """Training settings (documented in configs/segmentation_default.yaml); the network under ``model``."""

    data: str = ""  # sparse3d.crops dataset of whole scenes: its "train" split is trained on
    val_data: str = ""  # held-out scenes (every split of this dataset); "" = the "val" split of data, if any
    out: str = "runs/segmentation"  # last.pt, metrics.jsonl, loss.png, config.json, metrics.json
    init: str = ""  # start from this checkpoint's weights (fine-tuning); optimizer starts fresh
    seed: int = 0
    steps: int = 4000
    batch_size: int = 1  # global batch of boxes (whole scenes); each DDP process takes batch_size / world_size
    lr: float = 0.01
    lr_schedule: str = "cosine"  # cosine (to 1% of lr at the last step) | constant
    weight_decay: float = 1e-4
    box: List[int] = field(default_factory=lambda: [0, 0, 0])  # training box, voxels X, Y, Z; [0,0,0] = whole scenes
    box_centre: str = "class"  # box around a voxel of a uniformly drawn class present in the scene | "voxel"
    augment: bool = True
    rotate: str = "right"  # about up: right (k*90 deg, exact) | any (centres rotated, re-quantized) | none
    scale: List[float] = field(default_factory=lambda: [0.9, 1.1])  # uniform scale range
    translate: int = 8  # boxes start at a random 0..translate-1 voxels per axis (the alignment of the stride-2 grids)
    color_jitter: float = 0.05  # std of per-box brightness and per-channel shifts (colour in [-0.5, 0.5])
    class_weighting: str = "none"  # none | median_freq | inv_log (from the training scenes' label counts)
    max_abs_tsdf: float = 1.0  # near-surface voxels kept: |tsdf| <= this (voxels)
    checkpoint_every: int = 100
    log_every: int = 1
    eval_at_end: bool = True  # mIoU on the held-out scenes into <out>/metrics.json
    device: str = "cpu"
    backend: str = "native"
    threads: int = 0
    amp: str = "off"
    model: SegmentationModelConfig = field(default_factory=SegmentationModelConfig)

    def __post_init__(self) -> None:
        if isinstance(self.model, Mapping):
            self.model = from_mapping(SegmentationModelConfig, self.model, "model", "model keys")
        if not isinstance(self.model, SegmentationModelConfig):
            raise TypeError(f"model must be a SegmentationModelConfig or a mapping of its fields, "
                            f"got {type(self.model).__name__}")
        if self.amp is False:  # YAML 1.1 reads an unquoted `amp: off` as false
            self.amp = "off"
        for name, choices in (("amp", tuple(AMP_DTYPES)), ("backend", BACKENDS),
                              ("class_weighting", CLASS_WEIGHTING), ("lr_schedule", LR_SCHEDULES),
                              ("rotate", ROTATIONS), ("box_centre", BOX_CENTRES)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {list(choices)}, got {getattr(self, name)!r}")
        for name in ("steps", "batch_size", "checkpoint_every", "log_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ValueError(f"lr must be > 0 and weight_decay >= 0, got {self.lr} and {self.weight_decay}")
        self.box = [int(b) for b in self.box]
        if len(self.box) != 3 or not (all(b == 0 for b in self.box) or all(b >= 8 for b in self.box)):
            raise ValueError(f"box must be 3 ints >= 8 (voxels X, Y, Z) or [0, 0, 0] (whole scenes), got {self.box}")
        self.scale = [float(s) for s in self.scale]
        if len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"scale must be [low, high] with 0 < low <= high, got {self.scale}")
        if isinstance(self.translate, bool) or not isinstance(self.translate, int) or self.translate < 0:
            raise ValueError(f"translate must be an int >= 0 (voxels), got {self.translate!r}")
        if self.color_jitter < 0:
            raise ValueError(f"color_jitter must be >= 0, got {self.color_jitter}")
        if not self.max_abs_tsdf > 0:
            raise ValueError(f"max_abs_tsdf must be > 0 voxels, got {self.max_abs_tsdf}")

    def to_dict(self) -> Dict[str, Any]:
        """Plain types only (a checkpoint's ``config``): ``model`` as a nested dict."""
        d = asdict(self)
        d["model"] = self.model.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SegmentationTrainConfig":
        """The inverse of :meth:`to_dict`. A ``model`` without ``norm`` (written before that option existed,
        when every U-Net used BatchNorm) gets norm "batch", not today's default."""
        d = dict(d)
        if isinstance(d.get("model"), Mapping) and "norm" not in d["model"]:
            d["model"] = dict(d["model"], norm="batch")
        return cls(**d)

    def loop_settings(self) -> LoopSettings:
        """The settings of :func:`sparse3d.train.loop.run_steps`."""
        return LoopSettings.of(self)


def load_config(path: Optional[str] = None, overrides: Optional[Dict[str, Any]] = None) -> SegmentationTrainConfig:
    """Defaults <- YAML file ``path`` <- ``overrides`` (None values ignored; a ``model`` mapping is merged
    key by key). Unknown keys raise ValueError naming them and the file."""
    return layered_config(SegmentationTrainConfig, SegmentationModelConfig, path, overrides)

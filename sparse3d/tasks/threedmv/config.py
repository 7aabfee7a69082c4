"""Configuration of 3DMV: the joint network (:class:`ThreeDMVModelConfig`), its training
(:class:`ThreeDMVTrainConfig`, defaults in configs/threedmv_default.yaml) and the 2D net's pre-training
(:class:`Net2DTrainConfig`). A YAML file overrides any subset of fields (``model:`` nested)::

    cfg = load_config("configs/threedmv_default.yaml", {"views": 5, "fix_2d": False})
    cfg2d = load_2d_config(None, {"data": "crops", "steps": 200})
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from sparse3d.tasks.segmentation.config import (BACKENDS, CLASS_WEIGHTING, FEATURE_CHANNELS, LR_SCHEDULES, ROTATIONS,
                                                SegmentationModelConfig)
from sparse3d.tasks.threedmv.net2d import Net2DConfig
from sparse3d.train.config import from_mapping, layered_config
from sparse3d.train.loop import AMP_DTYPES, LoopSettings

TASK = "threedmv"
TASK_2D = "threedmv-2d"


@dataclass
class JointUNetConfig(SegmentationModelConfig):
    """A segmentation U-Net config whose input has ``extra_channels`` (the lifted 2D features) after the
    geometry groups of ``in_features``: the U-Net's first conv reads [geometry, lifted] concatenated."""

    extra_channels: int = 0

    @property
    def in_channels(self) -> int:
        return sum(FEATURE_CHANNELS[f] for f in self.in_features) + int(self.extra_channels)


@dataclass
class ThreeDMVModelConfig:
    """in_features: the voxel (3D) input groups of the segmentation U-Net (FEATURE_CHANNELS: "height",
    "normals", "color", "tsdf"); widths / blocks: the U-Net; use_2d: lift 2D features (False = a 3D-only
    network); widths2d / feat2d_channels: the 2D net (must match the pre-trained 2D checkpoint);
    num_classes; voxel_size: set from the training data."""

    in_features: Tuple[str, ...] = ("height", "normals")
    widths: Tuple[int, ...] = (16, 32, 48, 64)
    blocks: int = 1
    use_2d: bool = True
    widths2d: Tuple[int, int, int] = (16, 32, 64)
    feat2d_channels: int = 32
    num_classes: int = 20
    voxel_size: Optional[float] = None

    def __post_init__(self) -> None:
        self.unet()  # checks in_features, widths, blocks, num_classes, voxel_size
        self.in_features = self.unet().in_features
        self.widths = tuple(int(w) for w in self.widths)
        self.net2d()  # checks widths2d, feat2d_channels
        self.widths2d = tuple(int(w) for w in self.widths2d)  # type: ignore[assignment]

    def unet(self) -> JointUNetConfig:
        """The config of the joint U-Net (lifted channels = feat2d_channels when use_2d)."""
        return JointUNetConfig(in_features=self.in_features, widths=self.widths, blocks=self.blocks, norm="batch",
                               num_classes=self.num_classes, voxel_size=self.voxel_size,
                               extra_channels=self.feat2d_channels if self.use_2d else 0)

    def geometry(self) -> SegmentationModelConfig:
        """A segmentation config holding only the voxel input groups (for sample_features / augment)."""
        return SegmentationModelConfig(in_features=self.in_features, widths=self.widths, blocks=self.blocks,
                                       norm="batch", num_classes=self.num_classes, voxel_size=self.voxel_size)

    def net2d(self) -> Net2DConfig:
        return Net2DConfig(widths=tuple(self.widths2d), feat_channels=self.feat2d_channels,  # type: ignore[arg-type]
                           num_classes=self.num_classes)

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        for k in ("in_features", "widths", "widths2d"):
            d[k] = list(d[k])
        return d


@dataclass
class ThreeDMVTrainConfig:
    """Training settings of `sparse3d train threedmv` (documented in configs/threedmv_default.yaml)."""

    data: str = ""
    val_data: str = ""
    out: str = "runs/threedmv"
    init: str = ""
    net2d: str = ""  # pre-trained 2D net checkpoint (`sparse3d train threedmv-2d`); "" = random 2D weights
    views: int = 3
    fix_2d: bool = True
    seed: int = 0
    steps: int = 300
    batch_size: int = 2
    lr: float = 0.01
    lr_2d: float = 0.001  # learning rate of the 2D net when trained end to end (fix_2d false)
    lr_schedule: str = "cosine"
    weight_decay: float = 1e-4
    box: List[int] = field(default_factory=lambda: [32, 32, 64])
    augment: bool = True
    rotate: str = "right"
    scale: List[float] = field(default_factory=lambda: [0.9, 1.1])
    translate: int = 8  # boxes start at a random 0..translate-1 voxels per axis (segmentation.dataset.augment)
    color_jitter: float = 0.05
    max_abs_tsdf: float = 1.0
    frame_step: int = 1
    depth_step: int = 2
    color_step: int = 2
    depth_thresh: float = 0.0  # metres; 0 = the voxel size
    label_tsv: str = ""  # scannetv2-labels.combined.tsv for the 2D label ids; "" = the synthetic rooms' table
    checkpoint_every: int = 100
    log_every: int = 1
    eval_at_end: bool = True
    device: str = "cpu"
    backend: str = "native"
    threads: int = 0
    amp: str = "off"
    model: ThreeDMVModelConfig = field(default_factory=ThreeDMVModelConfig)

    def __post_init__(self) -> None:
        if isinstance(self.model, Mapping):
            self.model = from_mapping(ThreeDMVModelConfig, self.model, "model", "model keys")
        if not isinstance(self.model, ThreeDMVModelConfig):
            raise TypeError(f"model must be a ThreeDMVModelConfig or a mapping of its fields, "
                            f"got {type(self.model).__name__}")
        if self.amp is False:
            self.amp = "off"
        for name, choices in (("amp", tuple(AMP_DTYPES)), ("backend", BACKENDS), ("lr_schedule", LR_SCHEDULES),
                              ("rotate", ROTATIONS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {list(choices)}, got {getattr(self, name)!r}")
        for name in ("steps", "batch_size", "checkpoint_every", "log_every", "views", "frame_step", "depth_step",
                     "color_step"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        if not self.lr > 0 or not self.lr_2d > 0 or self.weight_decay < 0:
            raise ValueError(f"lr and lr_2d must be > 0 and weight_decay >= 0, got {self.lr}, {self.lr_2d} and "
                             f"{self.weight_decay}")
        if isinstance(self.translate, bool) or not isinstance(self.translate, int) or self.translate < 0:
            raise ValueError(f"translate must be an int >= 0 (voxels), got {self.translate!r}")
        self.box = [int(b) for b in self.box]
        if len(self.box) != 3 or min(self.box) < 8:
            raise ValueError(f"box must be 3 ints >= 8 (voxels X, Y, Z), got {self.box}")
        self.scale = [float(s) for s in self.scale]
        if len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"scale must be [low, high] with 0 < low <= high, got {self.scale}")
        if self.color_jitter < 0 or self.depth_thresh < 0 or not self.max_abs_tsdf > 0:
            raise ValueError(f"color_jitter and depth_thresh must be >= 0 and max_abs_tsdf > 0, got "
                             f"{self.color_jitter}, {self.depth_thresh} and {self.max_abs_tsdf}")
        if self.model.use_2d and self.fix_2d and not self.net2d:
            raise ValueError("fix_2d needs a pre-trained 2D net: pass --net2d CKPT (`sparse3d train threedmv-2d`) "
                             "or train it end to end (--no-fix-2d)")

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ThreeDMVTrainConfig":
        return cls(**dict(d))

    def loop_settings(self) -> LoopSettings:
        return LoopSettings.of(self)


@dataclass
class Net2DTrainConfig:
    """Pre-training of the 2D net on the rendered frames' label images (`sparse3d train threedmv-2d`):
    batch_size images per step drawn from the frames of the training scenes, horizontal flips and
    brightness jitter; the held-out pixel mIoU into <out>/metrics.json."""

    data: str = ""
    val_data: str = ""
    out: str = "runs/threedmv_2d"
    init: str = ""
    seed: int = 0
    steps: int = 400
    batch_size: int = 8
    lr: float = 0.005
    weight_decay: float = 1e-4
    frame_step: int = 1
    color_step: int = 2
    label_tsv: str = ""
    color_jitter: float = 0.1
    class_weighting: str = "none"  # none | median_freq | inv_log (segmentation.loss.class_weights of the pixel counts)
    checkpoint_every: int = 100
    log_every: int = 1
    eval_at_end: bool = True
    device: str = "cpu"
    threads: int = 0
    amp: str = "off"
    model: Net2DConfig = field(default_factory=Net2DConfig)

    def __post_init__(self) -> None:
        if isinstance(self.model, Mapping):
            self.model = from_mapping(Net2DConfig, self.model, "model", "model keys")
        if self.amp is False:
            self.amp = "off"
        if self.amp not in AMP_DTYPES:
            raise ValueError(f"amp must be one of {sorted(AMP_DTYPES)}, got {self.amp!r}")
        if self.class_weighting not in CLASS_WEIGHTING:
            raise ValueError(f"class_weighting must be one of {list(CLASS_WEIGHTING)}, got {self.class_weighting!r}")
        for name in ("steps", "batch_size", "checkpoint_every", "log_every", "frame_step", "color_step"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        if not self.lr > 0 or self.weight_decay < 0 or self.color_jitter < 0:
            raise ValueError(f"lr must be > 0, weight_decay and color_jitter >= 0, got {self.lr}, "
                             f"{self.weight_decay} and {self.color_jitter}")

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        return d

    def loop_settings(self) -> LoopSettings:
        return LoopSettings.of(self)


def load_config(path: Optional[str] = None, overrides: Optional[Dict[str, Any]] = None) -> ThreeDMVTrainConfig:
    """Defaults <- YAML ``path`` <- ``overrides`` (None values ignored; ``model`` merged key by key)."""
    return layered_config(ThreeDMVTrainConfig, ThreeDMVModelConfig, path, overrides)


def load_2d_config(path: Optional[str] = None, overrides: Optional[Dict[str, Any]] = None) -> Net2DTrainConfig:
    """The 2D pre-training config: defaults <- YAML ``path`` <- ``overrides``."""
    return layered_config(Net2DTrainConfig, Net2DConfig, path, overrides)

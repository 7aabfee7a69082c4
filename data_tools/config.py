"""`CropConfig`: every parameter of a preprocessing run (kept import-light: the CLI reads it to build --help).

Named presets ("recipes") are in `data_tools.recipes`; what each field does in `data_tools.scene_crops`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Tuple

CHOICES = {"target": ("fusion", "mesh"), "input_frames": ("drop", "subset", "all"), "known": ("visibility", "fused"),
           "placement": ("grid", "random", "whole")}


@dataclass
class CropConfig:
    """Preprocessing parameters (all lengths in metres unless named *_voxels); presets: `data_tools.recipes`.

    recipe: the preset's name, recorded in the dataset ("labels", "completion", "segmentation" or "custom");
    voxel_size: level-0 voxel edge; trunc_voxels: tsdf truncation (voxels); crop_size / crop_stride:
    crop extent and grid step (voxels, x y z); n_levels: hierarchy levels (crop_size must be divisible
    by 2**(n_levels-1)); frame_skip: use every k-th frame; depth_max: ignore depth beyond it;
    target: "fusion" (all frames) or "mesh" (signed distance to the mesh); seed: every random choice
    (combined with the scene id, `data_tools.frames.scene_seed`).
    input_frames: "drop" (runs of drop_chunk frames dropped with probability drop_prob), "subset"
    (`segments` contiguous runs covering input_fraction of the frames) or "all" (every target frame: the
    input is the complete scan, input == target voxels; segmentation).
    known: "visibility" (in a camera frustum, at most trunc behind the depth) or "fused" (voxels the
    fusion wrote, weight > 0).
    placement: "grid" (every crop_stride; crops with < min_target_voxels / min_input_voxels are
    skipped), "random" (crops_per_scene crops with >= min_surface target surface voxels) or "whole"
    (one crop covering the scene, dims a multiple of pad_to).
    target_fraction: < 1 fuses the target from a seeded random subset of that fraction of the frames and
    draws the input from those (self-supervised pairs without the complete scan); pairs: samples per
    scan, scene ids `<scene>_pair<q>` each with its own seeded frames; align_up: rotate the world so the
    cameras' mean up is +z (`data_tools.up_align`; RGB-D folders whose world is not z-up, e.g. 7-Scenes).
    """

    voxel_size: float = 0.04
    trunc_voxels: float = 3.0
    crop_size: Tuple[int, int, int] = (32, 32, 64)
    crop_stride: Tuple[int, int, int] = (16, 16, 32)
    n_levels: int = 3
    drop_prob: float = 0.5
    drop_chunk: int = 10
    frame_skip: int = 1
    depth_max: float = 5.0
    min_target_voxels: int = 200
    min_input_voxels: int = 50
    target: str = "fusion"
    seed: int = 0
    recipe: str = "labels"
    input_frames: str = "drop"
    input_fraction: float = 0.3
    segments: int = 6
    known: str = "visibility"
    placement: str = "grid"
    crops_per_scene: int = 24
    min_surface: int = 50
    pad_to: int = 8
    target_fraction: float = 1.0
    pairs: int = 1
    align_up: bool = False

    def validate(self) -> None:
        if not self.voxel_size > 0:
            raise ValueError(f"voxel_size: expected > 0, got {self.voxel_size}")
        if not self.trunc_voxels > 0:
            raise ValueError(f"trunc_voxels: expected > 0, got {self.trunc_voxels}")
        if len(self.crop_size) != 3 or len(self.crop_stride) != 3:
            raise ValueError(f"crop_size/crop_stride: expected 3 values each, got {self.crop_size}, {self.crop_stride}")
        if self.n_levels < 1:
            raise ValueError(f"n_levels: expected >= 1, got {self.n_levels}")
        f = 2 ** (self.n_levels - 1)
        for name, v in (("crop_size", self.crop_size), ("crop_stride", self.crop_stride)):
            if any(int(s) < 1 or int(s) % f for s in v):
                raise ValueError(f"{name}: expected positive multiples of 2**(n_levels-1) = {f}, got {tuple(v)}")
        if self.pad_to < 1 or self.pad_to % f:
            raise ValueError(f"pad_to: expected a positive multiple of 2**(n_levels-1) = {f}, got {self.pad_to}")
        if not 0 <= self.drop_prob < 1:
            raise ValueError(f"drop_prob: expected in [0, 1), got {self.drop_prob}")
        for name in ("input_fraction", "target_fraction"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name}: expected in (0, 1], got {getattr(self, name)}")
        for name in ("drop_chunk", "frame_skip", "segments", "crops_per_scene", "pairs"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}: expected >= 1, got {getattr(self, name)}")
        for name in ("min_target_voxels", "min_input_voxels", "min_surface"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name}: expected >= 0, got {getattr(self, name)}")
        if self.target == "mesh" and self.align_up:
            raise ValueError("target='mesh' with align_up=True: the mesh is not rotated; use target='fusion'")
        for name, options in CHOICES.items():
            if getattr(self, name) not in options:
                raise ValueError(f"{name}: expected one of {list(options)}, got {getattr(self, name)!r}")

    def to_json(self) -> Dict:
        d = asdict(self)
        d["crop_size"], d["crop_stride"] = list(self.crop_size), list(self.crop_stride)
        return d



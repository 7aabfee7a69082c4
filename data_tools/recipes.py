"""Named presets of `CropConfig`: which samples a dataset holds. All write the `sparse3d.crops` format.

    labels      segmentation / SG-NN-style crops: 4 cm, 32x32x64 crops on a strided grid aligned for
                3 hierarchy levels, input = frames with runs of 10 dropped (p = 0.5),
                known = camera visibility
    completion  the scene-completion pairs of `sparse3d demo` / `sparse3d train completion`: 5 cm,
                input = 6 contiguous runs covering 30% of the frames, target = all frames,
                known = the fused voxels, 24 random 32^3 crops per scene with >= 50 target surface
                voxels (placement="whole" instead: one crop covering the scene, for held-out evaluation)
    segmentation  semantic segmentation (`sparse3d train segmentation`): 5 cm, input = target = every frame
                (input_frames="all": the complete scan, colour + tsdf), known = camera visibility (the
                sliding-window baseline's known / unknown channel, as in the ScanNet paper), one level,
                one crop per whole scene (placement="grid" instead: 32x32x64 crops every 16x16x32); labels in
                target_scannet20

    cfg = recipe_config("completion", seed=3, placement="whole")
    data_tools.preprocess(root, out, cfg)
"""
from __future__ import annotations

from dataclasses import fields
from typing import Any, Dict

from .config import CropConfig

RECIPES: Dict[str, Dict[str, Any]] = {
    "labels": dict(recipe="labels", voxel_size=0.04, trunc_voxels=3.0, crop_size=(32, 32, 64),
                   crop_stride=(16, 16, 32), n_levels=3, input_frames="drop", drop_prob=0.5, drop_chunk=10,
                   known="visibility", placement="grid", min_target_voxels=200, min_input_voxels=50),
    "completion": dict(recipe="completion", voxel_size=0.05, trunc_voxels=3.0, crop_size=(32, 32, 32),
                       crop_stride=(32, 32, 32), n_levels=3, input_frames="subset", input_fraction=0.3, segments=6,
                       known="fused", placement="random", crops_per_scene=24, min_surface=50, pad_to=8),
    "segmentation": dict(recipe="segmentation", voxel_size=0.05, trunc_voxels=3.0, crop_size=(32, 32, 64),
                         crop_stride=(16, 16, 32), n_levels=1, input_frames="all", known="visibility",
                         placement="whole", pad_to=8, min_target_voxels=200, min_input_voxels=50),
}

# the CropConfig fields each setting uses; a field set for a recipe whose modes do not read it is an error
MODE_FIELDS = {("input_frames", "drop"): ("drop_prob", "drop_chunk"),
               ("input_frames", "subset"): ("input_fraction", "segments"),
               ("input_frames", "all"): (),
               ("placement", "grid"): ("crop_stride", "min_target_voxels", "min_input_voxels"),
               ("placement", "random"): ("crops_per_scene", "min_surface", "pad_to"),
               ("placement", "whole"): ("pad_to",)}


def unused_fields(cfg: CropConfig) -> set:
    """Fields of `cfg` that its input_frames / placement settings do not read (crop_size too for "whole")."""
    used, all_mode = set(), set()
    for (name, value), fs in MODE_FIELDS.items():
        all_mode.update(fs)
        if getattr(cfg, name) == value:
            used.update(fs)
    out = all_mode - used
    if cfg.placement == "whole":
        out.add("crop_size")
    return out


def recipe_config(name: str, **overrides: Any) -> CropConfig:
    """The CropConfig of recipe `name` ("labels" | "completion" | "segmentation") with `overrides` applied.

    Raises ValueError for an unknown recipe, an unknown field, or a field that the resulting settings do not
    read (e.g. drop_prob with input_frames="subset": it would be silently ignored)."""
    if name not in RECIPES:
        raise ValueError(f"recipe: expected one of {sorted(RECIPES)}, got {name!r}")
    known = {f.name for f in fields(CropConfig)}
    bad = sorted(set(overrides) - known)
    if bad:
        raise ValueError(f"recipe_config: unknown CropConfig field(s) {bad}; fields: {sorted(known)}")
    cfg = CropConfig(**{**RECIPES[name], **overrides})
    ignored = sorted(set(overrides) & unused_fields(cfg))
    if ignored:
        raise ValueError(f"recipe {name!r} with input_frames={cfg.input_frames!r}, placement={cfg.placement!r} "
                         f"does not use {ignored}; drop them or change those settings")
    cfg.validate()
    return cfg

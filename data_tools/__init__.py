"""Offline preprocessing of ScanNet-style scans: readers, fusion, voxelization, chunks.

Main entry points (see docs/data_tools.md and docs/dataset_format.md)::

    data_tools.generate_scenes(out_root, n_scenes, seed=0, n_frames=100)   # synthetic ScanNet-layout rooms
    data_tools.preprocess(root, out, recipe_config("labels" | "completion" | "segmentation", ...), workers=1)   # crops + manifest.json
    data_tools.load_crop(path) -> dict of numpy arrays;  data_tools.dense_volumes(crop) -> dense tsdf + known
    data_tools.load_manifest(out) -> dict

Submodules import lazily so that `import data_tools` stays cheap.
"""
from __future__ import annotations

import importlib
import json
import os
from typing import Any, Dict, List, Optional, Tuple

_LAZY = {
    "generate_scenes": ("data_tools.synthetic.writer", "generate_scenes"),
    "generate_scene": ("data_tools.synthetic.writer", "generate_scene"),
    "preprocess": ("data_tools.pipeline", "preprocess"),
    "CropConfig": ("data_tools.config", "CropConfig"),
    "recipe_config": ("data_tools.recipes", "recipe_config"),
    "RECIPES": ("data_tools.recipes", "RECIPES"),
    "build_crops": ("data_tools.scene_crops", "build_crops"),
    "dense_volumes": ("data_tools.chunks", "dense_volumes"),
    "crop_from_dense": ("data_tools.chunks", "crop_from_dense"),
    "write_crop_dataset": ("data_tools.chunks", "write_crop_dataset"),
    "FrameSource": ("data_tools.frames", "FrameSource"),
    "frame_subset": ("data_tools.frames", "frame_subset"),
    "load_crop": ("data_tools.chunks", "load_crop"),
    "TSDFFusion": ("data_tools.fusion", "TSDFFusion"),
    "fuse_frames": ("data_tools.fusion", "fuse_frames"),
    "marching_cubes": ("data_tools.fusion", "marching_cubes"),
    "SensReader": ("data_tools.scannet.sens", "SensReader"),
    "RGBDFolder": ("data_tools.scannet.rgbd_folder", "RGBDFolder"),
    "ScanNetScene": ("data_tools.scannet.scene", "ScanNetScene"),
}

__all__ = sorted(list(_LAZY) + ["load_manifest"])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'data_tools' has no attribute {name!r}")


def load_manifest(dataset_root) -> Dict[str, Any]:
    """The dataset's manifest.json as a dict (see data_tools.chunks for its fields)."""
    p = os.path.join(os.fspath(dataset_root), "manifest.json")
    with open(p) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{p}: not valid JSON: {e}") from e


def split_crop_paths(dataset_root, split: Optional[str] = None, how_to_make: str = "") -> Tuple[Dict[str, Any],
                                                                                                  List[str]]:
    """(manifest, crop paths) of the crops a `sparse3d.crops` dataset lists under ``split`` (None: every
    split, in split order). ValueError naming the folder or manifest when it is no such dataset, the split
    is not one of its splits or holds no crop; ``how_to_make`` (the command that writes such a dataset) is
    appended to those messages."""
    root = os.fspath(dataset_root)
    how = f"; {how_to_make}" if how_to_make else ""
    if not os.path.isdir(root):
        raise ValueError(f"root must be a sparse3d.crops dataset folder, got {root!r} (not a folder)")
    man = os.path.join(root, "manifest.json")
    if not os.path.isfile(man):
        raise ValueError(f"{root}: expected a sparse3d.crops dataset (manifest.json), found none{how}")
    m = load_manifest(root)
    if m.get("format") != "sparse3d.crops":
        raise ValueError(f"{man}: expected format 'sparse3d.crops', got {m.get('format')!r}{how}")
    splits = m.get("splits", {})
    if split is not None and split not in splits:
        raise ValueError(f"split must be one of {sorted(splits)} of {man}, got {split!r}")
    names = [n for k in sorted(splits) if split is None or k == split for n in splits[k]]
    if not names:
        raise ValueError(f"{man}: no crops in split {split!r} (splits: {({k: len(v) for k, v in splits.items()})})"
                         f"{how}")
    return m, [os.path.join(root, n) for n in names]

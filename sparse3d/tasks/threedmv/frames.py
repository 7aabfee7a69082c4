"""The RGB-D frames of a whole-scene crop, for back-projection: colour (the 2D net's input), depth at a
reduced resolution (the visibility test), intrinsics, poses and per-pixel ScanNet-20 labels.

A crop's `_scene.json` (data_tools/chunks.py) names its scan folder (`source`) and the frames fused into it
(`target_frames`, positions of the ScanNet frame source; `frame_ids`, their `.sens` indices). The label
images are the scan's `<scan>_2d-label-filt.zip` (data_tools.scannet.label_images), keyed by `.sens` index.

    fr = load_scene_frames("crops/scene0000_00/whole.npz", frame_step=2, depth_step=2, label_lut=lut)
    fr.color [F,H,W,3] uint8, fr.depth [F,Hd,Wd] float32 metres, fr.intrinsics [F,4] (fx, fy, cx, cy at Hd x Wd),
    fr.poses [F,4,4] camera-to-world, fr.labels [F,H,W] uint8 (0..19, 255 = ignore) or None
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from data_tools.scannet.label_images import LabelImages, label_zip_name
from data_tools.scannet.labels import nyu40_to_scannet20
from data_tools.scannet.scene import ScanNetScene


@dataclass(frozen=True)
class SceneFrames:
    """scene_id; color uint8 [F,H,W,3]; depth float32 [F,Hd,Wd] metres (0 = invalid); intrinsics float64 [F,4]
    (fx, fy, cx, cy of the Hd x Wd depth frame); poses float64 [F,4,4] camera-to-world; labels uint8 [F,H,W]
    ScanNet-20 (255 = ignore) or None (no label images); frame_ids: the `.sens` index of each frame."""

    scene_id: str
    color: np.ndarray
    depth: np.ndarray
    intrinsics: np.ndarray
    poses: np.ndarray
    labels: Optional[np.ndarray]
    frame_ids: List[int]

    def __len__(self) -> int:
        return len(self.frame_ids)


def scene_record(crop_path: str) -> dict:
    """The `_scene.json` beside a crop (FileNotFoundError / ValueError naming it)."""
    p = os.path.join(os.path.dirname(os.path.abspath(crop_path)), "_scene.json")
    if not os.path.isfile(p):
        raise FileNotFoundError(f"{p}: no _scene.json beside the crop {crop_path} (it names the scan and its frames)")
    with open(p) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{p}: not valid JSON: {e}") from e


def load_scene_frames(crop_path: str, frame_step: int = 1, depth_step: int = 2, color_step: int = 1,
                      label_lut: Optional[np.ndarray] = None) -> SceneFrames:
    """The frames fused into the whole-scene crop `crop_path` (every `frame_step`-th of them).

    color_step: keep every color_step-th colour / label pixel in each direction (nearest, as rendering at
    the lower resolution would sample: fine texture stays, aliased, rather than being averaged away);
    depth_step: keep every depth_step-th depth pixel in each direction (nearest; the intrinsics are scaled so
    that the kept pixel (i, j) is the original (depth_step i, depth_step j)); label_lut: uint8 [65536] nyu40 id of
    each ScanNet label id (`label_id_lut(tsv)`, or `data_tools.synthetic.label_frames.builtin_label_lut()`):
    None = do not read label images (labels None)."""
    if min(frame_step, depth_step, color_step) < 1:
        raise ValueError(f"frame_step, depth_step and color_step must be >= 1, got {frame_step}, {depth_step} "
                         f"and {color_step}")
    rec = scene_record(crop_path)
    if rec.get("source_kind") != "scannet":
        raise ValueError(f"{crop_path}: 3DMV frames need a ScanNet scene source, got source_kind "
                         f"{rec.get('source_kind')!r}")
    src = rec["source"]
    positions = list(rec.get("target_frames") or [])[::frame_step]
    if not positions:
        raise ValueError(f"{crop_path}: its _scene.json lists no target_frames")
    sc = ScanNetScene(src)
    K = sc.intrinsic
    cols, deps, poses, ids = [], [], [], []
    try:
        for k in positions:
            depth, color, pose = sc.frame(int(k))
            cols.append(color[::color_step, ::color_step])
            deps.append(depth[::depth_step, ::depth_step])
            poses.append(pose)
            ids.append(int(sc.ids[int(k)]))
    finally:
        sc.close()
    s = float(depth_step)
    intr = np.tile(np.array([K[0, 0] / s, K[1, 1] / s, K[0, 2] / s, K[1, 2] / s]), (len(ids), 1))
    labels = None
    if label_lut is not None:
        scan = os.path.basename(os.path.normpath(src))
        with LabelImages(os.path.join(src, label_zip_name(scan))) as li:
            labels = np.stack([nyu40_to_scannet20(label_lut[li.read(i)[::color_step, ::color_step]]) for i in ids])
        if labels.shape[1:] != cols[0].shape[:2]:
            raise ValueError(f"{src}: label images are {list(labels.shape[1:])} but the colour frames "
                             f"{list(cols[0].shape[:2])}")
    return SceneFrames(str(rec.get("scene_id", "")), np.stack(cols), np.stack(deps).astype(np.float32), intr,
                       np.stack(poses), labels, ids)

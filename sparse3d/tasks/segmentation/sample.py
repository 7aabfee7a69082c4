"""One segmentation sample: the near-surface voxels of a crop's fused *input*, with the ScanNet-20 label of
the *target* voxel at the same coordinates.

A crop of the `sparse3d.crops` format (data_tools.chunks) labels its target voxels (`target_scannet20`);
its input holds the fused colour. With the segmentation recipe (input fused from all frames) both hold
the same voxels; with a partial input a voxel the target lacks gets the ignore label 255.

    s = load_sample("crops/scene0003_00/whole.npz")     # voxel_to_world read from _scene.json beside it
    s.coords  int32 [N,3] crop-local, s.color uint8 [N,3], s.labels uint8 [N] (0..19, 255 = ignore)
    s.known   bool [X,Y,Z] camera visibility of the crop's cells (the sliding-window baseline's known channel), or
              None when the crop was not preprocessed with known="visibility" (the segmentation recipe's setting)
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from typing import Dict, Optional, Sequence

import numpy as np

from data_tools import load_crop
from data_tools.scannet.labels import IGNORE

_K = np.int64(1 << 21)
_OFF = 1 << 20


def voxel_keys(coords: np.ndarray) -> np.ndarray:
    """int64 [N]: one key per voxel of coords int [N,3] (|coordinate| < 2**20), ordered as (x, y, z)."""
    c = np.asarray(coords).astype(np.int64) + _OFF
    return (c[:, 0] * _K + c[:, 1]) * _K + c[:, 2]


@dataclass(frozen=True)
class SegSample:
    """scene_id; coords int32 [N,3] crop-local voxels, sorted by (x, y, z); color uint8 [N,3] fused RGB;
    tsdf float32 [N] fused distance (voxels); labels uint8 [N] ScanNet-20 class (0..19, 255 = ignore);
    crop_origin int32 [3] (scene lattice = local + crop_origin); crop_size int32 [3]; voxel_size metres;
    voxel_to_world float64 [4,4] (scene lattice -> world, from `_scene.json`) or None; known bool
    [crop_size] (crop-local cells seen by a camera: inside a frustum, in front of the measured depth or within the
    truncation behind it; the crop's ``input_known`` with known_semantics "visibility") or None (not loaded, or the
    crop's known mask has another meaning); floor_z: metres, the floor's height in the up-aligned world (the scene
    lattice's frame, z up), which the U-Net's height feature is measured from: 0 for ScanNet and the synthetic rooms,
    whose floor is z = 0; :func:`lowest_floor` for scans whose z = 0 lies elsewhere (7-Scenes, RGB-D folders)."""

    scene_id: str
    coords: np.ndarray
    color: np.ndarray
    tsdf: np.ndarray
    labels: np.ndarray
    crop_origin: np.ndarray
    crop_size: np.ndarray
    voxel_size: float
    voxel_to_world: Optional[np.ndarray] = None
    known: Optional[np.ndarray] = None
    floor_z: float = 0.0

    def __len__(self) -> int:
        return int(len(self.coords))

    def world_points(self) -> np.ndarray:
        """float64 [N,3]: world position of each voxel (needs voxel_to_world)."""
        if self.voxel_to_world is None:
            raise ValueError(f"sample {self.scene_id!r} has no voxel_to_world (crop without a _scene.json)")
        scene = (self.coords + self.crop_origin).astype(np.float64)
        return scene @ self.voxel_to_world[:3, :3].T + self.voxel_to_world[:3, 3]

    def lattice_z(self) -> np.ndarray:
        """float64 [N]: each voxel's z in the up-aligned world, metres ((local z + crop_origin z) * voxel_size; the
        scene lattice is axis-aligned there, z up, its z = 0 at the world's z = 0)."""
        return (np.asarray(self.coords[:, 2], np.float64) + float(self.crop_origin[2])) * self.voxel_size

    def box(self, lo: Sequence[int], size: Sequence[int]) -> "SegSample":
        """The voxels inside the crop-local box [lo, lo + size), re-based so that lo becomes 0
        (crop_origin moves by lo; crop_size becomes size)."""
        lo_a = np.asarray(lo, np.int32).reshape(3)
        size_a = np.asarray(size, np.int32).reshape(3)
        if np.any(size_a < 1):
            raise ValueError(f"size must be >= 1 on every axis, got {size_a.tolist()}")
        keep = np.all((self.coords >= lo_a) & (self.coords < lo_a + size_a), axis=1)
        known = None
        if self.known is not None:  # cells of the box outside the crop are unknown
            known = np.zeros(tuple(int(v) for v in size_a), bool)
            src_lo = np.maximum(lo_a, 0)
            src_hi = np.minimum(lo_a + size_a, np.asarray(self.known.shape))
            if np.all(src_hi > src_lo):
                dst = tuple(slice(int(a - b), int(c - b)) for a, b, c in zip(src_lo, lo_a, src_hi))
                known[dst] = self.known[tuple(slice(int(a), int(c)) for a, c in zip(src_lo, src_hi))]
        return replace(self, coords=(self.coords[keep] - lo_a).astype(np.int32), color=self.color[keep],
                       tsdf=self.tsdf[keep], labels=self.labels[keep],
                       crop_origin=(self.crop_origin + lo_a).astype(np.int32), crop_size=size_a, known=known)


FLOORS = ("zero", "lowest")  # where heights start: the world's z = 0, or lowest_floor (predict --floor)
FLOOR_PERCENTILE = 1.0  # lowest_floor: the percentile of the voxels' heights taken as the floor


def lowest_floor(sample: SegSample) -> float:
    """Metres: an estimate of the floor's height in the up-aligned world, for a scan whose z = 0 is not its floor:
    the :data:`FLOOR_PERCENTILE` th percentile of the voxels' lattice heights (a few stray voxels below the floor do
    not move it). It assumes the floor, or something close above it, was scanned; where the lowest thing seen is a
    table, heights are measured from the table."""
    if len(sample) == 0:
        raise ValueError(f"sample {sample.scene_id!r} has no voxels: no floor to estimate")
    return float(np.percentile(sample.lattice_z(), FLOOR_PERCENTILE))


def sample_from_crop(crop: Dict[str, np.ndarray], max_abs_tsdf: float = 1.0,
                     voxel_to_world: Optional[np.ndarray] = None, with_known: bool = True) -> SegSample:
    """The SegSample of a loaded crop (`data_tools.load_crop`): input voxels with |tsdf| <= max_abs_tsdf
    (voxels), labelled by the target voxel at the same coordinates (255 where there is none). ``with_known``: keep
    the crop's ``input_known`` as ``known`` when its known_semantics is "visibility" (None otherwise; the U-Net
    does not read it, so its training set leaves it out)."""
    if not max_abs_tsdf > 0:
        raise ValueError(f"max_abs_tsdf must be > 0 (voxels), got {max_abs_tsdf}")
    for key in ("input_coords", "input_tsdf", "input_color", "target_coords", "target_scannet20"):
        if key not in crop:
            raise ValueError(f"crop of scene {str(crop.get('scene_id', '?'))!r} has no {key!r}: not a labelled "
                             f"sparse3d.crops crop")
    tsdf = np.asarray(crop["input_tsdf"], np.float32)
    near = np.abs(tsdf) <= max_abs_tsdf
    coords = np.asarray(crop["input_coords"], np.int32)[near]
    t_keys = voxel_keys(np.asarray(crop["target_coords"]))
    t_labels = np.asarray(crop["target_scannet20"], np.uint8)
    labels = np.full(len(coords), IGNORE, np.uint8)
    if len(t_keys) and len(coords):
        order = np.argsort(t_keys, kind="stable")
        sk = t_keys[order]
        k = voxel_keys(coords)
        pos = np.clip(np.searchsorted(sk, k), 0, len(sk) - 1)
        hit = sk[pos] == k
        labels[hit] = t_labels[order[pos[hit]]]
    known = None
    if with_known and str(np.asarray(crop.get("known_semantics", ""))) == "visibility" and "input_known" in crop:
        known = np.asarray(crop["input_known"], bool)
    return SegSample(scene_id=str(np.asarray(crop["scene_id"])), coords=coords,
                     color=np.asarray(crop["input_color"], np.uint8)[near], tsdf=tsdf[near], labels=labels,
                     crop_origin=np.asarray(crop["crop_origin"], np.int32).reshape(3),
                     crop_size=np.asarray(crop["crop_size"], np.int32).reshape(3),
                     voxel_size=float(crop["voxel_size"]),
                     voxel_to_world=None if voxel_to_world is None else np.asarray(voxel_to_world, np.float64),
                     known=known)


def scene_voxel_to_world(crop_path: str) -> Optional[np.ndarray]:
    """float64 [4,4] `voxel_to_world` of the `_scene.json` in the crop's folder, or None when there is none."""
    record = os.path.join(os.path.dirname(os.path.abspath(crop_path)), "_scene.json")
    if not os.path.isfile(record):
        return None
    with open(record) as f:
        rec = json.load(f)
    if "voxel_to_world" not in rec:
        raise ValueError(f"{record}: no 'voxel_to_world' (written by an older preprocess; run it again)")
    m = np.asarray(rec["voxel_to_world"], np.float64)
    if m.shape != (4, 4) or not np.all(np.isfinite(m)):
        raise ValueError(f"{record}: voxel_to_world must be a finite 4x4 matrix, got shape {list(m.shape)}")
    return m


def load_sample(path: str, max_abs_tsdf: float = 1.0, with_known: bool = True) -> SegSample:
    """The SegSample of the crop file `path`, with voxel_to_world from the `_scene.json` beside it (if any);
    ``with_known``: see :func:`sample_from_crop`."""
    return sample_from_crop(load_crop(path), max_abs_tsdf, scene_voxel_to_world(path), with_known)

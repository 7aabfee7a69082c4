"""Training crops: one compressed `.npz` per crop, plus `load_crop`. The on-disk format:

Dataset layout (written by `data_tools.preprocess`)::

    <out>/manifest.json
    <out>/<scene_id>/crop_<x>_<y>_<z>.npz        one file per crop (x, y, z = crop origin, voxels)
    <out>/<scene_id>/_scene.json                 per-scene record; its presence marks the scene done

Voxel convention: integer voxel (i, j, k) of the scene lattice samples the world point
(i, j, k) * voxel_size (metres, ScanNet world frame, +Z up). A crop covers the scene voxels
origin + [0, size); coordinates stored in a crop are *local*: scene = local + crop_origin.
Distances are in voxel units of their level, positive in front of (outside) the surface.

Keys of a crop `.npz` (N = input voxels, M = target voxels, L = levels):

    scene_id          str  []           e.g. "scene0000_00"
    crop_origin       int32 [3]         origin of the crop on the scene lattice (voxels)
    crop_size         int32 [3]         (X, Y, Z) voxels, e.g. (32, 32, 64)
    voxel_size        float32 []        metres per voxel at level 0
    trunc_voxels      float32 []        truncation of all tsdf values (level-0 voxels)
    n_levels          int32 []          L: level l has voxel size voxel_size * 2**l
    has_labels        bool []           False when the scene has no label source (labels.ply, or aggregation + tsv)
    -- input: partial scan, fused from a random subset of the frames
    input_coords      int32 [N,3]       local voxel coords, sorted by (x, y, z)
    input_tsdf        float32 [N]       fused tsdf in voxels, |tsdf| < trunc_voxels
    input_weight      float32 [N]       number of fused observations (> 0)
    input_color       uint8 [N,3]       fused RGB
    input_known       packed bool       dense [X,Y,Z] mask: voxel observed by an input frame
                                        (inside a camera frustum and not more than trunc behind
                                        the observed depth); unpack with `load_crop`
    -- target: fused from all frames (or the mesh, params.target == "mesh")
    target_coords     int32 [M,3]       local voxel coords, sorted by (x, y, z)
    target_tsdf       float32 [M]       truncated signed distance in voxels, |.| < trunc_voxels
    target_nyu40      uint8 [M]         nyu40 id of the closest labelled-mesh triangle (0 = none)
    target_scannet20  uint8 [M]         ScanNet-20 benchmark class 0..19, 255 = ignore
    target_known      packed bool       dense [X,Y,Z] mask: voxel observed by any frame; the
                                        known/unknown mask for completion losses
    -- hierarchy (ScanComplete / SG-NN style), l = 1 .. L-1, each level halves resolution
    target_coords_l{l}  int32 [M_l,3]   coarse voxels (local, level-l lattice) having a level-0
                                        target voxel among their 2**l-cube of children
    target_tsdf_l{l}    float32 [M_l]   tsdf of the child with the smallest |tsdf|, / 2**l
    target_scannet20_l{l} uint8 [M_l]   that child's ScanNet-20 label

Packed masks are stored as `np.packbits(mask.ravel())` under `<name>` with the shape implied
by `crop_size` (C order); `load_crop` returns them unpacked as bool [X,Y,Z].

`manifest.json`::

    {"format": "sparse3d.crops", "version": 1, "voxel_size": ..., "trunc_voxels": ...,
     "crop_size": [X,Y,Z], "n_levels": L, "params": {...},
     "splits": {"train": ["<scene>/crop_....npz", ...], "val": [...], "test": [...]},
     "scenes": {"<scene>": {"split": "train", "crops": [...], "n_frames": ..., ...}},
     "failed": {"<scene>": "error message"}}
"""
from __future__ import annotations

import os
from typing import Dict, Union

import numpy as np

from .io_utils import atomic_save_npz

PathLike = Union[str, os.PathLike]

FORMAT_VERSION = 1
MASK_KEYS = ("input_known", "target_known")


def crop_filename(origin: np.ndarray) -> str:
    """`crop_<x>_<y>_<z>.npz` for a crop origin int [3] (negative values keep their sign)."""
    x, y, z = (int(v) for v in origin)
    return f"crop_{x}_{y}_{z}.npz"


def save_crop(path: PathLike, crop: Dict[str, np.ndarray]) -> None:
    """Write one crop atomically. `crop` holds the keys above; bool masks [X,Y,Z] are packed here."""
    size = np.asarray(crop["crop_size"])
    out = {}
    for k, v in crop.items():
        if k in MASK_KEYS:
            v = np.asarray(v, bool)
            if v.shape != tuple(size):
                raise ValueError(f"{k}: expected shape {tuple(size)}, got {v.shape}")
            out[k] = np.packbits(v.ravel())
        else:
            out[k] = np.asarray(v)
    atomic_save_npz(path, **out)


def load_crop(path: PathLike) -> Dict[str, np.ndarray]:
    """Read a crop `.npz` into a dict of numpy arrays (masks unpacked to bool [X,Y,Z]).

    Raises ValueError naming the file if it is not a crop of this format.
    """
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 - any decoding failure is reported with the file name
        raise ValueError(f"{path}: cannot read crop npz: {e}") from e
    for k in ("crop_size", "input_coords", "target_coords"):
        if k not in d:
            raise ValueError(f"{path}: not a sparse3d crop (missing key {k!r})")
    size = tuple(int(s) for s in d["crop_size"])
    n = int(np.prod(size))
    for k in MASK_KEYS:
        if k in d:
            d[k] = np.unpackbits(d[k], count=n).astype(bool).reshape(size)
    if "scene_id" in d:
        d["scene_id"] = str(d["scene_id"])
    return d

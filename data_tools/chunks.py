"""Training crops: one compressed `.npz` per crop, plus `load_crop`. The on-disk format (version 2):

Dataset layout (written by `data_tools.preprocess`)::

    <out>/manifest.json
    <out>/<scene_id>/crop_<x>_<y>_<z>.npz        one file per crop (x, y, z = crop origin, voxels;
                                                 random placement: crop_<j>_<x>_<y>_<z>.npz, j = draw)
    <out>/<scene_id>/_scene.json                 per-scene record; its presence marks the scene done

Voxel <-> world frame: integer voxel (i, j, k) of the scene lattice samples the world point
(i, j, k) * voxel_size (metres, the frame source's world frame = its camera_to_world poses; ScanNet:
+Z up). A crop covers the scene voxels crop_origin + [0, crop_size); coordinates stored in a crop are
*local*: scene = local + crop_origin, world = voxel_to_world @ (scene, 1) with `voxel_to_world` of
`_scene.json`: up_rotation^T @ diag(voxel_size, voxel_size, voxel_size, 1), in the world of the source's
own camera_to_world poses (up_rotation = identity unless params.align_up: then the lattice is axis-aligned
in the world rotated by up_rotation, whose poses are up_rotation @ source pose). The frames to
back-project (3DMV) are `_scene.json`'s `source` (scene folder / RGB-D folder) at the positions
`input_frames` / `target_frames` (positions of the frame source, `frame_ids` their own ids, e.g. `.sens`
indices).
Distances are in voxel units of their level, positive in front of (outside) the surface.

Keys of a crop `.npz` (N = input voxels, M = target voxels, L = levels, [X,Y,Z] = crop_size):

    format_version    int32 []          2 (1: no known_semantics / *_behind keys, see load_crop)
    scene_id          str  []           e.g. "scene0000_00"
    crop_origin       int32 [3]         origin of the crop on the scene lattice (voxels)
    crop_size         int32 [3]         (X, Y, Z) voxels, e.g. (32, 32, 64); whole-scene crops: the scene grid
    voxel_size        float32 []        metres per voxel at level 0
    trunc_voxels      float32 []        truncation of all tsdf values (level-0 voxels)
    n_levels          int32 []          L: level l has voxel size voxel_size * 2**l
    has_labels        bool []           False when the scene has no label source (labels.ply, or aggregation + tsv)
    known_semantics   str []            what *_known means: "visibility" (labels recipe: inside a camera
                                        frustum with valid depth and not more than trunc behind the observed
                                        depth) or "fused" (completion recipe: the fusion wrote the voxel, weight > 0)
    -- input: partial scan, fused from a seeded subset of the frames (params.input_frames)
    input_coords      int32 [N,3]       band voxels (|tsdf| < trunc), local coords, sorted by (x, y, z)
    input_tsdf        float32 [N]       fused tsdf in voxels, |tsdf| < trunc_voxels
    input_weight      float32 [N]       number of fused observations (> 0)
    input_color       uint8 [N,3]       fused RGB
    input_known       packed bool       dense [X,Y,Z] mask: voxel known to the input (known_semantics)
    input_behind      packed bool       dense [X,Y,Z] mask: known voxels outside the band whose fused value
                                        is clipped to -trunc (behind a surface); every other known voxel
                                        outside the band is +trunc (free space)
    -- target: fused from all frames (or the mesh, params.target == "mesh")
    target_coords     int32 [M,3]       band voxels, local coords, sorted by (x, y, z)
    target_tsdf       float32 [M]       truncated signed distance in voxels, |.| < trunc_voxels
    target_nyu40      uint8 [M]         nyu40 id of the closest labelled-mesh triangle (0 = none)
    target_scannet20  uint8 [M]         ScanNet-20 benchmark class 0..19, 255 = ignore
    target_known      packed bool       dense [X,Y,Z] mask: voxel known to the target (known_semantics);
                                        the known/unknown mask for completion losses
    target_behind     packed bool       as input_behind, for the target
    -- hierarchy (ScanComplete / SG-NN style), l = 1 .. L-1, each level halves resolution
    target_coords_l{l}  int32 [M_l,3]   coarse voxels (local, level-l lattice) having a level-0
                                        target voxel among their 2**l-cube of children
    target_tsdf_l{l}    float32 [M_l]   tsdf of the child with the smallest |tsdf|, / 2**l
    target_scannet20_l{l} uint8 [M_l]   that child's ScanNet-20 label

Packed masks are stored as `np.packbits(mask.ravel())` under `<name>` with the shape implied
by `crop_size` (C order); `load_crop` returns them unpacked as bool [X,Y,Z]. `dense_volumes(crop)`
gives the dense tsdf [X,Y,Z] of input and target: band values, -trunc where *_behind, +trunc at
the other known voxels, 0 where unknown.

`_scene.json` (one per scene)::

    {"scene_id" (`<scan>_pair<q>` with params.pairs > 1), "format_version", "source" (path read),
     "source_kind" ("scannet" | "rgbd"), "source_id" (the scan's id; splits are assigned by it),
     "recipe", "known", "params" (the CropConfig), "crops": [{"file", "origin", "size", "n_input",
     "n_target"}], "n_frames", "n_input_frames", "target_frames": [positions], "input_frames": [positions],
     "frame_ids": [source ids of target_frames] | null, "voxel_size", "voxel_to_world": 4x4,
     "up_rotation": 4x4,
     "grid_origin": [3], "grid_dims": [3] (the scene grid the crops were cut from), "has_labels",
     "n_target_voxels", "n_input_voxels", "seconds"}

`manifest.json`::

    {"format": "sparse3d.crops", "version": 2, "recipe": "labels" | "completion" | "segmentation" | "custom",
     "known": "visibility" | "fused", "placement": "grid" | "random" | "whole" ("custom": write_crop_dataset),
     "voxel_size": ..., "trunc_voxels": ..., "crop_size": [X,Y,Z] (null for whole-scene crops),
     "n_levels": L, "params": {...},
     "splits": {"train": ["<scene>/crop_....npz", ...], "val": [...], "test": [...]},
     "scenes": {"<scene>": {"split", "crops", "n_frames", "n_input_frames", "has_labels", "grid_origin",
                "grid_dims", "source", "source_kind", "source_id", "voxel_size", "voxel_to_world",
                "up_rotation", "target_frames", "input_frames", "frame_ids"}},
     "failed": {"<scene>": "error message"}}
"""
from __future__ import annotations

import os
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np

from sparse3d.utils.atomic_io import atomic_save_npz, atomic_write_json

PathLike = Union[str, os.PathLike]

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
MASK_KEYS = ("input_known", "target_known", "input_behind", "target_behind")


def crop_filename(origin: np.ndarray, index: Optional[int] = None) -> str:
    """`crop_<x>_<y>_<z>.npz` for a crop origin int [3] (negative values keep their sign);
    `crop_<index>_<x>_<y>_<z>.npz` with an index (random crops can share an origin)."""
    x, y, z = (int(v) for v in origin)
    return f"crop_{x}_{y}_{z}.npz" if index is None else f"crop_{int(index):03d}_{x}_{y}_{z}.npz"


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

    A version-1 crop loads too: it gets known_semantics "visibility" and all-False *_behind masks
    (version 1 did not record them). Raises ValueError naming the file if it is not a crop, or if it
    was written by a newer format version than this reader's.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"crop file not found: {path}")
    _check_npz_sizes(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 - any decoding failure is reported with the file name
        raise ValueError(f"{path}: cannot read crop npz: {e}") from e
    for k in ("crop_size", "input_coords", "target_coords"):
        if k not in d:
            raise ValueError(f"{path}: not a sparse3d crop (missing key {k!r}; found keys {sorted(d)[:8]})")
    version = int(d.get("format_version", 1))
    if version not in READABLE_VERSIONS:
        raise ValueError(f"{path}: sparse3d.crops format version {version}; this reader reads versions "
                         f"{list(READABLE_VERSIONS)} (current {FORMAT_VERSION}): "
                         + ("update sparse3d" if version > FORMAT_VERSION else "re-run preprocessing"))
    cs = d["crop_size"]
    if cs.shape != (3,) or cs.dtype.kind not in "iu" or (cs < 1).any() or (cs > 4096).any():
        raise ValueError(f"{path}: crop_size must be 3 integers in [1, 4096], got {cs.tolist()!r}")
    size = tuple(int(s) for s in cs)
    n = int(np.prod(size))
    for k in MASK_KEYS:
        if k in d:
            if d[k].dtype != np.uint8 or d[k].shape != ((n + 7) // 8,):  # packed bits of [X, Y, Z]
                raise ValueError(f"{path}: {k} must be uint8 [{(n + 7) // 8}] (the bits of a {size} mask), got "
                                 f"{d[k].dtype} {list(d[k].shape)}")
            d[k] = np.unpackbits(d[k], count=n).astype(bool).reshape(size)
        elif k.endswith("_behind"):
            d[k] = np.zeros(size, bool)
    for part in ("input", "target"):  # coordinates index the [X, Y, Z] volumes (dense_volumes, datasets)
        c = d[f"{part}_coords"]
        if c.ndim != 2 or c.shape[1] != 3 or c.dtype.kind not in "iu" or (
                c.size and ((c < 0).any() or (c >= np.asarray(size)).any())):
            raise ValueError(f"{path}: {part}_coords must be int [N, 3] inside crop_size {size}, got "
                             f"{c.dtype} {list(c.shape)}")
        for k in (f"{part}_tsdf", f"{part}_weight", f"{part}_color", f"{part}_nyu40", f"{part}_scannet20"):
            if k in d and (d[k].ndim < 1 or d[k].shape[0] != c.shape[0]):
                raise ValueError(f"{path}: {k} must have one row per {part}_coords row ({c.shape[0]}), "
                                 f"got shape {list(d[k].shape)}")
    d["format_version"] = np.int32(version)
    d.setdefault("known_semantics", np.array("visibility"))
    for k in ("scene_id", "known_semantics"):
        if k in d:
            d[k] = str(d[k])
    return d


def _check_npz_sizes(path: str) -> None:
    """Reject an npz whose members claim more data than they hold, before numpy allocates an array of the
    claimed shape (a corrupt header could ask for terabytes). ValueError naming the file and member."""
    import zipfile

    from numpy.lib import format as npy

    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                with zf.open(info) as f:
                    version = npy.read_magic(f)
                    read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
                    shape, _, dtype = read_header(f)  # the header only, no data
                    header_len = f.tell()
                if dtype.hasobject:
                    raise ValueError(f"member {info.filename!r} holds Python objects")
                want = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if want > info.file_size - header_len:
                    raise ValueError(f"member {info.filename!r} claims shape {shape} of {dtype} ({want} bytes) "
                                     f"but holds {info.file_size - header_len} bytes")
    except Exception as e:  # noqa: BLE001 - zip, header and size errors, all reported with the file name
        raise ValueError(f"{path}: cannot read crop npz: {e}") from e


def dense_volumes(crop: Dict[str, np.ndarray]) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(input_tsdf, input_known, target_tsdf, target_known) of a crop from `load_crop`: float32 / bool
    [X,Y,Z] each. tsdf in voxels: band values, -trunc at *_behind voxels, +trunc at every other known
    voxel outside the band, 0 where unknown; known = *_known or in the band."""
    size = tuple(int(s) for s in crop["crop_size"])
    trunc = np.float32(crop["trunc_voxels"])
    out = []
    for part in ("input", "target"):
        idx = tuple(np.asarray(crop[f"{part}_coords"]).T)
        known = np.array(crop[f"{part}_known"], bool)
        known[idx] = True
        vol = np.where(known, trunc, np.float32(0)).astype(np.float32)
        vol[crop[f"{part}_behind"] & known] = -trunc
        vol[idx] = crop[f"{part}_tsdf"]
        out += [vol, known]
    if any(a.shape != size for a in out):
        raise ValueError(f"crop {crop.get('scene_id', '?')}: masks must have the crop_size shape {size}")
    return out[0], out[1], out[2], out[3]


def crop_from_dense(input_tsdf: np.ndarray, input_known: np.ndarray, target_tsdf: np.ndarray,
                    target_known: np.ndarray, voxel_size: float, trunc_voxels: float, origin=(0, 0, 0),
                    scene_id: str = "dense", known_semantics: str = "fused") -> Dict[str, np.ndarray]:
    """The inverse of `dense_volumes`: dense float [X,Y,Z] tsdf + bool [X,Y,Z] known of input and target
    (e.g. procedural shapes) -> a crop dict for `save_crop` (n_levels 1, no labels, weights 1, grey color).
    The band is known & |tsdf| < trunc; known voxels outside it with tsdf < 0 are *_behind."""
    size = np.asarray(input_tsdf.shape, np.int32)
    for name, a in (("input_known", input_known), ("target_tsdf", target_tsdf), ("target_known", target_known)):
        if tuple(a.shape) != tuple(size):
            raise ValueError(f"{name}: expected shape {tuple(size)} (input_tsdf's), got {tuple(a.shape)}")
    crop: Dict[str, np.ndarray] = {
        "scene_id": np.array(scene_id), "crop_origin": np.asarray(origin, np.int32), "crop_size": size,
        "voxel_size": np.float32(voxel_size), "trunc_voxels": np.float32(trunc_voxels), "n_levels": np.int32(1),
        "has_labels": np.bool_(False), "format_version": np.int32(FORMAT_VERSION),
        "known_semantics": np.array(known_semantics)}
    for part, t, k in (("input", input_tsdf, input_known), ("target", target_tsdf, target_known)):
        t = np.asarray(t, np.float32)
        k = np.asarray(k, bool)
        band = k & (np.abs(t) < trunc_voxels)
        c = np.argwhere(band).astype(np.int32)
        crop[f"{part}_coords"], crop[f"{part}_tsdf"] = c, t[tuple(c.T)]
        crop[f"{part}_known"], crop[f"{part}_behind"] = k, k & ~band & (t < 0)
        if part == "input":
            crop["input_weight"] = np.ones(len(c), np.float32)
            crop["input_color"] = np.full((len(c), 3), 128, np.uint8)
        else:
            crop["target_nyu40"] = np.zeros(len(c), np.uint8)
            crop["target_scannet20"] = np.full(len(c), 255, np.uint8)
    return crop


def write_crop_dataset(out: PathLike, crops: Sequence[Dict[str, np.ndarray]], split: str = "train",
                       recipe: str = "custom") -> str:
    """Write in-memory crops (e.g. from `crop_from_dense`) as a dataset: `<out>/<scene_id>/crop_<j>_<x>_<y>_<z>.npz`
    and a manifest.json (all in `split`; no `_scene.json`: the scenes were not preprocessed from scans).
    All crops must share voxel_size, trunc_voxels and known_semantics. Returns the manifest's path."""
    if not crops:
        raise ValueError("crops: expected at least one crop, got none")
    first = crops[0]
    shared = {k: str(np.asarray(first[k])) for k in ("voxel_size", "trunc_voxels", "known_semantics")}
    files = []
    for j, c in enumerate(crops):
        got = {k: str(np.asarray(c[k])) for k in shared}
        if got != shared:
            raise ValueError(f"crops[{j}]: expected {shared} like crops[0], got {got}")
        rel = f"{c['scene_id']}/{crop_filename(c['crop_origin'], j)}"
        save_crop(os.path.join(os.fspath(out), rel), c)
        files.append(rel)
    man = {"format": "sparse3d.crops", "version": FORMAT_VERSION, "recipe": recipe,
           "known": shared["known_semantics"], "placement": "custom", "voxel_size": float(first["voxel_size"]),
           "trunc_voxels": float(first["trunc_voxels"]), "crop_size": None, "n_levels": 1, "params": None,
           "splits": {split: files}, "scenes": {}, "failed": {}}
    path = os.path.join(os.fspath(out), "manifest.json")
    atomic_write_json(path, man)
    return path

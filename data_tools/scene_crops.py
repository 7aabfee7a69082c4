"""Turn one scan (a frame source + optional labelled mesh) into training crops.

SG-NN-style pairs: the *input* is fused from a random subset of the frames (each frame
dropped with probability `drop_prob`), the *target* from all frames; known/unknown masks
come from camera visibility; per-voxel labels from the labelled mesh's closest triangle.
See `data_tools.chunks` for the crop format.
"""
from __future__ import annotations

import os
import time
import zlib
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from .chunks import FORMAT_VERSION, crop_filename, save_crop
from .fusion import TSDFFusion, _native
from .hierarchy import downsample_level
from .mesh_labels import MeshLabeler
from .scannet.labels import nyu40_to_scannet20


@dataclass
class CropConfig:
    """Preprocessing parameters (all lengths in metres unless named *_voxels).

    voxel_size: level-0 voxel edge; trunc_voxels: tsdf truncation (voxels); crop_size / crop_stride:
    crop extent and step (voxels, x y z); n_levels: hierarchy levels (crop_size must be divisible by
    2**(n_levels-1)); drop_prob: probability that a frame is left out of the input; frame_skip: use
    every k-th frame; depth_max: ignore depth beyond it; min_target_voxels / min_input_voxels:
    crops with fewer are skipped (empty-crop filter); target: "fusion" (all frames) or "mesh"
    (signed distance to the mesh); seed: frame dropping seed (combined with the scene id).
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
        if not 0 <= self.drop_prob < 1:
            raise ValueError(f"drop_prob: expected in [0, 1), got {self.drop_prob}")
        if self.drop_chunk < 1:
            raise ValueError(f"drop_chunk: expected >= 1, got {self.drop_chunk}")
        if self.frame_skip < 1:
            raise ValueError(f"frame_skip: expected >= 1, got {self.frame_skip}")
        if self.target not in ("fusion", "mesh"):
            raise ValueError(f"target: expected 'fusion' or 'mesh', got {self.target!r}")

    def to_json(self) -> Dict:
        d = asdict(self)
        d["crop_size"], d["crop_stride"] = list(self.crop_size), list(self.crop_stride)
        return d


class SceneError(RuntimeError):
    """A scene could not be processed; the message names the file (and frame)."""


def input_frame_mask(n: int, drop_prob: float, seed: int, scene_id: str, chunk: int = 1) -> np.ndarray:
    """bool [n]: frames kept for the input. Frames are grouped into runs of `chunk` consecutive
    frames and each run is dropped with probability drop_prob (runs leave real holes: neighbouring
    frames see nearly the same thing); at least one run is kept. Seeded by (seed, scene_id)."""
    if chunk < 1:
        raise ValueError(f"chunk: expected >= 1, got {chunk}")
    rng = np.random.default_rng([int(seed), zlib.crc32(scene_id.encode())])
    n_runs = (n + chunk - 1) // chunk
    keep_run = rng.random(n_runs) >= drop_prob
    if n_runs and not keep_run.any():
        keep_run[rng.integers(n_runs)] = True
    return np.repeat(keep_run, chunk)[:n]


def _select(coords: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.all((coords >= lo) & (coords < hi), axis=1)


def crop_origins(lo: np.ndarray, hi: np.ndarray, size: np.ndarray, stride: np.ndarray, align: int) -> np.ndarray:
    """int64 [K,3] crop origins (multiples of `align`) covering the voxel box [lo, hi)."""
    start = np.floor_divide(lo, align) * align
    axes = []
    for a in range(3):
        n = max(1, int(np.ceil(max(hi[a] - start[a] - size[a], 0) / stride[a])) + 1)
        axes.append(start[a] + stride[a] * np.arange(n))
    g = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    return g.astype(np.int64)


def process_scene(frames, scene_id: str, out_dir: str, cfg: CropConfig,
                  mesh: Optional[Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]] = None,
                  progress: Optional[Callable[[int], None]] = None) -> Dict:
    """Fuse, label and crop one scene; writes `<out_dir>/crop_*.npz`; returns the scene record.

    frames: a frame source (`.intrinsic` [3,3], `len()`, `frame(k) -> (depth m, color, pose)`,
    optional `.ids`, `.path`/`.sens_path` for messages); mesh: (vertices [V,3], faces [F,3],
    nyu40 per vertex [V] or None for an unlabelled mesh) or None; per-voxel labels (and has_labels)
    only with labels. Raises SceneError naming the file and frames that failed.
    """
    cfg.validate()
    t0 = time.time()
    os.makedirs(out_dir, exist_ok=True)
    vs, tv = cfg.voxel_size, cfg.trunc_voxels
    positions = list(range(0, len(frames), cfg.frame_skip))
    if not positions:
        raise SceneError(f"{scene_id}: no frames")
    keep = input_frame_mask(len(positions), cfg.drop_prob, cfg.seed, scene_id, cfg.drop_chunk)
    fu_t = TSDFFusion(vs, tv, depth_max=cfg.depth_max, with_color=False)
    fu_i = TSDFFusion(vs, tv, depth_max=cfg.depth_max, with_color=True)
    K = np.asarray(frames.intrinsic, np.float64)
    depths: List[np.ndarray] = []
    poses: List[np.ndarray] = []
    used_keep: List[bool] = []
    errors: List[str] = []
    ids = getattr(frames, "ids", None)
    src = getattr(frames, "sens_path", None) or getattr(frames, "root", scene_id)
    for j, k in enumerate(positions):
        try:
            depth, color, pose = frames.frame(k, with_color=bool(keep[j]))
        except Exception as e:  # noqa: BLE001 - collected and reported with file and frame
            fid = ids[k] if ids is not None else k
            errors.append(f"{src}: frame {fid}: {e}" if str(src) not in str(e) else str(e))
            continue
        if not np.all(np.isfinite(pose)):
            continue
        fu_t.integrate(depth, None, K, pose)
        if keep[j]:
            fu_i.integrate(depth, color, K, pose)
        depths.append(np.clip(np.round(depth * 1000.0), 0, 65535).astype(np.uint16))
        poses.append(pose)
        used_keep.append(bool(keep[j]))
        if progress is not None:
            progress(1)
    if errors:
        raise SceneError(f"{len(errors)} corrupt frame(s): " + "; ".join(errors[:5])
                         + (" ..." if len(errors) > 5 else ""))
    if not depths:
        raise SceneError(f"{src}: no frame with a valid pose")
    t_fuse = time.time() - t0

    tgt = fu_t.extract(band_only=True)
    inp = fu_i.extract(band_only=True)
    t_coords, t_tsdf = tgt.coords.astype(np.int64), tgt.tsdf
    labeler = MeshLabeler(*mesh) if mesh is not None and mesh[2] is not None else None
    if cfg.target == "mesh":
        if mesh is None:
            raise SceneError(f"{scene_id}: target='mesh' needs a mesh, none found")
        from .voxelize import mesh_sdf_band
        t_coords, t_tsdf = mesh_sdf_band(mesh[0], mesh[1], vs, tv)
        t_coords = t_coords.astype(np.int64)
    if len(t_coords) == 0:
        raise SceneError(f"{src}: fusion produced no surface voxels (check depth units and poses)")
    if labeler is not None:
        nyu, _ = labeler.closest(t_coords * vs)
        t_nyu = np.clip(nyu, 0, 255).astype(np.uint8)
    else:
        t_nyu = np.zeros(len(t_coords), np.uint8)
    t_s20 = nyu40_to_scannet20(t_nyu)

    size, stride = np.asarray(cfg.crop_size, np.int64), np.asarray(cfg.crop_stride, np.int64)
    align = 2 ** (cfg.n_levels - 1)
    lo, hi = t_coords.min(0), t_coords.max(0) + 1
    origins = crop_origins(lo, hi, size, stride, align)
    glo = origins.min(0)
    gdims = origins.max(0) + size - glo
    native = _native()
    dstack = torch.from_numpy(np.stack(depths))
    pstack = torch.from_numpy(np.stack(poses))
    kt = torch.from_numpy(K[:3, :3].copy())
    obs_args = (torch.tensor(glo), torch.tensor(gdims), vs, tv * vs, cfg.depth_max)
    known_t = native.observed_grid(dstack, 1000.0, kt, pstack, *obs_args).numpy()
    sel = torch.from_numpy(np.nonzero(np.asarray(used_keep))[0])
    known_i = native.observed_grid(dstack[sel].contiguous(), 1000.0, kt, pstack[sel].contiguous(), *obs_args).numpy()
    t_vis = time.time() - t0 - t_fuse

    crops = []
    i_coords = inp.coords.astype(np.int64)
    for o in origins:
        tm = _select(t_coords, o, o + size)
        if tm.sum() < cfg.min_target_voxels:
            continue
        im = _select(i_coords, o, o + size)
        if im.sum() < cfg.min_input_voxels:
            continue
        sl = tuple(slice(int(o[a] - glo[a]), int(o[a] - glo[a] + size[a])) for a in range(3))
        tc = (t_coords[tm] - o).astype(np.int32)
        crop = {
            "scene_id": np.array(scene_id), "crop_origin": o.astype(np.int32), "crop_size": size.astype(np.int32),
            "voxel_size": np.float32(vs), "trunc_voxels": np.float32(tv), "n_levels": np.int32(cfg.n_levels),
            "has_labels": np.bool_(labeler is not None), "format_version": np.int32(FORMAT_VERSION),
            "input_coords": (i_coords[im] - o).astype(np.int32), "input_tsdf": inp.tsdf[im].astype(np.float32),
            "input_weight": inp.weight[im].astype(np.float32), "input_color": inp.color[im],
            "input_known": known_i[sl],
            "target_coords": tc, "target_tsdf": t_tsdf[tm].astype(np.float32), "target_nyu40": t_nyu[tm],
            "target_scannet20": t_s20[tm], "target_known": known_t[sl],
        }
        for l in range(1, cfg.n_levels):
            c, t, lab = downsample_level(tc, crop["target_tsdf"], crop["target_scannet20"], 2 ** l)
            crop[f"target_coords_l{l}"], crop[f"target_tsdf_l{l}"], crop[f"target_scannet20_l{l}"] = c, t, lab
        name = crop_filename(o)
        save_crop(os.path.join(out_dir, name), crop)
        crops.append({"file": name, "origin": [int(v) for v in o], "n_input": int(im.sum()),
                      "n_target": int(tm.sum())})
    return {
        "scene_id": scene_id, "crops": crops, "n_frames": len(depths), "n_input_frames": int(sum(used_keep)),
        "n_target_voxels": int(len(t_coords)), "n_input_voxels": int(len(i_coords)),
        "grid_origin": [int(v) for v in glo], "grid_dims": [int(v) for v in gdims],
        "has_labels": labeler is not None, "seconds": {"fuse": round(t_fuse, 3), "visibility": round(t_vis, 3),
                                                       "total": round(time.time() - t0, 3)},
        "params": cfg.to_json(),
    }

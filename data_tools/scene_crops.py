"""Turn one scan (a `FrameSource` + optional labelled mesh) into crops of the `sparse3d.crops` format.

One pass over the frames fuses two TSDFs: the *target* from every used frame, the *input* from a
seeded subset (`input_frames`: "drop" = runs of frames dropped with `drop_prob`, or "subset" =
`segments` contiguous runs covering `input_fraction`) or from all of them (`input_frames="all"`: one
fusion serves both, input voxels == target voxels). The known masks are camera visibility
(`known="visibility"`) or the fused voxels themselves (`known="fused"`); crops are placed on a grid,
at random or as one whole-scene box (`data_tools.placement`); per-voxel labels come from the labelled
mesh's closest triangle. The named presets are in `data_tools.recipes`; the format in `data_tools.chunks`.
"""
from __future__ import annotations

import os
import time
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from .chunks import FORMAT_VERSION, crop_filename, save_crop
from .config import CHOICES, CropConfig  # noqa: F401 - CHOICES re-exported
from .frames import FrameSource, frame_subset, input_frame_mask, scene_seed
from .fusion import FusedGrid, TSDFFusion, native_fusion
from .hierarchy import downsample_level
from .mesh_labels import MeshLabeler
from .placement import grid_origins, padded_scene_grid, random_origins
from .scannet.labels import nyu40_to_scannet20

Mesh = Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]


class SceneError(RuntimeError):
    """A scene could not be processed; the message names the file (and frame)."""


def _select(coords: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.all((coords >= lo) & (coords < hi), axis=1)


def _scatter(shape: np.ndarray, origin: np.ndarray, coords: np.ndarray, where: Optional[np.ndarray] = None
             ) -> np.ndarray:
    """bool [shape]: True at coords int [N,3] (scene lattice) - origin, where given, inside the box."""
    out = np.zeros(tuple(int(v) for v in shape), bool)
    r = coords - origin
    ok = np.all((r >= 0) & (r < shape), axis=1)
    if where is not None:
        ok &= where
    out[tuple(r[ok].T)] = True
    return out


def select_frames(n: int, scene_id: str, cfg: CropConfig) -> Tuple[List[int], np.ndarray]:
    """(target, keep): indices into the n used positions fused into the target (all, or a seeded
    target_fraction of them), and bool [len(target)] marking those also fused into the input."""
    seed = scene_seed(cfg.seed, scene_id)
    target = list(range(n))
    if cfg.target_fraction < 1:
        rng = np.random.default_rng(seed + [1])
        target = sorted(int(i) for i in rng.choice(n, max(1, int(cfg.target_fraction * n)), replace=False))
    if cfg.input_frames == "all":
        return target, np.ones(len(target), bool)
    if cfg.input_frames == "drop":
        return target, input_frame_mask(len(target), cfg.drop_prob, cfg.seed, scene_id, cfg.drop_chunk)
    keep = np.zeros(len(target), bool)
    # the input covers input_fraction of *all* frames, drawn from the target's
    keep[frame_subset(len(target), min(1.0, cfg.input_fraction * n / len(target)), cfg.segments, seed)] = True
    return target, keep


def _fuse(frames: FrameSource, scene_id: str, cfg: CropConfig, positions: List[int], keep: np.ndarray,
          progress: Optional[Callable[[int], None]]):
    """One pass over the frames: (target fusion, input fusion, depths mm uint16 list or None, poses,
    used positions, input flags)."""
    vs, tv = cfg.voxel_size, cfg.trunc_voxels
    fu_i = TSDFFusion(vs, tv, depth_max=cfg.depth_max, with_color=True)
    same = cfg.input_frames == "all"  # every frame goes into the input: the input fusion is the target fusion
    fu_t = fu_i if same else TSDFFusion(vs, tv, depth_max=cfg.depth_max, with_color=False)
    K = np.asarray(frames.intrinsic, np.float64)
    keep_depths = cfg.known == "visibility"
    depths: List[np.ndarray] = []
    poses: List[np.ndarray] = []
    used: List[int] = []
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
        if not same:
            fu_t.integrate(depth, None, K, pose)
        if keep[j]:
            fu_i.integrate(depth, color, K, pose)
        if keep_depths:
            depths.append(np.clip(np.round(depth * 1000.0), 0, 65535).astype(np.uint16))
        poses.append(pose)
        used.append(k)
        used_keep.append(bool(keep[j]))
        if progress is not None:
            progress(1)
    if errors:
        raise SceneError(f"{len(errors)} corrupt frame(s): " + "; ".join(errors[:5])
                         + (" ..." if len(errors) > 5 else ""))
    if not used:
        raise SceneError(f"{src}: no frame with a valid pose")
    if not any(used_keep):
        raise SceneError(f"{src}: none of the input frames has a valid pose")
    return fu_t, fu_i, (depths if keep_depths else None), poses, used, used_keep, K


def _visibility(depths, poses, used_keep, K, glo, gdims, cfg: CropConfig) -> Tuple[np.ndarray, np.ndarray]:
    native = native_fusion()
    dstack = torch.from_numpy(np.stack(depths))
    pstack = torch.from_numpy(np.stack(poses))
    kt = torch.from_numpy(K[:3, :3].copy())
    args = (torch.tensor(glo), torch.tensor(gdims), cfg.voxel_size, cfg.trunc_voxels * cfg.voxel_size, cfg.depth_max)
    known_t = native.observed_grid(dstack, 1000.0, kt, pstack, *args).numpy()
    sel = torch.from_numpy(np.nonzero(np.asarray(used_keep))[0])
    known_i = native.observed_grid(dstack[sel].contiguous(), 1000.0, kt, pstack[sel].contiguous(), *args).numpy()
    return known_t, known_i


def _behind(fused: FusedGrid, band_mask: np.ndarray, glo: np.ndarray, gdims: np.ndarray) -> np.ndarray:
    """bool [gdims]: fused voxels outside the band on the negative side (their value is -trunc)."""
    neg = _scatter(gdims, glo, fused.coords.astype(np.int64), fused.tsdf < 0)
    return neg & ~band_mask


def build_crops(frames: FrameSource, scene_id: str, cfg: CropConfig, mesh: Optional[Mesh] = None,
                sink: Optional[Callable[[str, Dict[str, np.ndarray]], None]] = None,
                progress: Optional[Callable[[int], None]] = None) -> Dict:
    """Fuse, label and crop one scene; hands every crop (name, dict of the `chunks` keys, masks
    unpacked bool [X,Y,Z]) to `sink`; returns the scene record (see `data_tools.chunks`).

    mesh: (vertices [V,3], faces [F,3], nyu40 per vertex [V] or None for an unlabelled mesh) or None;
    per-voxel labels (and has_labels) only with labels. Raises SceneError naming the file and frames
    that failed.
    """
    cfg.validate()
    t0 = time.time()
    vs, tv = cfg.voxel_size, cfg.trunc_voxels
    positions = list(range(0, len(frames), cfg.frame_skip))
    if not positions:
        raise SceneError(f"{scene_id}: no frames")
    target, keep = select_frames(len(positions), scene_id, cfg)
    positions = [positions[i] for i in target]
    fu_t, fu_i, depths, poses, used, used_keep, K = _fuse(frames, scene_id, cfg, positions, keep, progress)
    t_fuse = time.time() - t0

    tgt, inp = fu_t.extract(band_only=True), fu_i.extract(band_only=True)
    tgt_all, inp_all = fu_t.extract(), fu_i.extract()
    t_coords, t_tsdf = tgt.coords.astype(np.int64), tgt.tsdf
    labeler = MeshLabeler(*mesh) if mesh is not None and mesh[2] is not None else None
    if cfg.target == "mesh":
        if mesh is None:
            raise SceneError(f"{scene_id}: target='mesh' needs a mesh, none found")
        from .voxelize import mesh_sdf_band
        t_coords, t_tsdf = mesh_sdf_band(mesh[0], mesh[1], vs, tv)
        t_coords = t_coords.astype(np.int64)
    if len(t_coords) == 0:
        raise SceneError(f"{scene_id}: fusion produced no surface voxels (check depth units and poses)")
    rotation = np.asarray(getattr(frames, "rotation", np.eye(4)), np.float64)  # UpAligned: aligned = R @ source
    if labeler is not None:
        nyu, _ = labeler.closest((t_coords * vs) @ rotation[:3, :3])  # R^-1 = R^T: back to the mesh's world
        t_nyu = np.clip(nyu, 0, 255).astype(np.uint8)
    else:
        t_nyu = np.zeros(len(t_coords), np.uint8)
    t_s20 = nyu40_to_scannet20(t_nyu)

    size = np.asarray(cfg.crop_size, np.int64)
    if cfg.placement == "grid":
        origins = grid_origins(t_coords.min(0), t_coords.max(0) + 1, size, np.asarray(cfg.crop_stride, np.int64),
                               2 ** (cfg.n_levels - 1))
        glo = origins.min(0)
        gdims = origins.max(0) + size - glo
    else:
        base = tgt_all.coords if cfg.target == "fusion" else t_coords
        glo, gdims = padded_scene_grid(base, cfg.pad_to, size if cfg.placement == "random" else None)
    t_band = _scatter(gdims, glo, t_coords)
    i_coords = inp.coords.astype(np.int64)
    i_band = _scatter(gdims, glo, i_coords)
    if cfg.known == "visibility":
        known_t, known_i = _visibility(depths, poses, used_keep, K, glo, gdims, cfg)
    else:
        known_t = _scatter(gdims, glo, tgt_all.coords.astype(np.int64)) | t_band
        known_i = _scatter(gdims, glo, inp_all.coords.astype(np.int64))
    behind_t = (_behind(tgt_all, t_band, glo, gdims) if cfg.target == "fusion" else np.zeros_like(t_band)) & known_t
    behind_i = _behind(inp_all, i_band, glo, gdims) & known_i
    t_vis = time.time() - t0 - t_fuse

    if cfg.placement == "random":
        surface = _scatter(gdims, glo, t_coords, np.abs(t_tsdf) < 1.0) & known_t
        origins = glo + random_origins(surface, size, cfg.crops_per_scene, scene_seed(cfg.seed, scene_id),
                                       cfg.min_surface)
    elif cfg.placement == "whole":
        origins, size = glo[None], gdims
    crops = []
    for j, o in enumerate(origins):
        tm = _select(t_coords, o, o + size)
        im = _select(i_coords, o, o + size)
        if cfg.placement == "grid" and (tm.sum() < cfg.min_target_voxels or im.sum() < cfg.min_input_voxels):
            continue
        sl = tuple(slice(int(o[a] - glo[a]), int(o[a] - glo[a] + size[a])) for a in range(3))
        tc = (t_coords[tm] - o).astype(np.int32)
        crop = {
            "scene_id": np.array(scene_id), "crop_origin": o.astype(np.int32), "crop_size": size.astype(np.int32),
            "voxel_size": np.float32(vs), "trunc_voxels": np.float32(tv), "n_levels": np.int32(cfg.n_levels),
            "has_labels": np.bool_(labeler is not None), "format_version": np.int32(FORMAT_VERSION),
            "known_semantics": np.array(cfg.known),
            "input_coords": (i_coords[im] - o).astype(np.int32), "input_tsdf": inp.tsdf[im].astype(np.float32),
            "input_weight": inp.weight[im].astype(np.float32), "input_color": inp.color[im],
            "input_known": known_i[sl], "input_behind": behind_i[sl],
            "target_coords": tc, "target_tsdf": t_tsdf[tm].astype(np.float32), "target_nyu40": t_nyu[tm],
            "target_scannet20": t_s20[tm], "target_known": known_t[sl], "target_behind": behind_t[sl],
        }
        for l in range(1, cfg.n_levels):
            c, t, lab = downsample_level(tc, crop["target_tsdf"], crop["target_scannet20"], 2 ** l)
            crop[f"target_coords_l{l}"], crop[f"target_tsdf_l{l}"], crop[f"target_scannet20_l{l}"] = c, t, lab
        name = crop_filename(o, j if cfg.placement == "random" else None)
        if sink is not None:
            sink(name, crop)
        crops.append({"file": name, "origin": [int(v) for v in o], "size": [int(v) for v in size],
                      "n_input": int(im.sum()), "n_target": int(tm.sum())})
    ids = getattr(frames, "ids", None)
    return {
        "scene_id": scene_id, "crops": crops, "n_frames": len(used), "n_input_frames": int(sum(used_keep)),
        "n_target_voxels": int(len(t_coords)), "n_input_voxels": int(len(i_coords)),
        "grid_origin": [int(v) for v in glo], "grid_dims": [int(v) for v in gdims],
        "voxel_size": vs, "up_rotation": rotation.tolist(),
        "voxel_to_world": (rotation.T @ np.diag([vs, vs, vs, 1.0])).tolist(),
        "known": cfg.known, "recipe": cfg.recipe,
        "target_frames": [int(k) for k in used],
        "input_frames": [int(k) for k, u in zip(used, used_keep) if u],
        "frame_ids": [int(ids[k]) for k in used] if ids is not None else None,
        "has_labels": labeler is not None, "seconds": {"fuse": round(t_fuse, 3), "visibility": round(t_vis, 3),
                                                       "total": round(time.time() - t0, 3)},
        "params": cfg.to_json(),
    }


def process_scene(frames: FrameSource, scene_id: str, out_dir: str, cfg: CropConfig, mesh: Optional[Mesh] = None,
                  progress: Optional[Callable[[int], None]] = None) -> Dict:
    """`build_crops` writing each crop atomically to `<out_dir>/<name>`; returns the scene record."""
    os.makedirs(out_dir, exist_ok=True)
    return build_crops(frames, scene_id, cfg, mesh, lambda name, crop: save_crop(os.path.join(out_dir, name), crop),
                       progress)

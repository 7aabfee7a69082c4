"""3DMV data: whole scenes (voxels of the segmentation crops + their RGB-D frames), view selection per box,
and the lifting of 2D features into a batch of boxes.

    scenes = load_scenes("crops", "train", cfg)                  # [Scene(sample, frames, crop_path)]
    views = choose_views(box_sample, scene.frames, k=3)          # greedy 3DMV view selection (sparse3d.ops)
    lifted = lift_features(feats2d, [(box_sample, frames, views), ...])   # [sum N_b, C], autograd to feats2d

Voxel frame: a box's (or scene's) crop-local coordinates map to the world by
``voxel_to_world @ T(crop_origin)`` (:func:`local_voxel_to_world`), the frame `sparse3d.ops.backproject` takes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from sparse3d.tasks.segmentation.dataset import SegmentationDataset
from sparse3d.tasks.segmentation.sample import SegSample
from sparse3d.tasks.threedmv.frames import SceneFrames, load_scene_frames


@dataclass(frozen=True)
class Scene:
    """One whole scene: its segmentation sample (voxels, colour, labels), its frames, the crop file."""

    sample: SegSample
    frames: SceneFrames
    crop_path: str


def label_lut(label_tsv: str) -> np.ndarray:
    """uint8 [65536] nyu40 id of each ScanNet label id: from `label_tsv` (scannetv2-labels.combined.tsv), or
    "" = the synthetic rooms' built-in table (data_tools.synthetic.label_frames)."""
    if label_tsv:
        from data_tools.scannet.label_images import label_id_lut
        return label_id_lut(label_tsv)
    from data_tools.synthetic.label_frames import builtin_label_lut
    return builtin_label_lut()


def load_scenes(root: str, split: Optional[str], max_abs_tsdf: float, frame_step: int, depth_step: int,
                color_step: int, label_tsv: str, with_labels: bool = True, progress: bool = False) -> List[Scene]:
    """Every whole-scene crop of ``root`` under ``split`` (None = all) with its frames (label images when
    ``with_labels``)."""
    ds = SegmentationDataset(root, split, max_abs_tsdf)
    lut = label_lut(label_tsv) if with_labels else None
    idx: Sequence[int] = range(len(ds))
    if progress:
        from tqdm import tqdm
        idx = tqdm(idx, desc=f"frames of {os.path.basename(os.path.normpath(root))}", unit="scene")
    return [Scene(ds[i], load_scene_frames(ds.paths[i], frame_step, depth_step, color_step, lut), ds.paths[i])
            for i in idx]


def local_voxel_to_world(sample: SegSample) -> np.ndarray:
    """float64 [4,4]: crop-local voxel (i, j, k, 1) -> world, i.e. voxel_to_world @ T(crop_origin)."""
    if sample.voxel_to_world is None:
        raise ValueError(f"sample {sample.scene_id!r} has no voxel_to_world (no _scene.json beside its crop)")
    t = np.eye(4)
    t[:3, 3] = sample.crop_origin
    return np.asarray(sample.voxel_to_world, np.float64) @ t


def _coords(sample: SegSample, b: int = 0) -> torch.Tensor:
    c = torch.from_numpy(np.asarray(sample.coords, np.int32))
    return torch.cat([torch.full((len(c), 1), b, dtype=torch.int32), c], 1)


def choose_views(sample: SegSample, frames: SceneFrames, k: int, depth_thresh: Optional[float] = None
                 ) -> np.ndarray:
    """int64 [<= k]: the frames covering the most voxels of ``sample``, picked greedily (3DMV,
    `sparse3d.ops.select_views` with the back-projection's depth test); fewer only when there are fewer frames."""
    from sparse3d.ops import select_views
    sel = select_views(_coords(sample), torch.from_numpy(local_voxel_to_world(sample))[None],
                       torch.from_numpy(frames.depth), torch.from_numpy(frames.intrinsics),
                       torch.from_numpy(frames.poses), torch.zeros(len(frames), dtype=torch.int64), k,
                       depth_thresh=depth_thresh)
    v = sel.views[0]
    return v[v >= 0].cpu().numpy().astype(np.int64)


def lift_features(feats2d: torch.Tensor, items: Sequence[Tuple[SegSample, SceneFrames, np.ndarray]],
                  depth_thresh: Optional[float] = None, pool: str = "max") -> Tuple[torch.Tensor, torch.Tensor]:
    """(feats [sum N_b, C], n_views int32 [sum N_b]): ``sparse3d.ops.backproject`` of feats2d
    [sum k_b, C, h, w] (the feature maps of each item's views, items in order) into the voxels of each item
    (sample b's voxels, in its order, get batch index b)."""
    from sparse3d.ops import backproject
    coords, v2w, depth, intr, poses, vb = [], [], [], [], [], []
    for b, (sample, frames, views) in enumerate(items):
        coords.append(_coords(sample, b))
        v2w.append(local_voxel_to_world(sample))
        depth.append(frames.depth[views])
        intr.append(frames.intrinsics[views])
        poses.append(frames.poses[views])
        vb.append(np.full(len(views), b, np.int64))
    n_v = sum(len(v) for v in vb)
    if feats2d.shape[0] != n_v:
        raise ValueError(f"feats2d must hold one feature map per selected view ({n_v}), got {feats2d.shape[0]}")
    dev = feats2d.device
    res = backproject(torch.cat(coords).to(dev), torch.from_numpy(np.stack(v2w)).to(dev), feats2d,
                      torch.from_numpy(np.concatenate(depth)).to(dev), torch.from_numpy(np.concatenate(intr)).to(dev),
                      torch.from_numpy(np.concatenate(poses)).to(dev), torch.from_numpy(np.concatenate(vb)).to(dev),
                      depth_thresh=depth_thresh, pool=pool)
    return res.feats, res.n_views

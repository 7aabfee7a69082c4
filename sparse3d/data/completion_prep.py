"""Completion samples from RGB-D scans: input TSDF fused from a seeded subset of the frames,
target TSDF fused from all of them (data_tools' native fusion), as dense volumes on one grid.

    frames = data_tools.scannet.ScanNetScene(dir) | data_tools.scannet.RGBDFolder(dir)
    sample = scan_sample(frames, voxel_size=0.05, input_fraction=0.3, seed=0)
    crops  = random_crops(sample, size=32, n=8, seed=0)
"""
from __future__ import annotations

from typing import List, Sequence

import numpy as np

from sparse3d.data.completion_dataset import Sample, surface

# The partial input: this fraction of a scan's frames, as this many contiguous runs of the trajectory
# (whole parts of the room stay unseen, and the seen parts have holes a local model can learn to fill).
INPUT_FRACTION = 0.3
SEGMENTS = 6


def frame_subset(n_frames: int, fraction: float, segments: int, seed: int) -> List[int]:
    """``segments`` contiguous runs of frames covering ~``fraction`` of ``n_frames`` (seeded);
    contiguous runs leave whole parts of the scene unseen, which is what completion must fill."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if segments < 1:
        raise ValueError(f"segments must be >= 1, got {segments}")
    rng = np.random.default_rng(seed)
    total = max(1, int(round(fraction * n_frames)))
    run = max(1, total // segments)
    chosen: set = set()
    for s in range(segments):
        start = int(rng.integers(0, n_frames))
        chosen.update((start + i) % n_frames for i in range(run if s < segments - 1 else total - run * s))
    return sorted(chosen)


def _fuse(frames, indices: Sequence[int], voxel_size: float, trunc: float, depth_max: float):
    from data_tools.fusion import fuse_frames
    g = fuse_frames(frames, indices, voxel_size=voxel_size, trunc_voxels=trunc, depth_max=depth_max,
                    with_color=False)
    return g.coords.astype(np.int64), g.tsdf.astype(np.float32), g.weight


def scan_sample(frames, voxel_size: float = 0.05, trunc: float = 3.0, input_fraction: float = INPUT_FRACTION,
                segments: int = SEGMENTS, seed: int = 0, depth_max: float = 5.0, pad_to: int = 8,
                input_indices: Sequence[int] | None = None, target_indices: Sequence[int] | None = None) -> Sample:
    """Fuse a frame source twice (subset -> input, all -> target) onto the target's grid.

    frames: has ``len``, ``intrinsic`` and ``frame(k)`` (data_tools ScanNetScene / RGBDFolder).
    The volume is the target's bounding box padded to a multiple of ``pad_to`` voxels.
    input_indices / target_indices: explicit frame positions (default: a seeded subset / all frames);
    with a target subset, the input frames are drawn from the target's frames (self-supervised pairs).
    """
    n = len(frames)
    if n == 0:
        raise ValueError("frames holds no frames")
    tidx = list(range(n)) if target_indices is None else list(target_indices)
    if input_indices is not None:
        idx = list(input_indices)
    else:
        idx = [tidx[i] for i in frame_subset(len(tidx), input_fraction if target_indices is None
                                             else min(1.0, input_fraction * n / len(tidx)), segments, seed)]
    tc, tt, tw = _fuse(frames, tidx, voxel_size, trunc, depth_max)
    if len(tc) == 0:
        raise ValueError("fusing all frames observed no voxel (check depth units and poses)")
    ic, it, iw = _fuse(frames, idx, voxel_size, trunc, depth_max)
    lo = tc.min(0) - 2
    shape = tc.max(0) - lo + 3
    shape = ((shape + pad_to - 1) // pad_to) * pad_to

    def dense(c, t, w):
        vol = np.zeros(shape, np.float32)
        known = np.zeros(shape, bool)
        r = c - lo
        ok = ((r >= 0) & (r < shape)).all(1) & (w > 0)
        vol[tuple(r[ok].T)] = np.clip(t[ok], -trunc, trunc)
        known[tuple(r[ok].T)] = True
        return vol, known

    it_d, ik = dense(ic, it, iw)
    tt_d, tk = dense(tc, tt, tw)
    return Sample(it_d, ik, tt_d, tk, voxel_size, trunc, lo.astype(np.int64))


def random_crops(sample: Sample, size: int, n: int, seed: int, min_surface: int = 50,
                 tries: int = 20) -> List[Sample]:
    """Up to ``n`` crops ``size**3`` (a volume smaller than ``size`` is zero-padded) whose target holds
    at least ``min_surface`` surface voxels, seeded."""
    rng = np.random.default_rng(seed)
    s = sample
    if any(d < size for d in s.shape):
        pad = [(0, max(0, size - d)) for d in s.shape]
        s = Sample(np.pad(s.input_tsdf, pad), np.pad(s.input_known, pad), np.pad(s.target_tsdf, pad),
                   np.pad(s.target_known, pad), s.voxel_size, s.trunc, s.origin)
    surf = surface(s.target_tsdf, s.target_known)
    out = []
    for _ in range(n * tries):
        if len(out) == n:
            break
        lo = [int(rng.integers(0, d - size + 1)) for d in s.shape]
        sl = tuple(slice(a, a + size) for a in lo)
        if surf[sl].sum() >= min_surface:
            out.append(s.crop(lo, size))
    return out

"""RGB-D frame sources and which of their frames a sample fuses.

`FrameSource` is the one interface every reader of posed RGB-D frames implements
(`data_tools.scannet.ScanNetScene`, `data_tools.scannet.RGBDFolder`, gravity-aligned wrappers):

    len(src)                       number of frames; positions 0 .. len-1
    src.intrinsic                  float64 [3,3] depth camera intrinsics (pixels)
    src.frame(k, with_color=True)  (depth float32 [H,W] metres, 0 = invalid,
                                    color uint8 [H,W,3] resized to the depth size, or None,
                                    camera_to_world float64 [4,4]; may be non-finite for a bad pose)

Optional attributes used for messages and records when present: `ids` (the source's own frame
number of each position, e.g. the `.sens` index), `sens_path` / `root` (the file or folder read).

Frame selection for the *input* of a sample (the target always fuses every used frame):

    input_frame_mask(n, drop_prob, seed, scene_id, chunk)   runs of `chunk` frames dropped (labels recipe)
    frame_subset(n, fraction, segments, seed)               `segments` contiguous runs (completion recipe)
"""
from __future__ import annotations

import zlib
from typing import List, Optional, Protocol, Sequence, Tuple, Union, runtime_checkable

import numpy as np

Frame = Tuple[np.ndarray, Optional[np.ndarray], np.ndarray]
Seed = Union[int, Sequence[int]]


@runtime_checkable
class FrameSource(Protocol):
    """Random access to the posed RGB-D frames of one scan (see the module docstring)."""

    @property
    def intrinsic(self) -> np.ndarray:
        """float64 [3,3] depth intrinsics."""
        ...

    def __len__(self) -> int:
        ...

    def frame(self, k: int, with_color: bool = True) -> Frame:
        """(depth float32 [H,W] metres, color uint8 [H,W,3] | None, camera_to_world float64 [4,4])."""
        ...


def scene_seed(seed: int, scene_id: str) -> List[int]:
    """The seed of every random choice made for one scene: [seed, crc32(scene_id)] (numpy seed sequence).

    Depends only on the run's seed and the scene's id, so a scene gets the same frames and crops
    whichever other scenes are processed with it, in any order or worker."""
    return [int(seed), zlib.crc32(scene_id.encode())]


def input_frame_mask(n: int, drop_prob: float, seed: int, scene_id: str, chunk: int = 1) -> np.ndarray:
    """bool [n]: frames kept for the input. Frames are grouped into runs of `chunk` consecutive
    frames and each run is dropped with probability drop_prob (runs leave real holes: neighbouring
    frames see nearly the same thing); at least one run is kept. Seeded by (seed, scene_id)."""
    if chunk < 1:
        raise ValueError(f"chunk: expected >= 1, got {chunk}")
    rng = np.random.default_rng(scene_seed(seed, scene_id))
    n_runs = (n + chunk - 1) // chunk
    keep_run = rng.random(n_runs) >= drop_prob
    if n_runs and not keep_run.any():
        keep_run[rng.integers(n_runs)] = True
    return np.repeat(keep_run, chunk)[:n]


def frame_subset(n_frames: int, fraction: float, segments: int, seed: Seed) -> List[int]:
    """Sorted positions: `segments` contiguous runs (wrapping around the end) covering about
    `fraction` of `n_frames`, seeded. Contiguous runs leave whole parts of the scene unseen, which is
    what completion must fill. Runs may overlap, so fewer than round(fraction * n) positions can come."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction: expected a number in (0, 1], got {fraction}")
    if segments < 1:
        raise ValueError(f"segments: expected an int >= 1, got {segments}")
    if n_frames < 1:
        raise ValueError(f"n_frames: expected >= 1, got {n_frames}")
    rng = np.random.default_rng(seed)
    total = max(1, int(round(fraction * n_frames)))
    run = max(1, total // segments)
    chosen: set = set()
    for s in range(segments):
        start = int(rng.integers(0, n_frames))
        chosen.update((start + i) % n_frames for i in range(run if s < segments - 1 else total - run * s))
    return sorted(chosen)

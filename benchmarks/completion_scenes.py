"""The scenes the completion benchmarks score: whole-scene samples of a dataset and seeded input subsets of a real
RGB-D folder (bm_completion_baselines.py, bm_completion_ceilings.py)."""
from __future__ import annotations

import os
from typing import List, Optional, Sequence, Tuple

from sparse3d.tasks.completion.cli import INPUT_FRACTION, SEGMENTS
from sparse3d.tasks.completion.dataset import CompletionDataset, Sample
from sparse3d.tasks.completion.rgbd_eval import fuse_scan


def completion_scenes(samples: Optional[str], rgbd: Optional[str], seeds: Sequence[int], voxel_size: float,
                      trunc: float) -> List[Tuple[str, Sample]]:
    """(name, whole-scene sample): every sample of the ``samples`` crops folder (named by scene), then ``rgbd``
    fused with the completion recipe for each seed (input from a seeded 30 % of the frames, target from all,
    ``--align-up``). Exits with an error when both are empty."""
    out: List[Tuple[str, Sample]] = []
    if samples:
        ds = CompletionDataset(samples, split=None)
        out += [(os.path.basename(os.path.dirname(p)), ds[i]) for i, p in enumerate(ds.paths)]
    if rgbd:
        name = os.path.basename(os.path.normpath(rgbd))
        for seed in seeds:
            out.append((f"{name} seed {seed}", fuse_scan(rgbd, voxel_size, trunc, INPUT_FRACTION, SEGMENTS, seed, True)))
    if not out:
        raise SystemExit("error: nothing to score: give --samples and/or --rgbd")
    return out

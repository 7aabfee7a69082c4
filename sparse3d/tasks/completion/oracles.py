"""Ceilings of scene completion: predictions that borrow the target where a method could at best be right, so a
table can say how much IoU is there to win, and where.

    observed_oracle(sample)          # observed voxels take the target's occupancy; nothing added elsewhere
    near_fill_oracle(sample, d)      # the input + every target surface voxel within d voxels of observed space

Both return a :class:`~sparse3d.tasks.completion.predict.Prediction` over the sample's ``[X, Y, Z]`` grid, scored
like the network's (``score_prediction``). They read the target: they are measuring sticks, never predictions.

Why two. The prediction keeps the measurement on observed space (``decide(keep_observed=True)``), so whatever
the partial fusion gets wrong there (a voxel at the edge of the 1-voxel surface band on one side in the input
and on the other in the all-frames target) stays wrong; :func:`observed_oracle` is what fixing that alone
would give. :func:`near_fill_oracle` is what a perfect gap filler of reach ``d`` would give, the measurement
kept. ``benchmarks/bm_completion_ceilings.py`` tabulates both beside a network's own decision on observed space.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from sparse3d.tasks.completion.dataset import Sample, surface
from sparse3d.tasks.completion.predict import Prediction


def _prediction(sample: Sample, occ: np.ndarray, tsdf: np.ndarray, scored: np.ndarray) -> Prediction:
    coords = np.argwhere(occ).astype(np.int32)
    return Prediction(tsdf.astype(np.float32), occ, scored, coords, tsdf[tuple(coords.T)].astype(np.float32))


def observed_oracle(sample: Sample, occ_thresh: float = 1.0) -> Prediction:
    """Observed voxels (``input_known``) where the target is known take the target's distance and occupancy
    (``|tsdf| < occ_thresh``); the other observed voxels keep the measurement; unobserved space stays empty."""
    seen = sample.input_known
    fix = seen & sample.target_known
    tsdf = np.where(fix, sample.target_tsdf, np.where(seen, sample.input_tsdf, sample.trunc))
    occ = surface(tsdf, seen, occ_thresh)
    return _prediction(sample, occ, tsdf, seen.copy())


def near_fill_oracle(sample: Sample, reach: float, occ_thresh: float = 1.0) -> Prediction:
    """The measurement on observed voxels, plus every target surface voxel (known, ``|tsdf| < occ_thresh``) of
    unobserved space within ``reach`` voxels (Euclidean, > 0) of the nearest observed voxel, with the target's
    distance. Without observed voxels nothing is added."""
    if not reach > 0:
        raise ValueError(f"reach must be > 0 voxels, got {reach!r}")
    seen = sample.input_known
    if seen.any():
        near = ~seen & (ndimage.distance_transform_edt(~seen) <= reach)
    else:
        near = np.zeros(seen.shape, bool)
    add = near & surface(sample.target_tsdf, sample.target_known, occ_thresh)
    tsdf = np.where(seen, sample.input_tsdf, np.where(add, sample.target_tsdf, sample.trunc))
    occ = surface(sample.input_tsdf, seen, occ_thresh) | add
    return _prediction(sample, occ, tsdf, seen | add)

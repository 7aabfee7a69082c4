"""A classical reference for scene completion: volumetric hole filling by normalised Gaussian convolution of the
observed distances (in the spirit of Davis et al., "Filling holes in complex surfaces using volumetric diffusion",
2002). No learning: it closes small gaps next to what the input saw and nothing further out, so a network has to
beat it to be worth its training.

    pred = diffusion_fill(sample)                       # a Prediction, scored like the network's
    report = score_prediction(sample, pred)[0]

``benchmarks/bm_completion_baselines.py`` scores it beside the network on the demo's rooms and the real 7-Scenes scan.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from sparse3d.tasks.completion.dataset import Sample
from sparse3d.tasks.completion.predict import Prediction


def diffusion_fill(sample: Sample, sigma: float = 1.0, min_weight: float = 0.05, band: float = 1.0,
                   occ_thresh: float = 1.0) -> Prediction:
    """Observed voxels keep their measurement (occupied where ``|tsdf| < occ_thresh``). An unobserved voxel whose
    Gaussian-weighted share of observed neighbours ``w = G_sigma * known`` exceeds ``min_weight`` gets the
    normalised convolution ``G_sigma * (known tsdf) / w`` of the observed distances (voxels) and is surface where
    that is below ``band`` in magnitude; the rest stays unknown free space (+trunc).

    sigma: Gaussian std, voxels (> 0); min_weight: in (0, 1); band: > 0 voxels. Returns a
    :class:`~sparse3d.tasks.completion.predict.Prediction` over the sample's ``[X, Y, Z]`` grid."""
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0 voxels, got {sigma!r}")
    if not 0 < min_weight < 1:
        raise ValueError(f"min_weight must be in (0, 1), got {min_weight!r}")
    if not band > 0:
        raise ValueError(f"band must be > 0 voxels, got {band!r}")
    seen = sample.input_known
    known = seen.astype(np.float64)
    weight = ndimage.gaussian_filter(known, sigma)
    total = ndimage.gaussian_filter(known * np.where(seen, sample.input_tsdf, 0.0), sigma)
    reached = ~seen & (weight > min_weight)
    filled = np.where(reached, total / np.maximum(weight, 1e-12), sample.trunc)
    tsdf = np.where(seen, sample.input_tsdf, filled).astype(np.float32)
    occ = (seen & (np.abs(sample.input_tsdf) < occ_thresh)) | (reached & (np.abs(filled) < band))
    coords = np.argwhere(occ).astype(np.int32)
    return Prediction(tsdf, occ, seen | reached, coords, tsdf[tuple(coords.T)])

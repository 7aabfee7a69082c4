"""Segmentation data: whole scenes of a ``sparse3d.crops`` dataset as SegSamples, the network's input
features, random training boxes, augmentation and batching.

    ds = SegmentationDataset("crops", split="train")     # whole-scene crops (placement "whole")
    s = ds[0]                                             # a SegSample (sparse3d.tasks.segmentation.sample)
    feats = sample_features(s, model_cfg)                 # float32 [N, F]
    b = random_box(s, (48, 48, 64), rng, "class")         # a training box (a SegSample)
    c, f, l = augment(b.coords, sample_features(b, cfg.model).numpy(), b.labels, rng, cfg)
    x, y = collate([(c, f, l), ...])                      # SparseTensor + labels int64 (train.training_item)

The split is by scene, as the manifest assigns it (``sparse3d preprocess --val-fraction``): training reads
``train``, evaluation the held-out ``val`` scenes (or another dataset's scenes).
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from data_tools import split_crop_paths
from sparse3d.tasks.segmentation.config import (FEATURE_CHANNELS, IGNORE, NUM_CLASSES, SegmentationModelConfig,
                                                SegmentationTrainConfig)
from sparse3d.tasks.segmentation.sample import SegSample, load_sample, voxel_keys
from sparse3d.tensor import SparseTensor

def check_voxel_size(sample: SegSample, cfg: SegmentationModelConfig) -> None:
    """ValueError when the sample's voxel size differs from the one the model was trained at."""
    if cfg.voxel_size is not None and not math.isclose(sample.voxel_size, cfg.voxel_size, rel_tol=1e-4):
        raise ValueError(f"sample {sample.scene_id!r} has voxel size {sample.voxel_size} m but the model was "
                         f"trained at {cfg.voxel_size} m: preprocess the scene with --voxel-size {cfg.voxel_size}")


def voxel_normals(coords: np.ndarray) -> np.ndarray:
    """float32 [N, 3]: unit surface normal of each voxel, the least-variance direction of the voxel
    centres in its 3x3x3 neighbourhood (itself included), oriented so that z >= 0 (an unsigned normal:
    the near-surface band is one voxel thick, so the fused distance cannot tell the sides apart);
    0 for a voxel with fewer than 3 neighbours. coords int [N, 3]."""
    n = len(coords)
    if n == 0:
        return np.zeros((0, 3), np.float32)
    keys = voxel_keys(coords)
    sk = np.sort(keys)
    offs = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), -1).reshape(-1, 3)
    cnt = np.zeros(n)
    s1 = np.zeros((n, 3))
    s2 = np.zeros((n, 3, 3))
    for o in offs:
        k = voxel_keys(coords + o)
        pos = np.clip(np.searchsorted(sk, k), 0, n - 1)
        hit = (sk[pos] == k).astype(np.float64)
        cnt += hit
        s1 += hit[:, None] * o
        s2 += hit[:, None, None] * np.outer(o, o)[None]
    mean = s1 / cnt[:, None]
    cov = s2 / cnt[:, None, None] - mean[:, :, None] * mean[:, None, :]
    _, vecs = np.linalg.eigh(cov)
    nrm = vecs[:, :, 0]  # eigenvector of the smallest eigenvalue
    nrm = np.where(nrm[:, 2:3] < 0, -nrm, nrm)
    nrm[cnt < 3] = 0
    return nrm.astype(np.float32)


def voxel_heights(sample: SegSample) -> np.ndarray:
    """float32 [N]: height of each voxel above the floor, metres: (local z + crop_origin z) * voxel_size -
    ``sample.floor_z``. The scene lattice is axis-aligned in the up-aligned world with its z = 0 at the world's
    z = 0 (data_tools.chunks), so this is the up-aligned z, also for a scan rotated by ``--align-up``, whose
    ``voxel_to_world`` leads back to the source's world, where z need not be up (until 2026-12-03 the height was
    read there: on 7-Scenes a horizontal axis)."""
    return (sample.lattice_z() - float(sample.floor_z)).astype(np.float32)


def sample_features(sample: SegSample, cfg: SegmentationModelConfig) -> torch.Tensor:
    """The network input of a sample: float32 ``[N, cfg.in_channels]``, the groups of ``cfg.in_features``
    concatenated in FEATURE_CHANNELS order: color = RGB / 255 - 0.5 (3); height = metres above the floor (1,
    :func:`voxel_heights`); normals = unsigned surface normal (3, :func:`voxel_normals`); tsdf = fused distance
    / 3 voxels, clipped to [-1, 1] (1)."""
    cols: List[np.ndarray] = []
    for name in cfg.in_features:
        if name == "color":
            cols.append(np.asarray(sample.color, np.float32) / 255.0 - 0.5)
        elif name == "height":
            cols.append(voxel_heights(sample)[:, None])
        elif name == "normals":
            cols.append(voxel_normals(sample.coords))
        elif name == "tsdf":
            cols.append(np.clip(np.asarray(sample.tsdf, np.float32) / 3.0, -1, 1)[:, None])
    out = np.concatenate(cols, 1) if len(sample) else np.zeros((0, cfg.in_channels), np.float32)
    return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))


def feature_slices(cfg: SegmentationModelConfig) -> dict:
    """{group: slice of its columns} in the features of :func:`sample_features`."""
    out, at = {}, 0
    for name in cfg.in_features:
        out[name] = slice(at, at + FEATURE_CHANNELS[name])
        at += FEATURE_CHANNELS[name]
    return out


def random_box(sample: SegSample, size: Sequence[int], rng: np.random.Generator, centre: str = "voxel") -> SegSample:
    """A box of ``size`` voxels (X, Y, Z) around a random voxel of the sample (clamped to the sample's
    extent on each axis; an axis longer than the sample starts at its lowest voxel); ``size`` all 0:
    the whole sample. ``centre``: "voxel" = every voxel equally likely; "class" = a class present in the
    sample drawn uniformly, then one of its voxels (rare objects are seen as often as walls)."""
    if all(int(s) == 0 for s in size) or len(sample) == 0:
        return sample
    size_a = np.asarray(size, np.int64)
    lo_c, hi_c = sample.coords.min(0).astype(np.int64), sample.coords.max(0).astype(np.int64)
    if centre == "class":
        classes = np.unique(sample.labels[sample.labels != IGNORE])
        classes = classes if len(classes) else np.unique(sample.labels)
        pick = np.flatnonzero(sample.labels == classes[int(rng.integers(len(classes)))])
        at = int(pick[int(rng.integers(len(pick)))])
    elif centre == "voxel":
        at = int(rng.integers(len(sample)))
    else:
        raise ValueError(f"centre must be 'voxel' or 'class', got {centre!r}")
    mid = sample.coords[at].astype(np.int64)
    lo = np.clip(mid - size_a // 2, lo_c, np.maximum(lo_c, hi_c - size_a + 1))
    return sample.box([int(v) for v in lo], [int(v) for v in size_a])


def augment(coords: np.ndarray, feats: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
            cfg: SegmentationTrainConfig) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rotation about up (z), a flip of x, a uniform scale, a translation and colour jitter, each drawn
    from ``rng``.

    coords int32 [N, 3], feats float32 [N, F] (:func:`sample_features` of ``cfg.model``), labels uint8 [N]
    -> the same for the M <= N voxels left: voxel centres are rotated (``cfg.rotate``: "any" angle,
    "right" angles, or "none"), flipped, scaled by U(cfg.scale) about the box centre and re-quantized;
    voxels landing in one cell keep the first of them (in input order); coordinates shifted to start at an
    integer drawn from 0..cfg.translate - 1 on each axis (0 when translate <= 1), sorted by (x, y, z). The
    translation varies where the stride-2 grids of the U-Net's levels fall on the scene: without it every
    box starts at 0, the network learns the one alignment (floor and walls on even cells) and a whole
    scene, aligned otherwise, is labelled much worse. Normal features rotate and flip with the voxels; colour gets a brightness shift
    and per-channel shifts, N(0, cfg.color_jitter) each; height and tsdf are left as they are."""
    sl = feature_slices(cfg.model)
    feats = np.array(feats, np.float32, copy=True)
    if cfg.rotate == "any":
        theta = float(rng.uniform(0, 2 * np.pi))
    elif cfg.rotate == "right":
        theta = float(rng.integers(4)) * np.pi / 2
    else:
        theta = 0.0
    flip = bool(rng.integers(2))
    s = float(rng.uniform(cfg.scale[0], cfg.scale[1]))
    c, si = math.cos(theta), math.sin(theta)
    if cfg.rotate != "any":
        c, si = round(c), round(si)  # exact: right angles map cells to cells
    rot = np.array([[c, -si, 0], [si, c, 0], [0, 0, 1]], np.float64)
    if flip:
        rot = np.diag([-1.0, 1.0, 1.0]) @ rot
    jitter = rng.normal(0, cfg.color_jitter, 4) if cfg.color_jitter > 0 else np.zeros(4)
    shift = rng.integers(cfg.translate, size=3) if cfg.translate > 1 else np.zeros(3, np.int64)
    if len(coords) == 0:
        return coords, feats, labels
    p = coords.astype(np.float64) + 0.5
    centre = (p.min(0) + p.max(0)) / 2
    q = (p - centre) @ rot.T * s
    q = np.floor(q).astype(np.int64)
    q -= q.min(0) - shift
    _, first = np.unique(voxel_keys(q), return_index=True)  # sorted by key = (x, y, z); first voxel of each cell
    q, feats, labels = q[first].astype(np.int32), feats[first], labels[first]
    if "normals" in sl:
        feats[:, sl["normals"]] = feats[:, sl["normals"]] @ rot.T.astype(np.float32)
    if "color" in sl:
        feats[:, sl["color"]] += (jitter[0] + jitter[1:]).astype(np.float32)
    return q, feats, labels


def collate(items: Sequence[Tuple[np.ndarray, np.ndarray, np.ndarray]]) -> Tuple[SparseTensor, torch.Tensor]:
    """[(coords int32 [N_i, 3], feats float32 [N_i, F], labels uint8 [N_i])] -> (SparseTensor with batch
    index i, feats [sum N_i, F]; labels int64 [sum N_i], 255 = ignore)."""
    if not items:
        raise ValueError("items must not be empty")
    coords = [np.concatenate([np.full((len(c), 1), b, np.int32), np.asarray(c, np.int32)], 1)
              for b, (c, _, _) in enumerate(items)]
    x = SparseTensor(torch.from_numpy(np.concatenate(coords)),
                     torch.from_numpy(np.concatenate([np.asarray(f, np.float32) for _, f, _ in items])),
                     batch_size=len(items))
    y = torch.from_numpy(np.concatenate([np.asarray(l, np.int64) for _, _, l in items]))
    return x, y


def label_counts(samples: Sequence[SegSample], num_classes: int = NUM_CLASSES) -> np.ndarray:
    """int64 [num_classes]: labelled voxels per class over ``samples`` (255 not counted)."""
    out = np.zeros(num_classes, np.int64)
    for s in samples:
        lab = s.labels[s.labels != IGNORE].astype(np.int64)
        if len(lab) and lab.max() >= num_classes:
            raise ValueError(f"sample {s.scene_id!r} has label {int(lab.max())}, expected 0..{num_classes - 1} "
                             f"or {IGNORE}")
        out += np.bincount(lab, minlength=num_classes)
    return out


class SegmentationDataset:
    """The whole-scene crops of a ``sparse3d.crops`` dataset listed under ``split`` in
    ``<root>/manifest.json`` (None: every split), as SegSamples (decoded once, kept in memory: a scene at
    5 cm is a few MiB). Made by ``sparse3d preprocess SCANS OUT --recipe segmentation --placement whole``."""

    def __init__(self, root: str, split: Optional[str] = "train", max_abs_tsdf: float = 1.0) -> None:
        redo = f"make it with `sparse3d preprocess SCANS {root} --recipe segmentation --placement whole`"
        self.manifest, self.paths = split_crop_paths(root, split, redo)
        self.root, self.split = root, split
        self.max_abs_tsdf = float(max_abs_tsdf)
        self._cache: dict = {}

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> SegSample:
        if i not in self._cache:
            try:
                # the U-Net does not read the visibility mask
                self._cache[i] = load_sample(self.paths[i], self.max_abs_tsdf, with_known=False)
            except (KeyError, ValueError) as e:
                raise ValueError(f"{self.paths[i]}: not a labelled sparse3d.crops crop ({e})") from e
        return self._cache[i]

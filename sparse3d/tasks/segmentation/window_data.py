"""Windows of the sliding-window baseline: a SegSample (sparse3d.tasks.segmentation.sample) densified into a
padded volume, cut into 31 x 31 x 62 neighbourhoods around its (x, y) columns.

A *column* is (x, y, zb): the voxels of the sample with crop-local (x, y) whose z lies in the block
[z0 + 62 zb, z0 + 62 (zb + 1)), z0 = the sample's lowest voxel. Every voxel lies in exactly one column (scenes
taller than 62 voxels = 3.1 m at 5 cm get a second block), at height ``z - z0 - 62 zb`` in it.

    vol = SceneVolume.from_sample(sample)
    cols = vol.columns()                      # int64 [C, 3] (x, y, zb) of every column holding a voxel
    x = window_input(vol.windows(cols))       # float32 [C, 5, 31, 31, 62]
    y = vol.column_labels(cols)               # int64 [C, 62]: 0..19, 255 = ignore (empty cell or no label)
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
import torch

from data_tools import load_manifest
from data_tools.scannet.labels import IGNORE
from sparse3d.tasks.segmentation.sample import SegSample, load_sample
from sparse3d.tasks.segmentation.window_model import COLUMN_Z, HALF_XY, IN_CHANNELS, WINDOW_XY

# channels of SceneVolume.features
OCCUPIED, KNOWN, RGB = 0, 1, slice(2, 5)


@dataclass
class SceneVolume:
    """A sample as dense arrays. features uint8 [5, X + 30, Y + 30, Zc] (x, y padded by 15 on each side;
    channels occupied 0/1, known 0/1 (the sample's camera visibility ``known``, and every occupied cell: the
    ScanNet paper's known / unknown space; the padding and cells outside the crop are unknown), r, g, b);
    labels uint8 [X, Y, Zc] (255 where no labelled voxel); X, Y = the sample's crop_size (x, y); Zc = 62 * blocks;
    z0: crop-local z of volume z = 0."""

    scene_id: str
    features: np.ndarray
    labels: np.ndarray
    z0: int
    blocks: int

    @classmethod
    def from_sample(cls, s: SegSample) -> "SceneVolume":
        n = len(s)
        coords = np.asarray(s.coords, np.int64).reshape(n, 3)
        size = np.asarray(s.crop_size, np.int64).reshape(3)
        if n and ((coords.min(0) < 0).any() or (coords.max(0) >= size).any()):
            raise ValueError(f"sample {s.scene_id!r}: coords must lie in [0, crop_size={size.tolist()}), got range "
                             f"{coords.min(0).tolist()}..{coords.max(0).tolist()}")
        z0 = int(coords[:, 2].min()) if n else 0
        blocks = max(1, -(-(int(coords[:, 2].max()) - z0 + 1) // COLUMN_Z)) if n else 1
        zc = blocks * COLUMN_Z
        X, Y = int(size[0]), int(size[1])
        feats = np.zeros((IN_CHANNELS, X + 2 * HALF_XY, Y + 2 * HALF_XY, zc), np.uint8)
        if s.known is None:
            raise ValueError(f"sample {s.scene_id!r} has no camera-visibility mask (known): the baseline's known "
                             "channel needs crops preprocessed with known='visibility' (the segmentation recipe's "
                             "setting since 2026-12-03); run `sparse3d preprocess --recipe segmentation` again")
        known = np.asarray(s.known, bool)
        if known.shape != (X, Y, int(size[2])):
            raise ValueError(f"sample {s.scene_id!r}: known must be bool [crop_size={size.tolist()}], got shape "
                             f"{list(known.shape)}")
        kz0, kz1 = max(0, z0), max(0, min(int(size[2]), z0 + zc))  # crop z held by the volume
        if kz1 > kz0:
            feats[KNOWN, HALF_XY:HALF_XY + X, HALF_XY:HALF_XY + Y, kz0 - z0:kz1 - z0] = known[:, :, kz0:kz1]
        px, py, pz = coords[:, 0] + HALF_XY, coords[:, 1] + HALF_XY, coords[:, 2] - z0
        feats[OCCUPIED, px, py, pz] = 1
        feats[KNOWN, px, py, pz] = 1  # a fused voxel was seen
        feats[RGB, px, py, pz] = np.asarray(s.color, np.uint8).reshape(n, 3).T
        labels = np.full((X, Y, zc), IGNORE, np.uint8)
        labels[coords[:, 0], coords[:, 1], pz] = np.asarray(s.labels, np.uint8)
        return cls(s.scene_id, feats, labels, z0, blocks)

    def voxel_columns(self, coords: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """For crop-local voxels int [N,3] of this sample: (column index int64 [N] into :meth:`columns` of
        ``coords``, height in the column int64 [N])."""
        c = np.asarray(coords, np.int64)
        zr = c[:, 2] - self.z0
        cols = np.stack([c[:, 0], c[:, 1], zr // COLUMN_Z], 1)
        _, inverse = np.unique(cols, axis=0, return_inverse=True)
        return inverse.reshape(-1), zr % COLUMN_Z

    @staticmethod
    def columns_of(coords: np.ndarray, z0: int) -> np.ndarray:
        """int64 [C, 3]: the distinct columns (x, y, zb) of crop-local voxels ``coords`` int [N,3], sorted."""
        c = np.asarray(coords, np.int64).reshape(-1, 3)
        return np.unique(np.stack([c[:, 0], c[:, 1], (c[:, 2] - z0) // COLUMN_Z], 1), axis=0)

    def columns(self, labelled_only: bool = False) -> np.ndarray:
        """int64 [C, 3]: columns (x, y, zb) holding a voxel (``labelled_only``: a voxel with a label 0..19)."""
        occ = self.features[OCCUPIED, HALF_XY:-HALF_XY, HALF_XY:-HALF_XY] > 0
        if labelled_only:
            occ &= self.labels != IGNORE
        x, y, z = np.nonzero(occ)
        return self.columns_of(np.stack([x, y, z + self.z0], 1), self.z0)

    def windows(self, cols: np.ndarray) -> np.ndarray:
        """uint8 [C, 5, 31, 31, 62]: the neighbourhood of each column (x, y, zb) int [C, 3]."""
        cols = np.asarray(cols, np.int64).reshape(-1, 3)
        out = np.empty((len(cols), IN_CHANNELS, WINDOW_XY, WINDOW_XY, COLUMN_Z), np.uint8)
        for i, (x, y, zb) in enumerate(cols):  # padded x, y: the window of column x starts at padded x
            out[i] = self.features[:, x:x + WINDOW_XY, y:y + WINDOW_XY, zb * COLUMN_Z:(zb + 1) * COLUMN_Z]
        return out

    def column_labels(self, cols: np.ndarray) -> np.ndarray:
        """int64 [C, 62]: labels of each column's cells (255 = empty cell or unlabelled voxel)."""
        cols = np.asarray(cols, np.int64).reshape(-1, 3)
        out = np.empty((len(cols), COLUMN_Z), np.int64)
        for i, (x, y, zb) in enumerate(cols):
            out[i] = self.labels[x, y, zb * COLUMN_Z:(zb + 1) * COLUMN_Z]
        return out


def window_input(windows: np.ndarray) -> torch.Tensor:
    """The network input float32 [C, 5, 31, 31, 62] of uint8 windows: occupied and known as 0/1, colour / 255."""
    x = torch.from_numpy(np.ascontiguousarray(windows)).float()
    x[:, RGB] /= 255.0
    return x


def augment_windows(windows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each window rotated about the up axis by a random multiple of 90 degrees and flipped in x at random
    (the centre column stays the centre column, its labels unchanged). uint8 [C, 5, 31, 31, 62] in and out."""
    out = np.empty_like(windows)
    for i, w in enumerate(windows):
        w = np.rot90(w, int(rng.integers(4)), axes=(1, 2))
        out[i] = w[:, ::-1] if rng.random() < 0.5 else w
    return out


class WindowDataset:
    """The labelled columns of a ``sparse3d.crops`` dataset's samples (whole-scene crops, or any crops):
    ``split`` of its manifest ("train", "val", "test"; None = every split). Loads every sample once.

    ds.volumes: list of SceneVolume; ds.index: int64 [C, 4] (volume, x, y, zb) of every column holding a
    labelled voxel; ds.batch(ids) -> (uint8 windows [B, 5, 31, 31, 62], int64 labels [B, 62])."""

    def __init__(self, root: str, split: Optional[str] = "train", max_abs_tsdf: float = 1.0) -> None:
        if not os.path.isfile(os.path.join(root, "manifest.json")):
            raise ValueError(f"data must be a sparse3d.crops dataset folder with a manifest.json, got {root!r}")
        splits = load_manifest(root).get("splits", {})
        if split is not None and split not in splits:
            raise ValueError(f"split must be one of {sorted(splits)} (the splits of {root}/manifest.json), got {split!r}")
        rels: List[str] = [p for k in sorted(splits) if split in (None, k) for p in splits[k]]
        if not rels:
            raise ValueError(f"{root}/manifest.json lists no crops in split {split!r}")
        self.paths = [os.path.join(root, r) for r in rels]
        self.samples = [load_sample(p, max_abs_tsdf) for p in self.paths]
        self.volumes = [SceneVolume.from_sample(s) for s in self.samples]
        index = [np.concatenate([np.full((len(c), 1), i, np.int64), c], 1)
                 for i, c in enumerate(v.columns(labelled_only=True) for v in self.volumes)]
        self.index = np.concatenate(index, 0)
        if not len(self.index):
            raise ValueError(f"{root}: no labelled voxel in split {split!r} (label the scans; see has_labels)")

    def __len__(self) -> int:
        return len(self.index)

    def batch(self, ids: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        rows = self.index[np.asarray(ids, np.int64)]
        wins = np.empty((len(rows), IN_CHANNELS, WINDOW_XY, WINDOW_XY, COLUMN_Z), np.uint8)
        labels = np.empty((len(rows), COLUMN_Z), np.int64)
        for i, (v, x, y, zb) in enumerate(rows):
            col = np.array([[x, y, zb]])
            wins[i] = self.volumes[v].windows(col)[0]
            labels[i] = self.volumes[v].column_labels(col)[0]
        return wins, labels

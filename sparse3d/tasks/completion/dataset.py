"""Scene-completion samples: sparse3d.crops crops read as dense volumes, sparse input + dense target in a batch.

On disk the samples are a ``sparse3d.crops`` dataset (``sparse3d preprocess SCANS OUT --recipe completion``,
docs/dataset_format.md). In memory a *sample* (one crop, or one whole scene) is a :class:`Sample`:

    input_tsdf   float32 [X, Y, Z]  partial-scan TSDF, voxel units, +-trunc (0 where unknown)
    input_known  bool    [X, Y, Z]  observed by the partial scan (the fused voxels)
    target_tsdf  float32 [X, Y, Z]  complete TSDF, voxel units, +-trunc
    target_known bool    [X, Y, Z]  observed by the complete scan (loss mask)
    voxel_size   float   metres;  trunc float voxels;  origin int [3] (scene-lattice voxel of [0,0,0])

The network input is sparse (:func:`sparse_input`): observed voxels with ``|tsdf| < trunc``
(known = 1) plus the unobserved frontier next to observed space (known = 0, tsdf = 0).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from scipy import ndimage

from data_tools import load_manifest, split_crop_paths
from sparse3d.tensor import SparseTensor
from sparse3d.tasks.completion.loss import CompletionTarget

KEYS = ("input_tsdf", "input_known", "target_tsdf", "target_known")


@dataclass
class Sample:
    """One dense sample (see the module docstring); arrays ``[X, Y, Z]``."""

    input_tsdf: np.ndarray
    input_known: np.ndarray
    target_tsdf: np.ndarray
    target_known: np.ndarray
    voxel_size: float
    trunc: float
    origin: np.ndarray

    @property
    def shape(self) -> Tuple[int, int, int]:
        return tuple(self.input_tsdf.shape)  # type: ignore[return-value]

    def crop(self, lo: Sequence[int], size: int) -> "Sample":
        sl = tuple(slice(int(a), int(a) + size) for a in lo)
        return Sample(*(getattr(self, k)[sl].copy() for k in KEYS), self.voxel_size, self.trunc,
                      self.origin + np.asarray(lo))


def sample_from_crop(crop: dict) -> Sample:
    """A crop dict (``data_tools.load_crop`` / ``data_tools.build_crops``) as a dense Sample:
    ``data_tools.dense_volumes`` (band values, -trunc behind surfaces, +trunc at the other known voxels,
    0 where unknown); origin = the crop's origin on the scene lattice."""
    from data_tools import dense_volumes
    return Sample(*dense_volumes(crop), float(crop["voxel_size"]), float(crop["trunc_voxels"]),
                  np.asarray(crop["crop_origin"], np.int64))


def load_data_tools_crop(path: str) -> Sample:
    """One crop of a ``sparse3d.crops`` dataset (``sparse3d preprocess --recipe completion``;
    docs/dataset_format.md) as a dense Sample (:func:`sample_from_crop`). Errors name the file."""
    from data_tools import load_crop
    crop = load_crop(path)
    try:
        return sample_from_crop(crop)
    except (KeyError, ValueError) as e:
        raise ValueError(f"{path}: not a complete sparse3d.crops crop: {e}") from e


def surface(tsdf: np.ndarray, known: np.ndarray, occ_thresh: float = 1.0) -> np.ndarray:
    """bool [X, Y, Z]: known voxels with |tsdf| < occ_thresh (the occupancy of metrics and loss)."""
    return known & (np.abs(tsdf) < occ_thresh)


def sparse_input(tsdf: np.ndarray, known: np.ndarray, trunc: float, frontier: bool = True
                 ) -> Tuple[np.ndarray, np.ndarray]:
    """Dense partial scan -> (coords int32 [N, 3], feats float32 [N, 2] = (tsdf / trunc, known))."""
    band = known & (np.abs(tsdf) < trunc)
    sel = band
    if frontier:
        front = ndimage.binary_dilation(known) & ~known
        sel = band | front
    coords = np.argwhere(sel).astype(np.int32)
    idx = tuple(coords.T)
    feats = np.stack([np.where(band[idx], tsdf[idx] / trunc, 0.0), band[idx].astype(np.float32)], 1)
    return coords, feats.astype(np.float32)


def _padded(a: np.ndarray, shape: Tuple[int, int, int], fill) -> np.ndarray:
    """``a`` [X, Y, Z] at the low corner of a ``shape`` volume filled with ``fill`` (``a`` itself when it fits)."""
    if a.shape == tuple(shape):
        return a
    out = np.full(shape, fill, a.dtype)
    out[tuple(slice(0, n) for n in a.shape)] = a
    return out


def collate(samples: Sequence[Sample], frontier: bool = True, occ_thresh: float = 1.0
            ) -> Tuple[SparseTensor, CompletionTarget]:
    """Samples -> (input SparseTensor, feats [N, 2], CompletionTarget [B, X, Y, Z]). Samples of different shapes
    (whole rooms) are padded at their high end to the batch's largest extent per axis with unknown space (target
    and input unobserved: no input voxel, no loss there)."""
    if len(samples) == 0:
        raise ValueError("samples must not be empty")
    shape = tuple(max(s.shape[i] for s in samples) for i in range(3))
    coords, feats = [], []
    for b, s in enumerate(samples):
        c, f = sparse_input(s.input_tsdf, s.input_known, s.trunc, frontier)
        coords.append(np.concatenate([np.full((len(c), 1), b, np.int32), c], 1))
        feats.append(f)
    x = SparseTensor(torch.from_numpy(np.concatenate(coords)), torch.from_numpy(np.concatenate(feats)))
    tgt = CompletionTarget(torch.from_numpy(np.stack([_padded(s.target_tsdf, shape, s.trunc) for s in samples])).float(),
                           torch.from_numpy(np.stack([_padded(s.target_known, shape, False) for s in samples])),
                           occ_thresh)
    return x, tgt


def augment(s: Sample, rng: np.random.Generator) -> Sample:
    """Random rotation by k*90 degrees about z and random flips of x / y (z stays up)."""
    k = int(rng.integers(4))
    fx, fy = bool(rng.integers(2)), bool(rng.integers(2))
    arrs = []
    for key in KEYS:
        a = np.rot90(getattr(s, key), k, axes=(0, 1))
        if fx:
            a = a[::-1]
        if fy:
            a = a[:, ::-1]
        arrs.append(np.ascontiguousarray(a))
    return Sample(*arrs, s.voxel_size, s.trunc, s.origin)


class CompletionDataset(torch.utils.data.Dataset):
    """The crops of a ``sparse3d.crops`` dataset (written by ``sparse3d preprocess --recipe completion``)
    listed under ``split`` in ``<root>/manifest.json`` (split None: every split), as dense Samples
    (:func:`load_data_tools_crop`). A folder of dense ``.npz`` samples (the format before sparse3d.crops)
    is refused with a message to re-run preprocessing.

    cache_mib: keep decoded samples in memory up to this many MiB (0: decode every crop on each access).
    A cached sample's arrays are read-only: code that would change a sample in place raises instead of
    altering later steps' data."""

    def __init__(self, root: str, split: Optional[str] = "train", cache_mib: float = 0) -> None:
        if not isinstance(cache_mib, (int, float)) or isinstance(cache_mib, bool) or not cache_mib >= 0:
            raise ValueError(f"cache_mib must be a number >= 0, got {cache_mib!r}")
        if not os.path.isdir(root):
            raise ValueError(f"root must be a sparse3d.crops dataset folder, got {root!r} (not a folder)")
        man = os.path.join(root, "manifest.json")
        redo = (f"re-run preprocessing: `sparse3d preprocess SCANS {root} --recipe completion` "
                f"(add --placement whole for whole-scene evaluation samples)")
        if not os.path.isfile(man):
            found = "dense completion samples (*.npz without a manifest)" if any(
                n.endswith(".npz") for n in os.listdir(root)) else "no manifest.json and no samples"
            raise ValueError(f"{root}: expected a sparse3d.crops dataset (manifest.json), found {found}; {redo}")
        m = load_manifest(root)
        if m.get("format") != "sparse3d.crops":
            found = ("dense completion samples (a manifest with a 'samples' list, the format before "
                     "sparse3d.crops)" if "samples" in m else f"a manifest with keys {sorted(m)}")
            raise ValueError(f"{root}: expected a sparse3d.crops dataset, found {found}; {redo}")
        self.manifest, self.paths = split_crop_paths(root, split, redo)
        self.root = root
        self._cache: Dict[int, Sample] = {}
        self._cache_left = int(cache_mib * 2 ** 20)  # bytes the cache may still take

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Sample:
        s = self._cache.get(i)
        if s is not None:
            return s
        s = load_data_tools_crop(self.paths[i])
        arrays = [getattr(s, k) for k in KEYS]
        size = sum(a.nbytes for a in arrays)
        if size <= self._cache_left:
            for a in arrays:
                a.flags.writeable = False
            self._cache[i] = s
            self._cache_left -= size
        return s

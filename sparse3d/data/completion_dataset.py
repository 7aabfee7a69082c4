"""Scene-completion samples: dense volumes on disk, sparse input + dense target in a batch.

A *sample* (one crop, or one whole scene) is a ``.npz`` file with

    input_tsdf   float16 [X, Y, Z]  partial-scan TSDF, voxel units, +-trunc (0 where unknown)
    input_known  bool    [X, Y, Z]  observed by the partial scan
    target_tsdf  float16 [X, Y, Z]  complete TSDF, voxel units, +-trunc
    target_known bool    [X, Y, Z]  observed by the complete scan (loss mask)
    voxel_size   float   metres;  trunc float voxels;  origin int [3] (voxel index of [0,0,0])

A folder of samples has a ``manifest.json`` ``{"samples": [file names], ...}``.
The network input is sparse (:func:`sparse_input`): observed voxels with ``|tsdf| < trunc``
(known = 1) plus the unobserved frontier next to observed space (known = 0, tsdf = 0).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
from scipy import ndimage

from sparse3d.tensor import SparseTensor
from sparse3d.train.completion_loss import CompletionTarget

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


def save_sample(path: str, s: Sample) -> None:
    """Write atomically (temp file + os.replace)."""
    tmp = path + ".tmp.npz"
    np.savez_compressed(tmp, input_tsdf=s.input_tsdf.astype(np.float16), input_known=s.input_known.astype(bool),
                        target_tsdf=s.target_tsdf.astype(np.float16), target_known=s.target_known.astype(bool),
                        voxel_size=np.float64(s.voxel_size), trunc=np.float64(s.trunc),
                        origin=np.asarray(s.origin, np.int64))
    os.replace(tmp, path)


def load_sample(path: str) -> Sample:
    try:
        with np.load(path) as z:
            missing = [k for k in KEYS + ("voxel_size", "trunc") if k not in z]
            if missing:
                raise ValueError(f"{path}: not a completion sample, missing arrays {missing}")
            arrs = [z[k] for k in KEYS]
            origin = z["origin"] if "origin" in z else np.zeros(3, np.int64)
            s = Sample(arrs[0].astype(np.float32), arrs[1].astype(bool), arrs[2].astype(np.float32),
                       arrs[3].astype(bool), float(z["voxel_size"]), float(z["trunc"]), origin)
    except (OSError, EOFError) as e:
        raise ValueError(f"{path}: cannot read completion sample ({e})") from e
    shapes = {a.shape for a in arrs}
    if len(shapes) != 1 or len(arrs[0].shape) != 3:
        raise ValueError(f"{path}: arrays {list(KEYS)} must share one shape [X, Y, Z], got {sorted(shapes)}")
    return s


def load_data_tools_crop(path: str) -> Sample:
    """A crop written by ``data_tools.preprocess`` (docs/dataset_format.md, format "sparse3d.crops" v1)
    as a dense Sample: sparse band values scattered into [X, Y, Z]; known target voxels outside the
    band are free space (+trunc); the unpacked known masks are used as they are."""
    try:
        with np.load(path, allow_pickle=False) as z:
            size = tuple(int(v) for v in z["crop_size"])
            trunc = float(z["trunc_voxels"])
            n = int(np.prod(size))

            def unpack(name):
                return np.unpackbits(z[name])[:n].astype(bool).reshape(size)

            in_known, tg_known = unpack("input_known"), unpack("target_known")
            inp = np.zeros(size, np.float32)
            inp[tuple(z["input_coords"].T)] = z["input_tsdf"]
            tgt = np.where(tg_known, trunc, 0.0).astype(np.float32)
            tgt[tuple(z["target_coords"].T)] = z["target_tsdf"]
            s = Sample(inp, in_known | (inp != 0), tgt, tg_known, float(z["voxel_size"]), trunc,
                       np.asarray(z["crop_origin"], np.int64))
    except (OSError, KeyError, ValueError) as e:
        raise ValueError(f"{path}: cannot read a data_tools crop (format sparse3d.crops v1): {e}") from e
    return s


def write_manifest(folder: str, names: List[str], **extra) -> None:
    path = os.path.join(folder, "manifest.json")
    with open(path + ".tmp", "w") as f:
        json.dump({"samples": names, **extra}, f, indent=1)
    os.replace(path + ".tmp", path)


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


def collate(samples: Sequence[Sample], frontier: bool = True, occ_thresh: float = 1.0
            ) -> Tuple[SparseTensor, CompletionTarget]:
    """Same-shape samples -> (input SparseTensor, feats [N, 2], CompletionTarget [B, X, Y, Z])."""
    if len(samples) == 0:
        raise ValueError("samples must not be empty")
    shapes = {s.shape for s in samples}
    if len(shapes) != 1:
        raise ValueError(f"samples must share one shape to be batched, got {sorted(shapes)}")
    coords, feats = [], []
    for b, s in enumerate(samples):
        c, f = sparse_input(s.input_tsdf, s.input_known, s.trunc, frontier)
        coords.append(np.concatenate([np.full((len(c), 1), b, np.int32), c], 1))
        feats.append(f)
    x = SparseTensor(torch.from_numpy(np.concatenate(coords)), torch.from_numpy(np.concatenate(feats)))
    tgt = CompletionTarget(torch.from_numpy(np.stack([s.target_tsdf for s in samples])).float(),
                           torch.from_numpy(np.stack([s.target_known for s in samples])), occ_thresh)
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
    """Samples listed in ``<root>/manifest.json`` (or every ``*.npz`` when it has none). A manifest
    written by ``data_tools.preprocess`` is read too (its ``split`` list, crops via
    :func:`load_data_tools_crop`)."""

    def __init__(self, root: str, split: str = "train") -> None:
        if not os.path.isdir(root):
            raise ValueError(f"root must be a folder of completion samples, got {root!r} (not a folder)")
        man = os.path.join(root, "manifest.json")
        self.data_tools_format = False
        if os.path.isfile(man):
            with open(man) as f:
                m = json.load(f)
            if m.get("format") == "sparse3d.crops":  # written by data_tools.preprocess
                self.data_tools_format = True
                names = list(m["splits"].get(split, []))
            elif "samples" in m:
                names = m["samples"]
            else:
                raise ValueError(f"{man}: expected a 'samples' list or a data_tools crop manifest "
                                 f"(format 'sparse3d.crops'), got keys {sorted(m)}")
        else:
            names = sorted(n for n in os.listdir(root) if n.endswith(".npz"))
        if not names:
            raise ValueError(f"root {root!r} holds no samples (no manifest.json entries, no *.npz)")
        self.root = root
        self.paths = [os.path.join(root, n) for n in names]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Sample:
        if self.data_tools_format:
            return load_data_tools_crop(self.paths[i])
        return load_sample(self.paths[i])

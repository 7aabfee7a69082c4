"""Combining tensors whose coordinates differ: union-sum, channel concatenation, alignment."""
from __future__ import annotations

from typing import Tuple

import torch

from sparse3d.coords import pack, unpack
from sparse3d.ops import amp
from sparse3d.tensor import SparseTensor
from sparse3d.tensor import require_sparse_tensor


def _check_pair(a: SparseTensor, b: SparseTensor) -> None:
    require_sparse_tensor(a, "a")
    require_sparse_tensor(b, "b")
    if a.stride != b.stride:
        raise ValueError(f"a and b must have the same stride, got {a.stride} and {b.stride}")
    if a.device != b.device:
        raise ValueError(f"a and b must be on one device, got {a.device} and {b.device}")


def _same_dtype(a: SparseTensor, b: SparseTensor) -> Tuple[SparseTensor, SparseTensor]:
    """a and b with one feature dtype: promoted under autocast (sparse3d.ops.amp), else required."""
    fa, fb = amp.promoted(a.feats, b.feats)
    if fa is not a.feats:
        a = a.replace(fa)
    if fb is not b.feats:
        b = b.replace(fb)
    if a.dtype != b.dtype:
        raise TypeError(f"a and b must have the same feature dtype, got a.dtype={a.dtype} and b.dtype={b.dtype}; "
                        "cast one with .to(dtype=...)")
    return a, b


def _union(a: SparseTensor, b: SparseTensor) -> Tuple[int, torch.Tensor, torch.Tensor]:
    keys, inv = torch.unique(torch.cat([pack(a.coords), pack(b.coords)]), return_inverse=True)
    pa = a.manager.parent(a.key)
    parent = pa if b.manager is a.manager and a.manager.parent(b.key) == pa else None
    key = a.manager.insert(unpack(keys), a.stride, parent=parent)
    return key, inv[: len(a)], inv[len(a):]


def add(a: SparseTensor, b: SparseTensor) -> SparseTensor:
    """Union of coordinates; features summed where both exist. ``[N_a, C] + [N_b, C] -> [N_u, C]``."""
    _check_pair(a, b)
    a, b = _same_dtype(a, b)
    if a.num_channels != b.num_channels:
        raise ValueError(f"a and b must have the same number of channels, got a.num_channels={a.num_channels} "
                         f"and b.num_channels={b.num_channels}")
    if a.manager is b.manager and a.key == b.key:
        return a.replace(a.feats + b.feats)
    key, ia, ib = _union(a, b)
    n = a.manager.size(key)
    feats = a.feats.new_zeros((n, a.num_channels)).index_add(0, ia, a.feats).index_add(0, ib, b.feats)
    return SparseTensor._make(feats, a.manager, key)


def cat(a: SparseTensor, b: SparseTensor) -> SparseTensor:
    """Union of coordinates; channels concatenated, zeros where a tensor lacks a voxel.
    ``[N_a, C_a], [N_b, C_b] -> [N_u, C_a + C_b]``."""
    _check_pair(a, b)
    a, b = _same_dtype(a, b)
    if a.manager is b.manager and a.key == b.key:
        return a.replace(torch.cat([a.feats, b.feats], dim=1))
    key, ia, ib = _union(a, b)
    n = a.manager.size(key)
    fa = a.feats.new_zeros((n, a.num_channels)).index_copy(0, ia, a.feats)
    fb = b.feats.new_zeros((n, b.num_channels)).index_copy(0, ib, b.feats)
    return SparseTensor._make(torch.cat([fa, fb], dim=1), a.manager, key)


def lookup(x: SparseTensor, coords: torch.Tensor) -> torch.Tensor:
    """Row of each query coordinate in ``x``: coords int32 (or int64) ``[M, 4]`` = (batch, x, y, z) on x's
    lattice -> int64 ``[M]``, -1 where absent."""
    require_sparse_tensor(x, "x")
    if not isinstance(coords, torch.Tensor):
        raise TypeError(f"coords must be an integer torch.Tensor [M, 4], got {type(coords).__name__}")
    if coords.is_floating_point() or coords.is_complex() or coords.dtype == torch.bool:
        raise TypeError(f"coords must be an integer tensor (int32 or int64 voxel indices), got dtype {coords.dtype}; "
                        "voxelize points first (e.g. torch.floor(points / voxel_size).int())")
    if coords.dim() != 2 or coords.shape[1] != 4:
        raise ValueError(f"coords must have shape [M, 4], got {tuple(coords.shape)}")
    if coords.device != x.device:
        raise ValueError(f"coords must be on x's device {x.device}, got {coords.device}")
    return x.manager.table(x.key).lookup(coords.int().contiguous()).long()


def align(x: SparseTensor, target: SparseTensor, fill: float = 0.0) -> Tuple[torch.Tensor, torch.Tensor]:
    """Features of ``x`` at ``target``'s coordinates: -> (feats ``[N_t, C]``, found bool ``[N_t]``);
    voxels absent from ``x`` get ``fill``."""
    _check_pair(x, target)
    idx = lookup(x, target.coords)
    found = idx >= 0
    out = x.feats.new_full((len(target), x.num_channels), fill)
    out[found] = x.feats[idx[found]]
    return out, found

"""Dropping voxels by a boolean mask."""
from __future__ import annotations

import torch

from sparse3d.tensor import SparseTensor
from sparse3d.tensor import require_sparse_tensor


def prune(x: SparseTensor, keep: torch.Tensor) -> SparseTensor:
    """Keep the voxels where ``keep`` (bool ``[N]``) is True; same stride, same manager.
    feats ``[N, C]`` -> ``[keep.sum(), C]``."""
    require_sparse_tensor(x, "x")
    if not isinstance(keep, torch.Tensor) or keep.dtype != torch.bool or keep.shape != (len(x),):
        got = f"{keep.dtype} {tuple(keep.shape)}" if isinstance(keep, torch.Tensor) else type(keep).__name__
        raise ValueError(f"keep must be a bool tensor of shape [N={len(x)}], got {got}")
    keep = keep.to(x.device)
    key = x.manager.insert(x.coords[keep], x.stride, parent=x.manager.parent(x.key))
    return SparseTensor._make(x.feats[keep], x.manager, key)

"""Thin bridge from data_tools' plain arrays to `sparse3d.SparseTensor`."""
from __future__ import annotations

from typing import Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor]


def to_sparse_tensor(coords: ArrayLike, feats: ArrayLike, batch_index: int = 0, stride: int = 1):
    """Build `sparse3d.SparseTensor` from coords int [N,3] (or [N,4] with batch first) and feats [N,C] / [N].

    Returns SparseTensor(coords int32 [N,4] = (batch, x, y, z), feats float32 [N,C], stride).
    """
    try:
        from sparse3d import SparseTensor
    except ImportError as e:
        raise ImportError("sparse3d.SparseTensor is not available in this build (sparse3d/tensor.py); "
                          "use the plain (coords, feats) arrays instead") from e
    c = torch.as_tensor(np.asarray(coords) if not isinstance(coords, torch.Tensor) else coords).to(torch.int32)
    f = torch.as_tensor(np.asarray(feats) if not isinstance(feats, torch.Tensor) else feats).to(torch.float32)
    if c.ndim != 2 or c.shape[1] not in (3, 4):
        raise ValueError(f"coords: expected [N,3] or [N,4], got {list(c.shape)}")
    if f.ndim == 1:
        f = f[:, None]
    if f.ndim != 2 or f.shape[0] != c.shape[0]:
        raise ValueError(f"feats: expected [{c.shape[0]},C], got {list(f.shape)}")
    if c.shape[1] == 3:
        c = torch.cat([torch.full((c.shape[0], 1), int(batch_index), dtype=torch.int32), c], 1)
    return SparseTensor(c.contiguous(), f.contiguous(), stride=stride)

"""Pooling over kernel neighbourhoods and per batch item."""
from __future__ import annotations

from typing import Union

import torch

from sparse3d.backends import Backend, get_backend
from sparse3d.backends.base import gather_windows
from sparse3d.kernel import check_kernel_args
from sparse3d.kernel_map import KernelMap
from sparse3d.tensor import SparseTensor, _check_batch_size
from sparse3d.tensor import require_sparse_tensor


def _window_map(x: SparseTensor, kernel_size: int, stride: int, dilation: int) -> KernelMap:
    require_sparse_tensor(x, "x")
    check_kernel_args(kernel_size, stride, dilation)
    out_key = x.manager.downsample(x.key, kernel_size, stride, dilation)
    return x.manager.kernel_map(x.key, out_key, kernel_size, stride, dilation)


def max_pool3d(x: SparseTensor, kernel_size: int = 2, stride: int = 2, dilation: int = 1,
               backend: Union[str, Backend, None] = None) -> SparseTensor:
    """Max over the active voxels of each window. feats ``[N, C]`` -> ``[N_out, C]``.

    Output coordinates are those of ``conv3d`` with the same kernel_size/stride/dilation."""
    kmap = _window_map(x, kernel_size, stride, dilation)
    out = get_backend(backend).max_pool(x.feats, kmap)
    return SparseTensor._make(out, x.manager, kmap.out_key)


def avg_pool3d(x: SparseTensor, kernel_size: int = 2, stride: int = 2, dilation: int = 1) -> SparseTensor:
    """Mean over the active voxels of each window (absent voxels are not counted)."""
    kmap = _window_map(x, kernel_size, stride, dilation)
    g, present = gather_windows(x.feats, kmap.nbr_out, 0.0)
    key = kmap.out_key
    count = present.sum(dim=1, keepdim=True).clamp_min(1).to(g.dtype)
    return SparseTensor._make(g.sum(dim=1) / count, x.manager, key)


def global_pool(x: SparseTensor, mode: str = "mean", batch_size: int | None = None) -> torch.Tensor:
    """Pool all voxels of each batch item: feats ``[N, C]`` -> ``[B, C]`` (empty items give 0).

    ``batch_size`` (B) defaults to ``x.batch_size`` (largest batch index + 1) and may not be smaller."""
    require_sparse_tensor(x, "x")
    if mode not in ("mean", "max", "sum"):
        raise ValueError(f"mode must be 'mean', 'max' or 'sum', got {mode!r}")
    b = x.batch_size if batch_size is None else _check_batch_size(batch_size, x.batch_size)
    idx = x.coords[:, 0].long()
    out = x.feats.new_zeros((b, x.num_channels))
    if len(x) == 0:
        return out
    reduce = {"mean": "mean", "max": "amax", "sum": "sum"}[mode]
    index = idx[:, None].expand(-1, x.num_channels)
    return out.scatter_reduce(0, index, x.feats, reduce, include_self=False)

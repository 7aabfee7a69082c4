"""Pooling over kernel neighbourhoods and per batch item."""
from __future__ import annotations

import torch

from sparse3d.kernel import check_kernel_args
from sparse3d.tensor import SparseTensor


def _gather(x: SparseTensor, kernel_size: int, stride: int, dilation: int, fill: float):
    check_kernel_args(kernel_size, stride, dilation)
    out_key = x.manager.downsample(x.key, kernel_size, stride, dilation)
    nbr = x.manager.kernel_map(x.key, out_key, kernel_size, stride, dilation).nbr_out.long()  # [N_out, K]
    padded = torch.cat([x.feats, x.feats.new_full((1, x.num_channels), fill)], dim=0)
    idx = torch.where(nbr >= 0, nbr, torch.full_like(nbr, len(x)))
    return padded[idx], nbr >= 0, out_key  # [N_out, K, C], [N_out, K]


def max_pool3d(x: SparseTensor, kernel_size: int = 2, stride: int = 2, dilation: int = 1) -> SparseTensor:
    """Max over the active voxels of each window. feats ``[N, C]`` -> ``[N_out, C]``."""
    g, _, key = _gather(x, kernel_size, stride, dilation, float("-inf"))
    out = g.max(dim=1).values if g.shape[0] else x.feats.new_zeros((0, x.num_channels))
    return SparseTensor._make(out, x.manager, key)


def avg_pool3d(x: SparseTensor, kernel_size: int = 2, stride: int = 2, dilation: int = 1) -> SparseTensor:
    """Mean over the active voxels of each window (absent voxels are not counted)."""
    g, present, key = _gather(x, kernel_size, stride, dilation, 0.0)
    count = present.sum(dim=1, keepdim=True).clamp_min(1).to(g.dtype)
    return SparseTensor._make(g.sum(dim=1) / count, x.manager, key)


def global_pool(x: SparseTensor, mode: str = "mean", batch_size: int | None = None) -> torch.Tensor:
    """Pool all voxels of each batch item: -> ``[B, C]`` (empty items give 0)."""
    if mode not in ("mean", "max", "sum"):
        raise ValueError(f"mode must be 'mean', 'max' or 'sum', got {mode!r}")
    b = x.batch_size if batch_size is None else int(batch_size)
    idx = x.coords[:, 0].long()
    out = x.feats.new_zeros((b, x.num_channels))
    if len(x) == 0:
        return out
    reduce = {"mean": "mean", "max": "amax", "sum": "sum"}[mode]
    index = idx[:, None].expand(-1, x.num_channels)
    return out.scatter_reduce(0, index, x.feats, reduce, include_self=False)

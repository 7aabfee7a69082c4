"""Pooling and pruning modules."""
from __future__ import annotations

from typing import Optional, Union

import torch

from torch import nn

from sparse3d import ops
from sparse3d.backends import Backend, get_backend
from sparse3d.kernel import check_kernel_args
from sparse3d.tensor import SparseTensor


class MaxPool3d(nn.Module):
    """Max pooling; feats ``[N, C]`` -> ``[N_out, C]``. ``backend`` as for the conv modules."""

    def __init__(self, kernel_size: int = 2, stride: int = 2, dilation: int = 1,
                 backend: Union[str, Backend, None] = None) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.dilation = check_kernel_args(kernel_size, stride, dilation)
        get_backend(backend)  # fail early on an unknown name
        self.backend = backend

    def forward(self, x: SparseTensor) -> SparseTensor:
        return ops.max_pool3d(x, self.kernel_size, self.stride, self.dilation, self.backend)


class AvgPool3d(nn.Module):
    """Average pooling over active voxels; feats ``[N, C]`` -> ``[N_out, C]``."""

    def __init__(self, kernel_size: int = 2, stride: int = 2, dilation: int = 1) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.dilation = check_kernel_args(kernel_size, stride, dilation)

    def forward(self, x: SparseTensor) -> SparseTensor:
        return ops.avg_pool3d(x, self.kernel_size, self.stride, self.dilation)


class GlobalPool(nn.Module):
    """Pool each batch item to one vector: -> ``[B, C]``."""

    def __init__(self, mode: str = "mean") -> None:
        super().__init__()
        if mode not in ("mean", "max", "sum"):
            raise ValueError(f"mode must be 'mean', 'max' or 'sum', got {mode!r}")
        self.mode = mode

    def forward(self, x: SparseTensor, batch_size: Optional[int] = None) -> torch.Tensor:
        """``batch_size`` (B): as for :func:`sparse3d.ops.global_pool` (default ``x.batch_size``)."""
        return ops.global_pool(x, self.mode, batch_size)


class Prune(nn.Module):
    """Drop voxels: ``Prune()(x, keep)`` with keep bool ``[N]``."""

    def forward(self, x: SparseTensor, keep: torch.Tensor) -> SparseTensor:
        return ops.prune(x, keep)

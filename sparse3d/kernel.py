"""Kernel geometry: offsets of a 3D kernel and their documented order.

A kernel of size K and dilation d has K**3 offsets. Offset index k enumerates
(kx, ky, kz) in C order (x slowest, z fastest), the order of a flattened
``torch.nn.Conv3d`` weight ``[C_out, C_in, K, K, K]``. The offset of index
(kx, ky, kz) is ``((kx, ky, kz) - c) * d`` with centre ``c = (K - 1) // 2``, so an odd
kernel is centred and an even kernel reaches one step further in the positive direction
(K=2: offsets {0, 1}; with stride 2 this is the usual 2x2x2 down-sampling).

Sparse weights are ``[K**3, C_in, C_out]``.
"""
from __future__ import annotations

from typing import Tuple

import torch

MAX_KERNEL_SIZE = 7


def check_kernel_args(kernel_size: int, stride: int, dilation: int) -> Tuple[int, int, int]:
    """Validate kernel size, stride and dilation (isotropic ints); return them as ints."""
    for name, value, lo, hi in (
        ("kernel_size", kernel_size, 1, MAX_KERNEL_SIZE),
        ("stride", stride, 1, 64),
        ("dilation", dilation, 1, 64),
    ):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int (isotropic), got {type(value).__name__}: {value!r}")
        if not lo <= value <= hi:
            raise ValueError(f"{name} must be in [{lo}, {hi}], got {value}")
    return kernel_size, stride, dilation


def kernel_offsets(kernel_size: int, dilation: int = 1, device: torch.device | str = "cpu") -> torch.Tensor:
    """Offsets of a K x K x K kernel, int32 ``[K**3, 3]`` in the documented order."""
    c = (kernel_size - 1) // 2
    r = (torch.arange(kernel_size, dtype=torch.int32) - c) * dilation
    grid = torch.stack(torch.meshgrid(r, r, r, indexing="ij"), dim=-1)
    return grid.reshape(-1, 3).to(device)


def dense_to_sparse_weight(weight: torch.Tensor) -> torch.Tensor:
    """``torch.nn.Conv3d`` weight ``[C_out, C_in, K, K, K]`` -> sparse ``[K**3, C_in, C_out]``."""
    if weight.dim() != 5:
        raise ValueError(f"weight must have shape [C_out, C_in, K, K, K], got {tuple(weight.shape)}")
    c_out, c_in = weight.shape[:2]
    return weight.reshape(c_out, c_in, -1).permute(2, 1, 0).contiguous()


def sparse_to_dense_weight(weight: torch.Tensor) -> torch.Tensor:
    """Sparse ``[K**3, C_in, C_out]`` -> ``torch.nn.Conv3d`` weight ``[C_out, C_in, K, K, K]``."""
    if weight.dim() != 3:
        raise ValueError(f"weight must have shape [K**3, C_in, C_out], got {tuple(weight.shape)}")
    k = round(weight.shape[0] ** (1 / 3))
    if k**3 != weight.shape[0]:
        raise ValueError(f"weight.shape[0] must be a cube K**3, got {weight.shape[0]}")
    return weight.permute(2, 1, 0).reshape(weight.shape[2], weight.shape[1], k, k, k).contiguous()


def transposed_dense_to_sparse_weight(weight: torch.Tensor) -> torch.Tensor:
    """``torch.nn.ConvTranspose3d`` weight ``[C_in, C_out, K, K, K]`` -> ``[K**3, C_in, C_out]``."""
    if weight.dim() != 5:
        raise ValueError(f"weight must have shape [C_in, C_out, K, K, K], got {tuple(weight.shape)}")
    c_in, c_out = weight.shape[:2]
    return weight.reshape(c_in, c_out, -1).permute(2, 0, 1).contiguous()


def sparse_to_spconv_weight(weight: torch.Tensor) -> torch.Tensor:
    """Sparse ``[K**3, C_in, C_out]`` -> spconv 2.x weight ``[C_out, K, K, K, C_in]`` (its KRSC layout).

    spconv enumerates kernel offsets in the same C order (x slowest) over the axes of its indices,
    so this is a pure permute (verified against the torch backend in tests/test_backends.py). The
    same layout serves spconv's SparseConv3d, SubMConv3d, SparseConvTranspose3d and
    SparseInverseConv3d (for the inverse conv C_in is the coarse side, as in ours).
    """
    if weight.dim() != 3:
        raise ValueError(f"weight must have shape [K**3, C_in, C_out], got {tuple(weight.shape)}")
    k = round(weight.shape[0] ** (1 / 3))
    if k**3 != weight.shape[0]:
        raise ValueError(f"weight.shape[0] must be a cube K**3, got {weight.shape[0]}")
    return weight.permute(2, 0, 1).reshape(weight.shape[2], k, k, k, weight.shape[1])


def spconv_to_sparse_weight(weight: torch.Tensor) -> torch.Tensor:
    """spconv 2.x weight ``[C_out, K, K, K, C_in]`` -> sparse ``[K**3, C_in, C_out]``."""
    if weight.dim() != 5 or not weight.shape[1] == weight.shape[2] == weight.shape[3]:
        raise ValueError(f"weight must have shape [C_out, K, K, K, C_in], got {tuple(weight.shape)}")
    return weight.reshape(weight.shape[0], -1, weight.shape[4]).permute(1, 2, 0).contiguous()

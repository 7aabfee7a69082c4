"""Dense references, random sparse tensors and device lists, used by tests and benchmarks.

The dense references run ``torch.nn.functional.conv3d`` / ``conv_transpose3d`` (use float64 and
TF32 off for ground truth) with the padding that matches sparse3d's offset convention
(:mod:`sparse3d.kernel`): left pad ``c * d``, right pad ``(K - 1 - c) * d``, ``c = (K - 1) // 2``.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from sparse3d.kernel import sparse_to_dense_weight
from sparse3d.tensor import SparseTensor


def devices() -> List[str]:
    """'cpu', plus 'cuda' when a GPU is present (queried only when called)."""
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def random_coords(n: int, spatial: int, batch_size: int = 1, margin: int = 0, seed: int = 0) -> torch.Tensor:
    """Unique random coordinates int32 ``[<=n, 4]`` with x, y, z in ``[margin, spatial - margin)``."""
    g = torch.Generator().manual_seed(seed)
    span = spatial - 2 * margin
    if span <= 0:
        raise ValueError(f"spatial={spatial} leaves no room inside margin={margin}")
    b = torch.randint(0, batch_size, (n, 1), generator=g)
    xyz = torch.randint(0, span, (n, 3), generator=g) + margin
    c = torch.unique(torch.cat([b, xyz], dim=1), dim=0)
    return c.int()


def random_sparse(n: int, spatial: int, channels: int, batch_size: int = 1, margin: int = 0, seed: int = 0,
                  dtype: torch.dtype = torch.float64, device: str = "cpu") -> SparseTensor:
    """A random SparseTensor with at most ``n`` voxels and ``channels`` features."""
    c = random_coords(n, spatial, batch_size, margin, seed)
    g = torch.Generator().manual_seed(seed + 1)
    f = torch.randn(c.shape[0], channels, generator=g, dtype=dtype)
    return SparseTensor(c.to(device), f.to(device))


def _pad(kernel_size: int, dilation: int) -> Tuple[int, int]:
    c = (kernel_size - 1) // 2
    return c * dilation, (kernel_size - 1 - c) * dilation


def dense_conv(volume: torch.Tensor, weight: torch.Tensor, kernel_size: int, stride: int = 1,
               dilation: int = 1) -> torch.Tensor:
    """Dense conv with sparse3d's offset convention: volume ``[B, C_in, X, Y, Z]``, sparse weight
    ``[K**3, C_in, C_out]`` -> ``[B, C_out, X', Y', Z']`` where output o reads ``o * stride + off[k]``."""
    lo, hi = _pad(kernel_size, dilation)
    v = F.pad(volume, (lo, hi, lo, hi, lo, hi))
    return F.conv3d(v, sparse_to_dense_weight(weight), stride=stride, dilation=dilation)


def dense_conv_transpose(volume: torch.Tensor, weight: torch.Tensor, kernel_size: int, stride: int,
                         dilation: int = 1) -> Tuple[torch.Tensor, int]:
    """Dense transposed conv: input i writes to ``i * stride + off[k]``.

    Returns (volume ``[B, C_out, ...]``, shift): output index ``j`` sits at position ``j + shift``.
    """
    w = sparse_to_dense_weight(weight).transpose(0, 1)  # [C_in, C_out, K, K, K]
    out = F.conv_transpose3d(volume, w, stride=stride, dilation=dilation)
    return out, (kernel_size - 1) // 2 * dilation


def gather_dense(volume: torch.Tensor, coords: torch.Tensor, shift: int = 0) -> torch.Tensor:
    """Rows of a dense volume ``[B, C, X, Y, Z]`` at coords int ``[N, 4]`` (+ shift): -> ``[N, C]``."""
    c = coords.long()
    return volume[c[:, 0], :, c[:, 1] + shift, c[:, 2] + shift, c[:, 3] + shift]


def dense_mask(coords: torch.Tensor, shape: Sequence[int], shift: int = 0) -> torch.Tensor:
    """Bool volume ``[B, X, Y, Z]`` that is True at coords (+ shift)."""
    m = torch.zeros(tuple(shape), dtype=torch.bool)
    c = coords.long()
    m[c[:, 0], c[:, 1] + shift, c[:, 2] + shift, c[:, 3] + shift] = True
    return m


def allclose_report(a: torch.Tensor, b: torch.Tensor, atol: float, rtol: float = 0.0,
                    what: Optional[str] = None) -> None:
    """Assert ``a`` and ``b`` agree; the message gives the max |diff|."""
    if a.shape != b.shape:
        raise AssertionError(f"{what or 'tensors'}: shapes differ {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.numel() == 0:
        return
    diff = (a - b).abs().max().item()
    tol = atol + rtol * b.abs().max().item()
    if not diff <= tol:
        raise AssertionError(f"{what or 'tensors'}: max |diff| = {diff:.3e} > {tol:.3e}")

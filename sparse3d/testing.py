"""Dense references, random sparse tensors and device lists, used by tests and benchmarks.

The dense references run ``torch.nn.functional.conv3d`` / ``conv_transpose3d`` (use float64 and
TF32 off for ground truth) with the padding that matches sparse3d's offset convention
(:mod:`sparse3d.kernel`): left pad ``c * d``, right pad ``(K - 1 - c) * d``, ``c = (K - 1) // 2``.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from sparse3d.coords import pack, unpack
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


def _room_surfaces(length: int, width: int, height: int, g: torch.Generator) -> torch.Tensor:
    """Voxels (x, y, z) int64 ``[M, 3]`` (with duplicates) of a floor, four walls and box furniture."""
    def plane(ax: int, at: int, lo: Tuple[int, int], hi: Tuple[int, int], bump: bool) -> torch.Tensor:
        u = torch.arange(lo[0], hi[0])
        v = torch.arange(lo[1], hi[1])
        uu, vv = torch.meshgrid(u, v, indexing="ij")
        w = torch.full_like(uu, at)
        if bump:  # a gentle warp: real reconstructed surfaces are not perfectly flat
            phase = torch.rand(2, generator=g) * 6.283
            w = w + torch.round(0.7 * torch.sin(uu / 37.0 + phase[0]) * torch.cos(vv / 29.0 + phase[1])).long()
        cols = [uu, vv]
        cols.insert(ax, w)
        return torch.stack(cols, dim=-1).reshape(-1, 3)

    parts = [
        plane(2, 0, (0, 0), (length, width), True),                # floor (no ceiling, as in scans)
        plane(0, 0, (0, 0), (width, height), True),                # walls
        plane(0, length - 1, (0, 0), (width, height), True),
        plane(1, 0, (0, 0), (length, height), True),
        plane(1, width - 1, (0, 0), (length, height), True),
    ]
    n_boxes = 10
    for _ in range(n_boxes):  # tables, beds, cabinets, sofas: a top and four sides, no bottom
        r = torch.rand(5, generator=g)
        bx, by = int(20 + r[0] * length * 0.25), int(20 + r[1] * width * 0.25)
        bz = int(20 + r[2] * 80)
        x0, y0 = int(r[3] * (length - bx - 4)) + 2, int(r[4] * (width - by - 4)) + 2
        x1, y1 = x0 + bx, y0 + by
        parts += [plane(2, bz, (x0, y0), (x1, y1), False),
                  plane(0, x0, (y0, 1), (y1, bz), False), plane(0, x1 - 1, (y0, 1), (y1, bz), False),
                  plane(1, y0, (x0, 1), (x1, bz), False), plane(1, y1 - 1, (x0, 1), (x1, bz), False)]
    xyz = torch.cat(parts)
    return xyz[(xyz >= 0).all(dim=1)]


def scannet_like_room(n_voxels: int = 250_000, seed: int = 0) -> torch.Tensor:
    """Coordinates int32 ``[n_voxels, 4]`` = (0, x, y, z) of a synthetic ScanNet-like room at 2 cm.

    A floor, four walls (2.6 m high, no ceiling, gently warped) and ten box-shaped pieces of
    furniture (top + sides), all one-voxel-thick surfaces as in a voxelized reconstruction.
    The floor plan (aspect 5:4) is sized so the surfaces hold slightly more than ``n_voxels``;
    then random voxels are dropped (like scan holes) to give exactly ``n_voxels`` unique rows,
    sorted by (x, y, z). Deterministic for a given ``(n_voxels, seed)``. For 250k voxels the room
    spans about 4.8 m x 3.8 m x 2.6 m (~2.7 s to build on CPU). Used by benchmarks (bm_conv, bm_backends) as a realistic input.
    """
    if isinstance(n_voxels, bool) or not isinstance(n_voxels, int) or n_voxels < 1000:
        raise ValueError(f"n_voxels must be an int >= 1000, got {n_voxels!r}")
    height, target = 130, int(n_voxels * 1.06)
    length = 300
    for _ in range(6):  # fixed-point on the floor size: count grows ~ length**1.5 here
        width = max(int(length * 0.8), 40)
        keys = torch.unique(pack(torch.nn.functional.pad(
            _room_surfaces(length, width, height, torch.Generator().manual_seed(seed)), (1, 0))))
        if abs(keys.numel() - target) < 0.02 * target:
            break
        length = max(int(length * (target / keys.numel()) ** 0.6), 50)
    if keys.numel() < n_voxels:  # coarse fit undershot: grow until big enough
        while keys.numel() < n_voxels:
            length = int(length * 1.05) + 1
            keys = torch.unique(pack(torch.nn.functional.pad(
                _room_surfaces(length, int(length * 0.8), height, torch.Generator().manual_seed(seed)), (1, 0))))
    g = torch.Generator().manual_seed(seed + 1)
    keep = torch.randperm(keys.numel(), generator=g)[:n_voxels]
    return unpack(torch.sort(keys[keep]).values)

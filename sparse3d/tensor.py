"""SparseTensor: coordinates, features and the coordinate manager that they share.

    coords  int32 ``[N, 4]`` = (batch, x, y, z), voxel indices on the tensor's lattice
    feats   float ``[N, C]``
    stride  int, how coarse the lattice is (1 = finest)

Tensors made by ops from one input share its :class:`~sparse3d.coords.CoordinateManager`,
so kernel maps are computed once and reused by every layer.
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import torch

from sparse3d.coords import CoordinateManager, check_range, pack, unpack
from sparse3d.utils.checks import require_int


def _as_coords(coords: torch.Tensor, name: str = "coords") -> torch.Tensor:
    if not isinstance(coords, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of int32 [N, 4], got {type(coords).__name__}")
    if coords.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"{name} must be int32 (or int64) [N, 4] = (batch, x, y, z), got dtype {coords.dtype}")
    if coords.dim() != 2 or coords.shape[1] != 4:
        raise ValueError(f"{name} must have shape [N, 4] = (batch, x, y, z), got {tuple(coords.shape)}")
    if coords.device.type not in ("cpu", "cuda"):
        raise ValueError(f"{name} must be on the CPU or a CUDA device, got device {coords.device}")
    check_range(coords, name)
    return coords.int().contiguous()


def _check_feats(feats: torch.Tensor, name: str = "feats", n: Optional[int] = None,
                 device: Optional[torch.device] = None) -> None:
    """feats must be a floating-point torch.Tensor ``[N, C]`` (N = ``n`` and on ``device`` when given)."""
    if not isinstance(feats, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor [N, C], got {type(feats).__name__}")
    if feats.dim() != 2 or (n is not None and feats.shape[0] != n):
        want = "[N, C]" if n is None else f"[N={n}, C]"
        raise ValueError(f"{name} must have shape {want}, got {tuple(feats.shape)}")
    if not feats.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {feats.dtype}")
    if device is not None and feats.device != device:
        raise ValueError(f"{name} must be on the tensor's device {device}, got {feats.device}; move it with .to()")


def _check_batch_size(batch_size: Any, needed: int, name: str = "batch_size") -> int:
    """``batch_size`` as an int >= ``needed`` (the largest batch index present + 1)."""
    batch_size = require_int(batch_size, name)
    if batch_size < needed:
        present = f"largest batch index {needed - 1}" if needed else "no voxels"
        raise ValueError(f"{name}={batch_size} is smaller than the batch indices present ({present}, so "
                         f"{name} must be >= {needed})")
    return batch_size


class SparseTensor:
    """A batch of sparse voxel grids (see the module docstring for shapes)."""

    def __init__(self, coords: torch.Tensor, feats: torch.Tensor, stride: int = 1,
                 batch_size: Optional[int] = None) -> None:
        """coords int32 ``[N, 4]`` (batch, x, y, z), feats float ``[N, C]``; ``batch_size``: the number of
        batch items when some have no voxels (default: largest batch index + 1)."""
        coords = _as_coords(coords)
        _check_feats(feats)
        if feats.shape[0] != coords.shape[0]:
            raise ValueError(f"coords and feats must have the same N, got {coords.shape[0]} and {feats.shape[0]}")
        if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
            raise ValueError(f"stride must be an int >= 1, got {stride!r}")
        manager = CoordinateManager(feats.device)
        if batch_size is not None:
            needed = int(coords[:, 0].max()) + 1 if coords.shape[0] else 0
            manager.batch_size = _check_batch_size(batch_size, needed)
        self._init(feats, manager, manager.insert(coords, stride, check_unique=True))

    def _init(self, feats: torch.Tensor, manager: CoordinateManager, key: int) -> None:
        self.feats = feats
        self.manager = manager
        self.key = key

    @classmethod
    def _make(cls, feats: torch.Tensor, manager: CoordinateManager, key: int) -> "SparseTensor":
        """Internal constructor: no validation, shares ``manager``."""
        out = cls.__new__(cls)
        out._init(feats, manager, key)
        return out

    # ---- properties ------------------------------------------------------------------
    @property
    def coords(self) -> torch.Tensor:
        """int32 ``[N, 4]`` (batch, x, y, z)."""
        return self.manager.coords(self.key)

    @property
    def stride(self) -> int:
        return self.manager.stride(self.key)

    @property
    def device(self) -> torch.device:
        return self.feats.device

    @property
    def dtype(self) -> torch.dtype:
        return self.feats.dtype

    @property
    def num_channels(self) -> int:
        return int(self.feats.shape[1])

    @property
    def batch_size(self) -> int:
        """Number of batch items: as declared (``SparseTensor(..., batch_size=)``, :meth:`collate`), else the
        largest batch index + 1 (0 for an empty tensor)."""
        if self.manager.batch_size is not None:
            return self.manager.batch_size
        c = self.coords
        return int(c[:, 0].max()) + 1 if c.shape[0] else 0

    def __len__(self) -> int:
        return int(self.feats.shape[0])

    def __repr__(self) -> str:
        return (f"SparseTensor(N={len(self)}, C={self.num_channels}, stride={self.stride}, "
                f"dtype={self.dtype}, device={self.device})")

    # ---- feature-level helpers -------------------------------------------------------
    def replace(self, feats: torch.Tensor) -> "SparseTensor":
        """Same coordinates and manager, new features: floating point ``[N, C']`` on this tensor's device."""
        _check_feats(feats, n=len(self), device=self.device)
        return SparseTensor._make(feats, self.manager, self.key)

    def to(self, device: torch.device | str | None = None, dtype: Optional[torch.dtype] = None) -> "SparseTensor":
        """Move features (and, for a new device, the coordinate manager) / cast features."""
        feats = self.feats.to(device=device, dtype=dtype)
        if feats.device == self.device:
            return SparseTensor._make(feats, self.manager, self.key)
        return SparseTensor._make(feats, self.manager.to(feats.device), self.key)

    def cpu(self) -> "SparseTensor":
        return self.to("cpu")

    def detach(self) -> "SparseTensor":
        return self.replace(self.feats.detach())

    # ---- dense <-> sparse ------------------------------------------------------------
    @classmethod
    def from_dense(cls, volume: torch.Tensor, mask: Optional[torch.Tensor] = None) -> "SparseTensor":
        """From a dense volume ``[B, C, X, Y, Z]``; active voxels are ``mask`` (bool ``[B, X, Y, Z]``)
        or, by default, those where any channel is non-zero."""
        if not isinstance(volume, torch.Tensor) or volume.dim() != 5:
            got = tuple(volume.shape) if isinstance(volume, torch.Tensor) else type(volume).__name__
            raise ValueError(f"volume must have shape [B, C, X, Y, Z], got {got}")
        if mask is None:
            mask = (volume != 0).any(dim=1)
        elif mask.shape != (volume.shape[0],) + tuple(volume.shape[2:]) or mask.dtype != torch.bool:
            raise ValueError(f"mask must be bool [B, X, Y, Z] = {(volume.shape[0],) + tuple(volume.shape[2:])}, "
                             f"got {mask.dtype} {tuple(mask.shape)}")
        idx = mask.nonzero().int()
        feats = volume.permute(0, 2, 3, 4, 1)[mask]
        return cls(idx, feats)

    def dense(self, spatial_shape: Optional[Sequence[int]] = None, origin: Optional[Sequence[int]] = None,
              batch_size: Optional[int] = None) -> torch.Tensor:
        """Dense volume ``[B, C, X, Y, Z]``; voxel (b, x, y, z) lands at ``[b, :, x-ox, y-oy, z-oz]``.

        ``origin`` defaults to (0, 0, 0) and ``spatial_shape`` to the smallest that holds all voxels;
        ``batch_size`` (B) defaults to :attr:`batch_size` and may not be smaller.
        """
        c = self.coords.long()
        if origin is None:
            o = torch.zeros(3, dtype=torch.long, device=c.device)
        else:
            o = torch.as_tensor(list(origin), dtype=torch.long, device=c.device)
            if o.shape != (3,):
                raise ValueError(f"origin must have 3 values, got {list(origin)}")
        xyz = c[:, 1:] - o
        if xyz.numel() and int(xyz.min()) < 0:
            raise ValueError(f"origin={o.tolist()} must be <= every coordinate, got minimum "
                             f"{c[:, 1:].min(0).values.tolist()}; pass origin=")
        if spatial_shape is None:
            spatial_shape = (xyz.max(0).values + 1).tolist() if xyz.numel() else [0, 0, 0]
        spatial_shape = [int(s) for s in spatial_shape]
        if len(spatial_shape) != 3:
            raise ValueError(f"spatial_shape must have 3 values, got {spatial_shape}")
        if xyz.numel() and any(int(m) >= s for m, s in zip(xyz.max(0).values.tolist(), spatial_shape)):
            raise ValueError(f"spatial_shape={spatial_shape} does not hold voxels up to "
                             f"{xyz.max(0).values.tolist()} (relative to origin)")
        b = self.batch_size if batch_size is None else _check_batch_size(batch_size, self.batch_size)
        vol = self.feats.new_zeros((b, *spatial_shape, self.num_channels))
        vol[c[:, 0], xyz[:, 0], xyz[:, 1], xyz[:, 2]] = self.feats
        return vol.permute(0, 4, 1, 2, 3).contiguous()

    @classmethod
    def from_points(cls, points: torch.Tensor, feats: Optional[torch.Tensor] = None, voxel_size: float = 0.02,
                    batch: Optional[torch.Tensor] = None) -> Tuple["SparseTensor", torch.Tensor]:
        """Voxelize a point cloud.

        points [P, 3] float, feats [P, C] (default: ones [P, 1]), batch [P] int (default 0).
        Voxel = floor(point / voxel_size); features are averaged per voxel.
        Returns ``(tensor, point_to_voxel)`` with point_to_voxel int64 [P], the row of each point's
        voxel, so per-voxel predictions go back to points as ``pred[point_to_voxel]``.
        """
        if not isinstance(points, torch.Tensor) or points.dim() != 2 or points.shape[1] != 3:
            got = tuple(points.shape) if isinstance(points, torch.Tensor) else type(points).__name__
            raise ValueError(f"points must have shape [P, 3], got {got}")
        if not points.is_floating_point():
            raise TypeError(f"points must be floating point, got {points.dtype}")
        if not (isinstance(voxel_size, (int, float)) and voxel_size > 0):
            raise ValueError(f"voxel_size must be a positive number, got {voxel_size!r}")
        p = points.shape[0]
        if feats is None:
            feats = points.new_ones((p, 1))
        if not isinstance(feats, torch.Tensor):
            raise TypeError(f"feats must be a torch.Tensor [P, C], got {type(feats).__name__}")
        if feats.dim() != 2 or feats.shape[0] != p:
            raise ValueError(f"feats must have shape [P={p}, C], got {tuple(feats.shape)}")
        if not feats.is_floating_point():
            raise TypeError(f"feats must be a floating-point tensor, got dtype {feats.dtype}")
        if feats.device != points.device:
            raise ValueError(f"feats must be on points' device {points.device}, got {feats.device}")
        if not torch.isfinite(points).all():
            raise ValueError("points must be finite (found NaN or inf)")
        if batch is None:
            b = torch.zeros(p, dtype=torch.long, device=points.device)
        else:
            if not isinstance(batch, torch.Tensor):
                raise TypeError(f"batch must be an integer torch.Tensor [P], got {type(batch).__name__}")
            if batch.is_floating_point() or batch.is_complex() or batch.dtype == torch.bool:
                raise TypeError(f"batch must be an integer tensor (batch index per point), got dtype {batch.dtype}")
            if batch.device != points.device:
                raise ValueError(f"batch must be on points' device {points.device}, got {batch.device}")
            b = batch.long()
        if b.shape != (p,):
            raise ValueError(f"batch must have shape [P={p}], got {tuple(b.shape)}")
        xyz = torch.floor(points.double() / voxel_size).long()
        coords = torch.cat([b[:, None], xyz], dim=1)
        check_range(coords, "voxel coordinates (points / voxel_size)")
        keys, inverse = torch.unique(pack(coords), return_inverse=True)
        n = keys.shape[0]
        sums = feats.new_zeros((n, feats.shape[1])).index_add_(0, inverse, feats)
        counts = torch.bincount(inverse, minlength=n).to(feats.dtype).clamp_min(1)
        out = cls(unpack(keys), sums / counts[:, None])
        return out, inverse

    # ---- batching --------------------------------------------------------------------
    @staticmethod
    def collate(tensors: Sequence["SparseTensor"]) -> "SparseTensor":
        """Concatenate tensors into one batch; tensor j's batch items follow those of tensor j-1 (a tensor
        with no voxels and no declared batch size counts as one item, so split() gives it back)."""
        if len(tensors) == 0:
            raise ValueError("tensors must hold at least one SparseTensor, got an empty sequence")
        for i, t in enumerate(tensors):
            require_sparse_tensor(t, f"tensors[{i}]")
        first = tensors[0]
        for i, t in enumerate(tensors[1:], start=1):
            if t.dtype != first.dtype:
                raise TypeError(f"tensors must share one dtype, got tensors[0].dtype={first.dtype} and "
                                f"tensors[{i}].dtype={t.dtype}; cast with .to(dtype=...)")
            if t.num_channels != first.num_channels:
                raise ValueError(f"tensors must have the same number of channels, got tensors[0] with "
                                 f"{first.num_channels} and tensors[{i}] with {t.num_channels}")
            if t.device != first.device:
                raise ValueError(f"tensors must be on one device, got tensors[0] on {first.device} and "
                                 f"tensors[{i}] on {t.device}")
        strides = {t.stride for t in tensors}
        if len(strides) != 1:
            raise ValueError(f"tensors must share one stride, got {sorted(strides)}")
        coords, feats, base = [], [], 0
        for t in tensors:
            c = t.coords.clone()
            c[:, 0] += base
            base += max(t.batch_size, 1)
            coords.append(c)
            feats.append(t.feats)
        return SparseTensor(torch.cat(coords), torch.cat(feats), stride=strides.pop(), batch_size=base)

    def split(self) -> List["SparseTensor"]:
        """One tensor per batch item (batch index reset to 0); inverse of :meth:`collate`."""
        c = self.coords
        out = []
        for b in range(self.batch_size):
            sel = c[:, 0] == b
            cb = c[sel].clone()
            cb[:, 0] = 0
            out.append(SparseTensor(cb, self.feats[sel], stride=self.stride))
        return out


def require_sparse_tensor(value: Any, name: str) -> SparseTensor:
    """``value`` itself when it is a :class:`SparseTensor`, else TypeError
    ``"<name> must be a SparseTensor, got <type>"`` (the message dialect of :mod:`sparse3d.utils.checks`)."""
    if not isinstance(value, SparseTensor):
        raise TypeError(f"{name} must be a SparseTensor, got {type(value).__name__}")
    return value

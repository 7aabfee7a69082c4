"""TSDF fusion of RGB-D frames into a sparse voxel grid (native kernel `sparse3d._C.fusion`).

Conventions: voxel (i, j, k) samples the world point (i, j, k) * voxel_size (metres), as
Open3D's VoxelBlockGrid does. `trunc_voxels` is the truncation in voxels. Values returned
by `TSDFFusion.extract` are in *voxel units*: tsdf in [-trunc_voxels, trunc_voxels]
(positive in front of the surface), weight = number of frames that updated the voxel,
color RGB float in [0, 255]. Fusion follows Open3D's integrate kernel exactly (projective
sdf = depth - z, pixel = (int(u), int(v)), running mean); see csrc/fusion/fusion.h.
`marching_cubes` (coords, tsdf, voxel_size, weight) is `sparse3d.utils.mesh.sparse_tsdf_to_mesh`.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Optional, Sequence, Tuple

import numpy as np
import torch

from sparse3d.utils.mesh import sparse_tsdf_to_mesh as marching_cubes  # noqa: F401 - re-exported

if TYPE_CHECKING:
    from .frames import FrameSource


def native_fusion() -> ModuleType:
    """The native fusion kernels ``sparse3d._C.fusion`` (loaded through ``sparse3d._ext.load``, which
    says how to build the extension when it is missing)."""
    from sparse3d import _ext
    ext = _ext.load()
    if not hasattr(ext, "fusion"):
        raise ImportError("sparse3d._C was built without the fusion submodule (csrc/fusion): rebuild the extension")
    return ext.fusion


@dataclass
class FusedGrid:
    """Sparse fused voxels. coords int32 [N,3]; tsdf float32 [N] (voxel units); weight float32 [N];
    color uint8 [N,3] or None; voxel_size metres; trunc_voxels."""

    coords: np.ndarray
    tsdf: np.ndarray
    weight: np.ndarray
    color: Optional[np.ndarray]
    voxel_size: float
    trunc_voxels: float

    def __len__(self) -> int:
        return len(self.coords)

    def to_sparse_tensor(self, batch_index: int = 0):
        """sparse3d.SparseTensor with feats [N, 5] = (tsdf, weight, r, g, b) (color 0 if absent)."""
        from .sparse import to_sparse_tensor
        col = self.color.astype(np.float32) if self.color is not None else np.zeros((len(self), 3), np.float32)
        feats = np.concatenate([self.tsdf[:, None], self.weight[:, None], col], 1)
        return to_sparse_tensor(self.coords, feats, batch_index)


def _f64(a: np.ndarray, shape: Tuple[int, ...], name: str) -> torch.Tensor:
    a = np.asarray(a, np.float64)
    if a.shape != shape:
        raise ValueError(f"{name}: expected shape {list(shape)}, got {list(a.shape)}")
    return torch.from_numpy(np.ascontiguousarray(a))


class TSDFFusion:
    """Incremental TSDF fusion.

    voxel_size: metres (> 0); trunc_voxels: truncation in voxels (> 0); block_res: voxels per
    block edge; depth_max: depths beyond it (metres) are ignored; with_color: fuse RGB;
    threads: OpenMP threads per frame (default 1; 0 = OpenMP's default). On a busy machine 1 thread
    is fastest: OpenMP's spin-waiting barriers lose their time slices to other processes (see
    docs/data_tools.md); run scenes in parallel processes instead.
    """

    def __init__(self, voxel_size: float, trunc_voxels: float = 4.0, block_res: int = 8, depth_max: float = 5.0,
                 with_color: bool = True, threads: int = 1):
        if not voxel_size > 0:
            raise ValueError(f"voxel_size: expected > 0 metres, got {voxel_size}")
        if not trunc_voxels > 0:
            raise ValueError(f"trunc_voxels: expected > 0, got {trunc_voxels}")
        if not depth_max > 0:
            raise ValueError(f"depth_max: expected > 0 metres, got {depth_max}")
        self.voxel_size, self.trunc_voxels, self.depth_max = float(voxel_size), float(trunc_voxels), float(depth_max)
        self.with_color = with_color
        if not isinstance(threads, int) or threads < 0:
            raise ValueError(f"threads: expected an int >= 0 (0 = OpenMP default), got {threads!r}")
        self.threads = threads
        self._vol = native_fusion().TSDFVolume(self.voxel_size, self.trunc_voxels, int(block_res), bool(with_color))
        self.n_frames = 0

    def integrate(self, depth: np.ndarray, color: Optional[np.ndarray], intrinsic: np.ndarray,
                  camera_to_world: np.ndarray) -> int:
        """Fuse one frame: depth float32 [H,W] metres (0 = invalid); color uint8 [H,W,3] or None;
        intrinsic [3,3]; camera_to_world [4,4]. Returns the number of blocks it touched."""
        d = np.asarray(depth)
        if d.ndim != 2:
            raise ValueError(f"depth: expected [H,W], got {list(d.shape)}")
        dt = torch.from_numpy(np.ascontiguousarray(d, np.float32))
        if color is not None and self.with_color:
            c = np.asarray(color)
            if c.shape != d.shape + (3,) or c.dtype != np.uint8:
                raise ValueError(f"color: expected uint8 {list(d.shape) + [3]}, got {c.dtype} {list(c.shape)}")
            ct = torch.from_numpy(np.ascontiguousarray(c))
        else:
            ct = torch.empty(0, dtype=torch.uint8)
        pose = np.asarray(camera_to_world, np.float64)
        if pose.shape != (4, 4):
            raise ValueError(f"camera_to_world: expected [4,4], got {list(pose.shape)}")
        if not np.all(np.isfinite(pose)):
            raise ValueError("camera_to_world: expected finite values (frames with invalid poses must be skipped)")
        n = self._vol.integrate(dt, ct, _f64(np.asarray(intrinsic)[:3, :3], (3, 3), "intrinsic"),
                                torch.from_numpy(np.ascontiguousarray(pose)), self.depth_max, 4, self.threads)
        self.n_frames += 1
        return int(n)

    @property
    def num_blocks(self) -> int:
        return int(self._vol.num_blocks)

    def extract(self, min_weight: float = 0.0, band_only: bool = False) -> FusedGrid:
        """Observed voxels (weight > 0 and >= min_weight); band_only keeps |tsdf| < trunc."""
        coords, tsdf, weight, color = self._vol.extract(float(min_weight), 0.999999 if band_only else 1.0)
        col = np.clip(np.round(color.numpy()), 0, 255).astype(np.uint8) if self.with_color else None
        return FusedGrid(coords.numpy(), tsdf.numpy() * np.float32(self.trunc_voxels), weight.numpy(), col,
                         self.voxel_size, self.trunc_voxels)


def fuse_frames(frames: FrameSource, indices: Optional[Sequence[int]] = None, voxel_size: float = 0.04,
                trunc_voxels: float = 4.0, depth_max: float = 5.0, with_color: bool = True,
                on_error=None) -> FusedGrid:
    """Fuse frames of a `data_tools.frames.FrameSource` (`RGBDFolder`, `ScanNetScene`, ...).

    indices: positions to fuse (default all). on_error(k, exc): called for a frame that fails
    to read (then it is skipped); default re-raises.
    """
    fusion = TSDFFusion(voxel_size, trunc_voxels, depth_max=depth_max, with_color=with_color)
    K = np.asarray(frames.intrinsic)
    for k in (range(len(frames)) if indices is None else indices):
        try:
            depth, color, pose = frames.frame(int(k), with_color=with_color)
        except Exception as e:  # noqa: BLE001 - reported through on_error
            if on_error is None:
                raise
            on_error(int(k), e)
            continue
        if not np.all(np.isfinite(pose)):
            continue
        fusion.integrate(depth, color, K, pose)
    return fusion.extract()

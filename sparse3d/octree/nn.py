"""Octree modules (O-CNN's layers) over :mod:`sparse3d.octree.functional`.

Each takes ``forward(feats, octree, depth)``: feats ``[N_d, C]`` aligned with the octree's rows at ``depth``
(the non-empty rows with ``nempty=True``). Conv weights are ``[K**3, C_in, C_out]`` in the offset order of
:mod:`sparse3d.kernel`, the same parameters as :class:`sparse3d.nn.Conv3d` (the conv modules are its
kind: :func:`sparse3d.nn.set_backend` reaches them too), so a checkpoint moves between the backends.
"""
from __future__ import annotations

from typing import Tuple, Union

import torch
from torch import nn

from sparse3d.backends import Backend
from sparse3d.nn.conv import _ConvBase
from sparse3d.octree import functional as F
from sparse3d.octree.structure import Octree
from sparse3d.utils.checks import require_choice

__all__ = ["OctreeConv", "OctreeDeconv", "OctreeMaxPool", "OctreeAvgPool", "OctreeMaxUnpool", "OctreeUpsample"]


class _OctreeConvBase(_ConvBase):
    """The weights and checks shared by OctreeConv and OctreeDeconv: stride 1 takes kernel 1 or 3, stride 2
    kernel 2 or 3; ``nempty``: run on the non-empty nodes only."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, nempty: bool,
                 bias: bool, backend: Union[str, Backend, None]) -> None:
        require_choice(stride, "stride", (1, 2))
        require_choice(kernel_size, f"kernel_size (stride {stride})", (1, 3) if stride == 1 else (2, 3))
        super().__init__(in_channels, out_channels, kernel_size, stride, 1, bias, backend)
        self.nempty = bool(nempty)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", nempty={self.nempty}"


class OctreeConv(_OctreeConvBase):
    """Octree conv: stride 1 (kernel 1 or 3) at one depth, stride 2 (kernel 2 or 3) to the parent depth."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 nempty: bool = False, bias: bool = True, backend: Union[str, Backend, None] = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, nempty, bias, backend)

    def forward(self, feats: torch.Tensor, octree: Octree, depth: int) -> torch.Tensor:
        return F.octree_conv(feats, octree, depth, self.weight, self.bias, self.kernel_size, self.stride,
                             self.nempty, self.backend)


class OctreeDeconv(_OctreeConvBase):
    """Transposed octree conv: stride 2 (kernel 2 or 3) to the children's depth, or stride 1 (kernel 3)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 2, stride: int = 2,
                 nempty: bool = False, bias: bool = True, backend: Union[str, Backend, None] = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, nempty, bias, backend)

    def forward(self, feats: torch.Tensor, octree: Octree, depth: int) -> torch.Tensor:
        return F.octree_deconv(feats, octree, depth, self.weight, self.bias, self.kernel_size, self.stride,
                               self.nempty, self.backend)


class OctreeMaxPool(nn.Module):
    """Max over the 8 children: ``[N_d, C]`` -> ``[N_{d-1}, C]`` (and the indices with ``return_indices``)."""

    def __init__(self, nempty: bool = False, return_indices: bool = False) -> None:
        super().__init__()
        self.nempty, self.return_indices = bool(nempty), bool(return_indices)

    def forward(self, feats: torch.Tensor, octree: Octree, depth: int
                ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        return F.octree_max_pool(feats, octree, depth, self.nempty, self.return_indices)


class OctreeAvgPool(nn.Module):
    """Mean over the present children: ``[N_d, C]`` -> ``[N_{d-1}, C]``."""

    def __init__(self, nempty: bool = False) -> None:
        super().__init__()
        self.nempty = bool(nempty)

    def forward(self, feats: torch.Tensor, octree: Octree, depth: int) -> torch.Tensor:
        return F.octree_avg_pool(feats, octree, depth, self.nempty)


class OctreeMaxUnpool(nn.Module):
    """Inverse of :class:`OctreeMaxPool` (``return_indices=True``): ``[N_d, C]`` -> ``[N_{d+1}, C]``."""

    def __init__(self, nempty: bool = False) -> None:
        super().__init__()
        self.nempty = bool(nempty)

    def forward(self, feats: torch.Tensor, indices: torch.Tensor, octree: Octree, depth: int) -> torch.Tensor:
        return F.octree_max_unpool(feats, indices, octree, depth, self.nempty)


class OctreeUpsample(nn.Module):
    """Nearest up-sampling (average unpooling) to the children: ``[N_d, C]`` -> ``[N_{d+1}, C]``."""

    def __init__(self, nempty: bool = False) -> None:
        super().__init__()
        self.nempty = bool(nempty)

    def forward(self, feats: torch.Tensor, octree: Octree, depth: int) -> torch.Tensor:
        return F.octree_upsample(feats, octree, depth, self.nempty)

"""The native backend: sparse3d's own C++ (and, when built, CUDA) kernels in csrc/conv."""
from __future__ import annotations

import torch

from sparse3d import _ext
from sparse3d.backends.base import NeighborTableBackend


class NativeBackend(NeighborTableBackend):
    """Gather-GEMM-scatter over output tiles (see csrc/conv/conv_cpu.cpp).

    ``tile`` is the number of output rows one thread handles at a time.
    """

    name = "native"

    def __init__(self, tile: int = 2048) -> None:
        if tile < 1:
            raise ValueError(f"tile must be >= 1, got {tile}")
        self.tile = tile

    def forward(self, feats: torch.Tensor, weight: torch.Tensor, nbr: torch.Tensor) -> torch.Tensor:
        return _ext.load().conv.forward(feats.contiguous(), weight.contiguous(), nbr, self.tile)

    def weight_grad(self, feats: torch.Tensor, grad_out: torch.Tensor, nbr: torch.Tensor) -> torch.Tensor:
        return _ext.load().conv.weight_grad(feats.contiguous(), grad_out.contiguous(), nbr, self.tile)

"""The torch backend: a pure-PyTorch reference (any dtype incl. float64, any device).

Slow but simple and independent of csrc/, so tests use it as a second opinion. Its gradients come
from PyTorch's autograd through the gather / matmul / index_add of :meth:`TorchBackend.forward` (not
from the hand-written backward the other neighbor-table backends share), so they check that backward
too, and higher-order gradients work.
"""
from __future__ import annotations

import torch

from sparse3d.backends.base import NeighborTableBackend
from sparse3d.kernel_map import KernelMap


class TorchBackend(NeighborTableBackend):
    name = "torch"

    def conv(self, feats: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
        """feats ``[N_in, C_in]``, weight ``[K, C_in, C_out]`` -> ``[N_out, C_out]``, differentiated by autograd."""
        return self.forward(feats, weight, kmap.nbr_out)

    def forward(self, feats: torch.Tensor, weight: torch.Tensor, nbr: torch.Tensor) -> torch.Tensor:
        out = feats.new_zeros((nbr.shape[0], weight.shape[2]))
        for k in range(nbr.shape[1]):
            rows = (nbr[:, k] >= 0).nonzero().squeeze(1)
            if rows.numel():
                out.index_add_(0, rows, feats[nbr[rows, k].long()] @ weight[k])
        return out

    def weight_grad(self, feats: torch.Tensor, grad_out: torch.Tensor, nbr: torch.Tensor) -> torch.Tensor:
        grad = feats.new_zeros((nbr.shape[1], feats.shape[1], grad_out.shape[1]))
        for k in range(nbr.shape[1]):
            rows = (nbr[:, k] >= 0).nonzero().squeeze(1)
            if rows.numel():
                grad[k] = feats[nbr[rows, k].long()].t() @ grad_out[rows]
        return grad

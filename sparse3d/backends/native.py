"""The native backend: sparse3d's own C++ (and, when built, CUDA) kernels in csrc/conv."""
from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from sparse3d import _ext
from sparse3d.backends.base import NeighborTableBackend
from sparse3d.coords import CoordinateManager, KernelMap

GATHER_MODES = ("auto", "tables", "pairs", "implicit")


class NativeBackend(NeighborTableBackend):
    """sparse3d's kernels, over one of three forms of the kernel map.

    ``gather="tables"``: tiled gather-GEMM-scatter over the neighbor tables (csrc/conv/conv_cpu.cpp;
    the CPU's fast path). ``gather="pairs"``: per-offset pair lists built once per kernel map and
    shared by the forward and both backward passes (csrc/conv/conv_pairs.h; gather + cuBLAS GEMM +
    scatter per offset on CUDA, an ATen loop on the CPU). ``gather="implicit"``: implicit-GEMM CUDA
    kernels that fuse the gather into the GEMM tiles (csrc/conv/implicit_gemm.cuh; CUDA tensors
    only). ``"auto"`` (default): pairs for CUDA tensors, tables for CPU tensors.
    ``tile`` is the number of output rows one CPU thread handles at a time (tables only).
    """

    name = "native"

    def __init__(self, tile: int = 2048, gather: str = "auto") -> None:
        if tile < 1:
            raise ValueError(f"tile must be >= 1, got {tile}")
        if gather not in GATHER_MODES:
            raise ValueError(f"gather must be one of {GATHER_MODES}, got {gather!r}")
        self.tile = tile
        self.gather = gather

    def conv(self, feats: torch.Tensor, weight: torch.Tensor, kmap: KernelMap, op: str,
             manager: CoordinateManager) -> torch.Tensor:
        if self.gather == "implicit":
            if not feats.is_cuda:
                raise ValueError("NativeBackend(gather='implicit') runs the implicit-GEMM CUDA kernels and takes "
                                 f"CUDA tensors, got feats on {feats.device}; use gather='tables' or 'auto' on the CPU")
            return _ImplicitConv.apply(feats, weight, kmap)
        use_pairs = self.gather == "pairs" or (self.gather == "auto" and feats.is_cuda)
        if use_pairs:
            return _PairsConv.apply(feats, weight, kmap.pairs)
        return super().conv(feats, weight, kmap, op, manager)

    def forward(self, feats: torch.Tensor, weight: torch.Tensor, nbr: torch.Tensor) -> torch.Tensor:
        return _ext.load().conv.forward(feats.contiguous(), weight.contiguous(), nbr, self.tile)

    def weight_grad(self, feats: torch.Tensor, grad_out: torch.Tensor, nbr: torch.Tensor) -> torch.Tensor:
        return _ext.load().conv.weight_grad(feats.contiguous(), grad_out.contiguous(), nbr, self.tile)

    def __repr__(self) -> str:
        return f"<sparse3d backend 'native' gather={self.gather!r}>"


class _PairsConv(torch.autograd.Function):
    """feats ``[N_in, C_in]``, weight ``[K, C_in, C_out]``, ConvPairs -> ``[N_out, C_out]``; the input
    gradient runs the swapped pairs with the transposed weight, the weight gradient the same pairs."""

    @staticmethod
    def forward(ctx, feats, weight, pairs):  # type: ignore[override]
        ctx.save_for_backward(feats, weight)
        ctx.pairs = pairs
        return _ext.load().conv.forward_pairs(feats.contiguous(), weight.contiguous(), pairs)

    @staticmethod
    @once_differentiable  # the kernels are opaque to autograd: double backward raises instead of being wrong
    def backward(ctx, grad_out):  # type: ignore[override]
        feats, weight = ctx.saved_tensors
        C = _ext.load()
        grad_out = grad_out.contiguous()
        grad_feats = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_feats = C.conv.forward_pairs(grad_out, weight.transpose(1, 2).contiguous(), ctx.pairs.swapped())
        if ctx.needs_input_grad[1]:
            grad_weight = C.conv.weight_grad_pairs(feats.contiguous(), grad_out, ctx.pairs)
        return grad_feats, grad_weight, None


class _ImplicitConv(torch.autograd.Function):
    """feats ``[N_in, C_in]``, weight ``[K, C_in, C_out]``, KernelMap -> ``[N_out, C_out]``: the forward
    pass over the output-side table, the input gradient over the input-side table with the
    transposed weight, the weight gradient over the pair lists."""

    @staticmethod
    def forward(ctx, feats, weight, kmap):  # type: ignore[override]
        ctx.save_for_backward(feats, weight)
        ctx.kmap = kmap
        return _ext.load().conv.forward_implicit(feats.contiguous(), weight.contiguous(), kmap.implicit_out)

    @staticmethod
    @once_differentiable  # the kernels are opaque to autograd: double backward raises instead of being wrong
    def backward(ctx, grad_out):  # type: ignore[override]
        feats, weight = ctx.saved_tensors
        C = _ext.load()
        grad_out = grad_out.contiguous()
        grad_feats = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_feats = C.conv.forward_implicit(grad_out, weight.transpose(1, 2).contiguous(), ctx.kmap.implicit_in)
        if ctx.needs_input_grad[1]:
            grad_weight = C.conv.weight_grad_implicit(feats.contiguous(), grad_out, ctx.kmap.pairs)
        return grad_feats, grad_weight, None

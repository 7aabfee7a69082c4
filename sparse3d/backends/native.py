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
            return _FormConv.apply(feats, weight, _ImplicitForm(kmap))
        use_pairs = self.gather == "pairs" or (self.gather == "auto" and feats.is_cuda)
        if use_pairs:
            return _FormConv.apply(feats, weight, _PairsForm(kmap))
        return super().conv(feats, weight, kmap, op, manager)

    def forward(self, feats: torch.Tensor, weight: torch.Tensor, nbr: torch.Tensor) -> torch.Tensor:
        return _ext.load().conv.forward(feats.contiguous(), weight.contiguous(), nbr, self.tile)

    def weight_grad(self, feats: torch.Tensor, grad_out: torch.Tensor, nbr: torch.Tensor) -> torch.Tensor:
        return _ext.load().conv.weight_grad(feats.contiguous(), grad_out.contiguous(), nbr, self.tile)

    def __repr__(self) -> str:
        return f"<sparse3d backend 'native' gather={self.gather!r}>"


class _PairsForm:
    """Pair lists: the forward pass and the weight gradient over the pairs, the input gradient over
    the swapped pairs (csrc/conv/conv_pairs.h)."""

    def __init__(self, kmap: KernelMap) -> None:
        self.pairs = kmap.pairs

    def forward(self, feats, weight):
        return _ext.load().conv.forward_pairs(feats, weight, self.pairs)

    def input_grad(self, grad_out, weight_t):
        return _ext.load().conv.forward_pairs(grad_out, weight_t, self.pairs.swapped())

    def weight_grad(self, feats, grad_out):
        return _ext.load().conv.weight_grad_pairs(feats, grad_out, self.pairs)


class _ImplicitForm:
    """Implicit GEMM: the forward pass over the output-side table, the input gradient over the
    input-side table, the weight gradient over the pair lists (csrc/conv/implicit_gemm.h)."""

    def __init__(self, kmap: KernelMap) -> None:
        self.kmap = kmap

    def forward(self, feats, weight):
        return _ext.load().conv.forward_implicit(feats, weight, self.kmap.implicit_out)

    def input_grad(self, grad_out, weight_t):
        return _ext.load().conv.forward_implicit(grad_out, weight_t, self.kmap.implicit_in)

    def weight_grad(self, feats, grad_out):
        return _ext.load().conv.weight_grad_implicit(feats, grad_out, self.kmap.pairs)


class _FormConv(torch.autograd.Function):
    """feats ``[N_in, C_in]``, weight ``[K, C_in, C_out]``, a kernel-map form (_PairsForm or
    _ImplicitForm) -> ``[N_out, C_out]``; the input gradient is the form's transposed pass with the
    transposed weight ``[K, C_out, C_in]``."""

    @staticmethod
    def forward(ctx, feats, weight, form):  # type: ignore[override]
        ctx.save_for_backward(feats, weight)
        ctx.form = form
        return form.forward(feats.contiguous(), weight.contiguous())

    @staticmethod
    @once_differentiable  # the kernels are opaque to autograd: double backward raises instead of being wrong
    def backward(ctx, grad_out):  # type: ignore[override]
        feats, weight = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        grad_feats = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_feats = ctx.form.input_grad(grad_out, weight.transpose(1, 2).contiguous())
        if ctx.needs_input_grad[1]:
            grad_weight = ctx.form.weight_grad(feats.contiguous(), grad_out)
        return grad_feats, grad_weight, None

"""The native backend: sparse3d's own C++ (and, when built, CUDA) kernels in csrc/conv.

It runs a kernel map in one of three forms. The neighbor tables are the map's own (geometry); the
other two forms are native's *plan* of the map, :class:`NativePlan`, built on first use and cached
in the map's plan cache under "native", shared by the forward pass, both backward passes and every
layer of the same geometry (a map and its transpose share one underlying plan).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Optional, Protocol, Tuple

import torch
from torch.autograd.function import once_differentiable

from sparse3d import _ext
from sparse3d.backends.base import NeighborTableBackend
from sparse3d.kernel_map import KernelMap, NeighborTables
from sparse3d.utils.checks import require_choice, require_int

if TYPE_CHECKING:  # pragma: no cover
    from sparse3d import _C

__all__ = ["NativeBackend", "NativePlan", "GATHER_MODES", "SIMD_MODES"]

GATHER_MODES = ("auto", "tables", "pairs", "implicit")
SIMD_MODES = ("auto", "avx512", "avx2", "none")


@dataclass(frozen=True, eq=False)
class NativePlan:
    """The native kernels' forms of one kernel map, each built on first access (csrc/conv).

    tables:       the map's neighbor tables in their conv direction (shared with the map)
    conv_plan:    for a transposed map, the plan of its conv map, whose forms this one reuses
                  swapped; None for a conv map
    pairs:        ``_C.conv.ConvPairs`` of this map's direction (src: input rows, dst: output rows,
                  grouped by offset; csrc/conv/conv_pairs.h); needs only nbr_out of the conv direction
    implicit_out: ``_C.conv.ImplicitTable`` over this map's nbr_out (the implicit-GEMM forward pass)
    implicit_in:  ``_C.conv.ImplicitTable`` over this map's nbr_in (its input gradient)
    """

    tables: NeighborTables
    conv_plan: Optional["NativePlan"] = None

    @cached_property
    def pairs(self) -> "_C.conv.ConvPairs":
        if self.conv_plan is not None:
            return self.conv_plan.pairs.swapped()
        return _ext.conv().pairs(self.tables.out(), self.tables.n_in)

    @cached_property
    def implicit_out(self) -> "_C.conv.ImplicitTable":
        if self.conv_plan is not None:
            return self.conv_plan.implicit_in
        return _ext.conv().implicit_table(self.tables.out(), self.tables.n_in)

    @cached_property
    def implicit_in(self) -> "_C.conv.ImplicitTable":
        if self.conv_plan is not None:
            return self.conv_plan.implicit_out
        nbr_out, nbr_in = self.tables.get()
        return _ext.conv().implicit_table(nbr_in, nbr_out.shape[0])


class NativeBackend(NeighborTableBackend):
    """sparse3d's kernels, over one of three forms of the kernel map (``gather``).

    ``"tables"``: tiled gather-GEMM-scatter over the map's two neighbor tables (csrc/conv/conv_cpu.cpp;
    the CPU's fast path). ``"pairs"``: per-offset pair lists (:attr:`NativePlan.pairs`; gather + cuBLAS
    GEMM + scatter per offset on CUDA, an ATen loop on the CPU). ``"implicit"``: implicit-GEMM CUDA
    kernels that fuse the gather into the GEMM tiles (:attr:`NativePlan.implicit_out` / ``implicit_in``,
    csrc/conv/implicit_gemm.cuh; CUDA tensors only, ValueError otherwise). ``"auto"`` (default): pairs
    for CUDA tensors, tables for CPU tensors. ``tile``: output rows one CPU thread handles at a time
    (tables only). ``simd`` (tables on the CPU): the widest instruction set of the direct float32 kernels,
    "auto" (the widest the CPU has: AVX-512F, else AVX2 + FMA), "avx512", "avx2" (ValueError at the first
    conv on a CPU without it) or "none" (the tiled GEMM path); CUDA tensors take only "auto". Every form
    and instruction set gives the same result up to summation order.
    """

    name = "native"

    def __init__(self, tile: int = 2048, gather: str = "auto", simd: str = "auto") -> None:
        self.tile = require_int(tile, "tile", low=1, high=1 << 20)  # the C++ kernels' limit
        self.gather = require_choice(gather, "gather", GATHER_MODES)
        self.simd = require_choice(simd, "simd", SIMD_MODES)
        if self.simd != "auto" and self.gather in ("pairs", "implicit"):
            raise ValueError(f"simd={self.simd!r} picks the CPU kernels of gather='tables'; gather={self.gather!r} "
                             "does not run them")

    def plan(self, kmap: KernelMap) -> NativePlan:
        """The map's :class:`NativePlan`, from its plan cache (built on first use)."""
        def build() -> NativePlan:
            if kmap.transposed:
                return NativePlan(kmap.tables, self.plan(kmap.transpose()))
            return NativePlan(kmap.tables)

        return kmap.plans.get(self.name, ("plan", kmap.transposed), NativePlan, build)

    def conv(self, feats: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
        """See :meth:`Backend.conv`."""
        if self.gather == "implicit":
            if not feats.is_cuda:
                raise ValueError("NativeBackend(gather='implicit') runs the implicit-GEMM CUDA kernels and takes "
                                 f"CUDA tensors, got feats on {feats.device}; use gather='tables' or 'auto' on the CPU")
            return _apply(feats, weight, _ImplicitForm(self.plan(kmap)))
        if self.gather == "pairs" or (self.gather == "auto" and feats.is_cuda):
            if self.simd != "auto":
                raise ValueError(f"NativeBackend(simd={self.simd!r}) picks CPU kernels; feats on {feats.device} "
                                 "take simd='auto'")
            return _apply(feats, weight, _PairsForm(self.plan(kmap)))
        return super().conv(feats, weight, kmap)

    def forward(self, feats: torch.Tensor, weight: torch.Tensor, nbr: torch.Tensor) -> torch.Tensor:
        return _ext.conv().forward(feats.contiguous(), weight.contiguous(), nbr, self.tile, self.simd)

    def weight_grad(self, feats: torch.Tensor, grad_out: torch.Tensor, nbr: torch.Tensor) -> torch.Tensor:
        return _ext.conv().weight_grad(feats.contiguous(), grad_out.contiguous(), nbr, self.tile, self.simd)

    def __repr__(self) -> str:
        return f"<sparse3d backend 'native' gather={self.gather!r} simd={self.simd!r}>"


class _Form(Protocol):
    """The three passes of a conv over one form of a plan."""

    def forward(self, feats: torch.Tensor, weight: torch.Tensor) -> torch.Tensor: ...
    def input_grad(self, grad_out: torch.Tensor, weight_t: torch.Tensor) -> torch.Tensor: ...
    def weight_grad(self, feats: torch.Tensor, grad_out: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class _PairsForm:
    """Pair lists: the forward pass and the weight gradient over the pairs, the input gradient over
    the swapped pairs (csrc/conv/conv_pairs.h)."""

    plan: NativePlan

    def forward(self, feats: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return _ext.conv().forward_pairs(feats, weight, self.plan.pairs)

    def input_grad(self, grad_out: torch.Tensor, weight_t: torch.Tensor) -> torch.Tensor:
        return _ext.conv().forward_pairs(grad_out, weight_t, self.plan.pairs.swapped())

    def weight_grad(self, feats: torch.Tensor, grad_out: torch.Tensor) -> torch.Tensor:
        return _ext.conv().weight_grad_pairs(feats, grad_out, self.plan.pairs)


@dataclass(frozen=True)
class _ImplicitForm:
    """Implicit GEMM: the forward pass over the output-side table, the input gradient over the
    input-side table, the weight gradient over the pair lists (csrc/conv/implicit_gemm.h)."""

    plan: NativePlan

    def forward(self, feats: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return _ext.conv().forward_implicit(feats, weight, self.plan.implicit_out)

    def input_grad(self, grad_out: torch.Tensor, weight_t: torch.Tensor) -> torch.Tensor:
        return _ext.conv().forward_implicit(grad_out, weight_t, self.plan.implicit_in)

    def weight_grad(self, feats: torch.Tensor, grad_out: torch.Tensor) -> torch.Tensor:
        return _ext.conv().weight_grad_implicit(feats, grad_out, self.plan.pairs)


def _apply(feats: torch.Tensor, weight: torch.Tensor, form: _Form) -> torch.Tensor:
    out: torch.Tensor = _FormConv.apply(feats, weight, form)
    return out


class _FormConv(torch.autograd.Function):
    """feats ``[N_in, C_in]``, weight ``[K, C_in, C_out]``, a form of the plan -> ``[N_out, C_out]``;
    the input gradient is the form's transposed pass with the transposed weight ``[K, C_out, C_in]``."""

    @staticmethod
    def forward(ctx: Any, feats: torch.Tensor, weight: torch.Tensor, form: _Form) -> torch.Tensor:
        ctx.save_for_backward(feats, weight)
        ctx.form = form
        return form.forward(feats.contiguous(), weight.contiguous())

    @staticmethod
    @once_differentiable  # the kernels are opaque to autograd: double backward raises instead of being wrong
    def backward(ctx: Any, grad_out: torch.Tensor) -> Tuple[Any, ...]:
        feats, weight = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        grad_feats = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_feats = ctx.form.input_grad(grad_out, weight.transpose(1, 2).contiguous())
        if ctx.needs_input_grad[1]:
            grad_weight = ctx.form.weight_grad(feats.contiguous(), grad_out)
        return grad_feats, grad_weight, None

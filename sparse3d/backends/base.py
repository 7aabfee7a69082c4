"""The backend interface: how a sparse convolution over a kernel map is computed.

Every backend takes the same weights ``[K, C_in, C_out]`` (offset order of
:mod:`sparse3d.kernel`) and the same :class:`~sparse3d.kernel_map.KernelMap` (which pairs: geometry
only), and must give the same result, so a model can switch backends without touching its
checkpoint. How a backend multiplies is its own business: one that needs index structures of its
own builds them from the map as a typed, frozen *plan* and caches it in the map's plan cache
(``kmap.plans.get(backend.name, key, PlanType, build)``), shared by every layer of the same
geometry; a map from any geometry provider (coordinate manager, octree) runs on every backend.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Tuple

import torch
from torch.autograd.function import once_differentiable

from sparse3d.kernel_map import KernelMap


def gather_windows(feats: torch.Tensor, nbr: torch.Tensor, fill: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Features of every kernel window: feats ``[N_in, C]``, nbr int32 ``[N_out, K]`` ->
    (windows ``[N_out, K, C]`` with ``fill`` where absent, present bool ``[N_out, K]``)."""
    nbr = nbr.long()
    padded = torch.cat([feats, feats.new_full((1, feats.shape[1]), fill)], dim=0)
    idx = torch.where(nbr >= 0, nbr, torch.full_like(nbr, feats.shape[0]))
    return padded[idx], nbr >= 0


class Backend(ABC):
    """A sparse-convolution implementation. Stateless (its plans live on the kernel maps); chosen per
    module by name."""

    name: str = "abstract"

    @abstractmethod
    def conv(self, feats: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
        """Differentiable sparse conv: feats ``[N_in, C_in]``, weight ``[K, C_in, C_out]`` -> ``[N_out, C_out]``.

        Output rows follow ``kmap.out_coords``. What the map is (``kmap.kind``: "conv",
        "conv_transpose", "generative_conv_transpose"; ``kmap.op`` for messages) is the map's to say,
        so a backend that cannot run one raises a clear error naming it instead of guessing.
        """

    def max_pool(self, feats: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
        """Differentiable max over each window of a (non-transposed) kernel map:
        feats ``[N_in, C]`` -> ``[N_out, C]``. Default: gather the windows and take the max."""
        require_conv_map(kmap, "max_pool")
        g, _ = gather_windows(feats, kmap.nbr_out, float("-inf"))
        return g.max(dim=1).values if g.shape[0] else feats.new_zeros((0, feats.shape[1]))

    def __repr__(self) -> str:
        return f"<sparse3d backend {self.name!r}>"


def require_conv_map(kmap: KernelMap, op: str) -> None:
    """ValueError unless ``kmap`` is a conv (non-transposed) map, naming ``op``."""
    if kmap.transposed:
        raise ValueError(f"{op} needs a conv (non-transposed) kernel map, got kmap.kind={kmap.kind!r}")


class NeighborTableBackend(Backend):
    """A backend defined by two primitives over neighbor tables; autograd is shared.

    forward(feats [N_in, C_in], weight [K, C_in, C_out], nbr int32 [N_out, K]) -> [N_out, C_out]
    weight_grad(feats [N_in, C_in], grad_out [N_out, C_out], nbr [N_out, K]) -> [K, C_in, C_out]
    """

    @abstractmethod
    def forward(self, feats: torch.Tensor, weight: torch.Tensor, nbr: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def weight_grad(self, feats: torch.Tensor, grad_out: torch.Tensor, nbr: torch.Tensor) -> torch.Tensor: ...

    def conv(self, feats: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
        """See :meth:`Backend.conv`: every kind of map, through its two neighbor tables."""
        out: torch.Tensor = _NeighborTableConv.apply(feats, weight, kmap.nbr_out, kmap.nbr_in, self)
        return out


class _NeighborTableConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, feats: torch.Tensor, weight: torch.Tensor, nbr_out: torch.Tensor,
                nbr_in: torch.Tensor, backend: NeighborTableBackend) -> torch.Tensor:
        ctx.save_for_backward(feats, weight, nbr_out, nbr_in)
        ctx.backend = backend
        return backend.forward(feats, weight, nbr_out)

    @staticmethod
    @once_differentiable  # the primitives are opaque to autograd: double backward raises instead of being wrong
    def backward(ctx: Any, grad_out: torch.Tensor) -> Tuple[Any, ...]:
        feats, weight, nbr_out, nbr_in = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        grad_feats = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_feats = ctx.backend.forward(grad_out, weight.transpose(1, 2).contiguous(), nbr_in)
        if ctx.needs_input_grad[1]:
            grad_weight = ctx.backend.weight_grad(feats, grad_out, nbr_out)
        return grad_feats, grad_weight, None, None, None

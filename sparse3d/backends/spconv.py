"""The spconv backend: spconv 2.x's own index generation and convolution behind sparse3d's API.

Weights stay sparse3d's ``[K**3, C_in, C_out]`` (converted per call with
:func:`sparse3d.kernel.sparse_to_spconv_weight`, a differentiable permute), and outputs come back
in the row order of the kernel map's output set, so a model switches backends without touching
its checkpoint. The backend only chooses spconv's algorithm and checks its limits; the map's
:class:`~sparse3d.backends.spconv_plan.SpconvPlan` (spconv's index pairs and row maps, cached on the
map) runs the conv, and its module doc tables how each kind of map maps onto spconv's ops.

Algorithms: ``algo="auto"`` (default) uses ``ConvAlgo.Native`` on CPU and
``ConvAlgo.MaskImplicitGemm`` on CUDA; ``"native"`` / ``"implicit_gemm"`` force one.

Tensors move between the libraries with :func:`to_spconv` / :func:`from_spconv` (spconv wants
non-negative indices, so the coordinates are shifted by an ``origin`` that goes back with them), and
weights with :func:`sparse3d.kernel.sparse_to_spconv_weight` / :func:`~sparse3d.kernel.spconv_to_sparse_weight`.
"""
from __future__ import annotations

import operator
import warnings
from typing import TYPE_CHECKING, Any, Sequence, Tuple, Union

import torch

from sparse3d.backends.base import Backend, require_conv_map
from sparse3d.backends.spconv_plan import SpconvPlan, import_spconv, plan_for
from sparse3d.kernel_map import KernelMap
from sparse3d.tensor import SparseTensor
from sparse3d.tensor import require_sparse_tensor
from sparse3d.utils.checks import require_choice

if TYPE_CHECKING:  # pragma: no cover
    from spconv.pytorch import SparseConvTensor

__all__ = ["SpconvBackend", "SpconvPlan", "to_spconv", "from_spconv", "ALGOS"]

ALGOS = ("auto", "native", "implicit_gemm")
IMPLICIT_GEMM_MAX_OFFSETS = 32  # spconv 2.3's mask implicit GEMM keeps one 32-bit mask per output row


class SpconvBackend(Backend):
    """spconv 2.x (spconv-cu1xx). ``algo``: "auto" | "native" | "implicit_gemm" (see module doc)."""

    name = "spconv"

    def __init__(self, algo: str = "auto") -> None:
        self.algo = require_choice(algo, "algo", ALGOS)
        import_spconv()  # fail here, clearly, if spconv is not installed

    def __repr__(self) -> str:
        return f"<sparse3d backend 'spconv' algo={self.algo!r}>"

    def _algo(self, feats: torch.Tensor, kernel_size: int, op: str) -> Any:
        """The spconv ConvAlgo for ``op`` (named in every error) on ``feats``."""
        _, _, ConvAlgo = import_spconv()
        use_igemm = self.algo == "implicit_gemm" or (self.algo == "auto" and feats.is_cuda)
        if not use_igemm:
            return ConvAlgo.Native
        where = f"spconv backend, op {op!r}: "
        if not feats.is_cuda:
            raise ValueError(f"{where}algo='implicit_gemm' needs CUDA tensors (spconv runs it on GPU only), got "
                             f"feats on {feats.device}; use SpconvBackend(algo='native') on CPU")
        if feats.dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise ValueError(f"{where}spconv's implicit GEMM runs float32/float16/bfloat16, got {feats.dtype}; "
                             "use SpconvBackend(algo='native') or backend='native'/'torch' for float64")
        if kernel_size**3 > IMPLICIT_GEMM_MAX_OFFSETS:
            raise ValueError(f"{where}kernel_size={kernel_size} ({kernel_size**3} offsets) is not supported by "
                             f"spconv's implicit GEMM (at most {IMPLICIT_GEMM_MAX_OFFSETS} offsets); use "
                             "SpconvBackend(algo='native') or backend='native'")
        return ConvAlgo.MaskImplicitGemm

    def plan(self, kmap: KernelMap, feats: torch.Tensor, pool: bool = False) -> SpconvPlan:
        """The map's :class:`SpconvPlan` (``pool``: of a max pool over it) for the algorithm this backend
        runs on ``feats``, cached on the map."""
        return plan_for(kmap, self._algo(feats, kmap.kernel_size, "max_pool" if pool else kmap.op), pool)

    def conv(self, feats: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
        """See :meth:`Backend.conv`: every kind of map (the plan tells spconv's ops apart)."""
        n_out = kmap.num_out
        if feats.shape[0] == 0 or n_out == 0:  # spconv rejects empty inputs; keep the graph connected
            return feats.new_zeros((n_out, weight.shape[2])) + 0 * (weight.sum() + feats.sum())
        return self.plan(kmap, feats).conv(feats, weight)

    def max_pool(self, feats: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
        """See :meth:`Backend.max_pool` and :meth:`SpconvPlan.max_pool` (exact for negative inputs too)."""
        require_conv_map(kmap, "max_pool")
        n_out = kmap.num_out
        if feats.shape[0] == 0 or n_out == 0:
            return feats.new_zeros((n_out, feats.shape[1])) + 0 * feats.sum()
        return self.plan(kmap, feats, pool=True).max_pool(feats)


# ---- converting tensors between sparse3d and spconv ------------------------------------------------
def _spconv_pytorch():
    """The ``spconv.pytorch`` module (ImportError with an install hint when spconv is missing)."""
    import_spconv()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import spconv.pytorch as spc
    return spc


def _as_origin(origin: Union[torch.Tensor, Sequence[int]], device: torch.device, name: str = "origin") -> torch.Tensor:
    if isinstance(origin, torch.Tensor):
        if origin.is_floating_point() or origin.is_complex() or origin.dtype == torch.bool:
            raise TypeError(f"{name} must hold integers, got dtype {origin.dtype}")
        o = origin.detach()
    else:
        try:
            o = torch.tensor([operator.index(v) for v in origin], dtype=torch.long)
        except TypeError:
            raise TypeError(f"{name} must be 3 ints (x, y, z) or an integer tensor [3], got {origin!r}") from None
    if o.shape != (3,):
        raise ValueError(f"{name} must have 3 values (x, y, z), got shape {tuple(o.shape)}")
    return o.to(device=device, dtype=torch.int32)


def to_spconv(x: SparseTensor, origin: Union[torch.Tensor, Sequence[int], None] = None
              ) -> Tuple["SparseConvTensor", torch.Tensor]:
    """A sparse3d tensor as a ``spconv.pytorch.SparseConvTensor`` (spconv 2.x), and the shift applied.

    ``x``: coords int32 ``[N, 4]`` = (batch, x, y, z), feats ``[N, C]``.
    ``origin``: int ``[3]``, at most every coordinate; default: the per-axis minimum (0 when x is empty).
    Pick one that is a multiple of the strides of the spconv layers that follow to keep their lattices
    aligned with sparse3d's.

    Returns ``(t, origin)``:

    * ``t.features``: ``x.feats`` ``[N, C]`` (the same tensor, so gradients flow back to it);
    * ``t.indices``: int32 ``[N, 4]`` = (batch, x - ox, y - oy, z - oz), all >= 0, rows in x's order;
    * ``t.spatial_shape``: ``[X, Y, Z]`` = largest shifted index + 1 per axis, the smallest grid that
      holds every voxel (``[1, 1, 1]`` when x is empty);
    * ``t.batch_size``: ``x.batch_size`` (at least 1);
    * ``origin``: int32 ``[3]`` on x's device, so that ``from_spconv(t, origin, x.stride)`` gives x back.
    """
    require_sparse_tensor(x, "x")
    spc = _spconv_pytorch()
    coords = x.coords
    if origin is None:
        o = coords[:, 1:].min(dim=0).values.int() if len(x) else torch.zeros(3, dtype=torch.int32, device=x.device)
    else:
        o = _as_origin(origin, x.device)
        if len(x):
            low = coords[:, 1:].min(dim=0).values
            if bool((low < o).any()):
                raise ValueError(f"origin must be <= every coordinate, got origin={o.tolist()} and minimum "
                                 f"coordinates {low.tolist()}")
    indices = coords.clone()
    indices[:, 1:] -= o
    shape = (indices[:, 1:].max(dim=0).values + 1).tolist() if len(x) else [1, 1, 1]
    t = spc.SparseConvTensor(x.feats, indices.contiguous(), [int(v) for v in shape], max(x.batch_size, 1))
    return t, o


def from_spconv(t: "SparseConvTensor", origin: Union[torch.Tensor, Sequence[int]], stride: int = 1) -> SparseTensor:
    """A ``spconv.pytorch.SparseConvTensor`` as a sparse3d :class:`~sparse3d.tensor.SparseTensor`.

    ``t.indices``: int32 ``[N, 4]`` = (batch, x, y, z) on spconv's grid, ``t.features``: ``[N, C]``.
    ``origin``: int ``[3]``, the shift of t's grid (as returned by :func:`to_spconv`); after a spconv
    layer of stride ``s`` with padding ``(K - 1) // 2 * dilation`` the output grid's origin is
    ``origin // s`` (exact when ``origin`` is a multiple of ``s``).
    ``stride``: the sparse3d tensor stride of t's lattice (1 = finest).

    Returns a SparseTensor with coords int32 ``[N, 4]`` = (batch, x + ox, y + oy, z + oz) and feats
    ``t.features`` ``[N, C]``, rows in t's order.
    """
    if not (hasattr(t, "indices") and hasattr(t, "features")):
        raise TypeError(f"t must be a spconv.pytorch.SparseConvTensor, got {type(t).__name__}")
    indices = t.indices
    if not isinstance(indices, torch.Tensor) or indices.dim() != 2 or indices.shape[1] != 4:
        got = tuple(indices.shape) if isinstance(indices, torch.Tensor) else type(indices).__name__
        raise ValueError(f"t.indices must have shape [N, 4] = (batch, x, y, z), got {got}")
    coords = indices.int().clone()
    coords[:, 1:] += _as_origin(origin, coords.device)
    return SparseTensor(coords, t.features, stride=stride)

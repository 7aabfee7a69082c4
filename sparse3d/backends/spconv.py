"""The spconv backend: spconv 2.x's own index generation and convolution behind sparse3d's API.

Weights stay sparse3d's ``[K**3, C_in, C_out]`` (converted per call with
:func:`sparse3d.kernel.sparse_to_spconv_weight`, a differentiable permute), and outputs come back
in the row order of the kernel map's output set, so a model switches backends without touching
its checkpoint. How our ops map onto spconv's:

==============================  ==================================================================
sparse3d op                     spconv
==============================  ==================================================================
subm conv, odd kernel           SubMConv3d pairs (``get_indice_pairs(subm=True)``), ``indice_subm_conv``
subm conv, even kernel          SparseConv3d stride 1 (its SubMConv centres even kernels at K // 2,
                                we at (K - 1) // 2), output rows gathered back onto the input set
strided conv                    SparseConv3d pairs, ``indice_conv``
transposed conv (known coords)  SparseInverseConv3d: the strided conv's pairs reused, ``indice_inverse_conv``
generative transposed conv      SparseConvTranspose3d pairs (``transpose=True``), ``indice_conv``
max pool                        SparseMaxPool3d pairs (= the strided conv's), ``indice_maxpool``
==============================  ==================================================================

Algorithms: ``algo="auto"`` (default) uses ``ConvAlgo.Native`` on CPU and
``ConvAlgo.MaskImplicitGemm`` on CUDA; ``"native"`` / ``"implicit_gemm"`` force one. Index pairs
are cached on the tensor's CoordinateManager (see :mod:`sparse3d.backends.spconv_pairs`).

Tensors move between the libraries with :func:`to_spconv` / :func:`from_spconv` (spconv wants
non-negative indices, so the coordinates are shifted by an ``origin`` that goes back with them), and
weights with :func:`sparse3d.kernel.sparse_to_spconv_weight` / :func:`~sparse3d.kernel.spconv_to_sparse_weight`.
"""
from __future__ import annotations

import operator
import warnings
from typing import TYPE_CHECKING, Optional, Sequence, Tuple, Union

import torch

from sparse3d.backends.base import OPS, Backend
from sparse3d.backends.spconv_pairs import SpconvPairs, conv_pairs, import_spconv, inverse_pairs
from sparse3d.coords import CoordinateManager, KernelMap
from sparse3d.kernel import sparse_to_spconv_weight
from sparse3d.tensor import SparseTensor

if TYPE_CHECKING:  # pragma: no cover
    from spconv.pytorch import SparseConvTensor

__all__ = ["SpconvBackend", "to_spconv", "from_spconv", "ALGOS"]

ALGOS = ("auto", "native", "implicit_gemm")
IMPLICIT_GEMM_MAX_OFFSETS = 32  # spconv 2.3's mask implicit GEMM keeps one 32-bit mask per output row


def gather_rows(x: torch.Tensor, rows: Optional[torch.Tensor]) -> torch.Tensor:
    """Rows of ``x`` ``[M, C]`` at ``rows`` int64 ``[N]`` (-1 gives a zero row) -> ``[N, C]``; None = ``x``."""
    if rows is None:
        return x
    if rows.numel() and int(rows.min()) < 0:
        x = torch.cat([x, x.new_zeros((1, x.shape[1]))], dim=0)
        rows = torch.where(rows >= 0, rows, torch.full_like(rows, x.shape[0] - 1))
    return x.index_select(0, rows)


class SpconvBackend(Backend):
    """spconv 2.x (spconv-cu1xx). ``algo``: "auto" | "native" | "implicit_gemm" (see module doc)."""

    name = "spconv"

    def __init__(self, algo: str = "auto") -> None:
        if algo not in ALGOS:
            raise ValueError(f"algo must be one of {ALGOS}, got {algo!r}")
        import_spconv()  # fail here, clearly, if spconv is not installed
        self.algo = algo

    def __repr__(self) -> str:
        return f"<sparse3d backend 'spconv' algo={self.algo!r}>"

    def _algo(self, feats: torch.Tensor, kernel_size: int, op: str):
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

    def conv(self, feats: torch.Tensor, weight: torch.Tensor, kmap: KernelMap, op: str,
             manager: CoordinateManager) -> torch.Tensor:
        """See :meth:`Backend.conv`; the geometry comes from ``kmap`` and ``manager``."""
        if op not in OPS:
            raise ValueError(f"op must be one of {OPS}, got {op!r}")
        k, s, d = kmap.kernel_size, kmap.stride, kmap.dilation
        n_out = manager.size(kmap.out_key)
        if feats.shape[0] == 0 or n_out == 0:  # spconv rejects empty inputs; keep the graph connected
            return feats.new_zeros((n_out, weight.shape[2])) + 0 * (weight.sum() + feats.sum())
        algo = self._algo(feats, k, op)
        w = sparse_to_spconv_weight(weight).contiguous()
        feats = feats.contiguous()
        if not kmap.transposed:
            subm = kmap.in_key == kmap.out_key and s == 1 and k % 2 == 1
            plan = conv_pairs(manager, kmap.in_key, kmap.out_key, k, s, d, "subm" if subm else "conv", algo)
            return gather_rows(_run(plan, feats, w, plan.num_out, inverse=False), plan.out_rows)
        if op == "generative_conv_transpose":
            plan = conv_pairs(manager, kmap.in_key, kmap.out_key, k, s, d, "transpose", algo)
            return gather_rows(_run(plan, feats, w, plan.num_out, inverse=False), plan.out_rows)
        plan, in_rows = inverse_pairs(manager, kmap.out_key, kmap.in_key, k, s, d, algo)
        return _run(plan, gather_rows(feats, in_rows), w, n_out, inverse=True)

    def max_pool(self, feats: torch.Tensor, kmap: KernelMap, manager: CoordinateManager) -> torch.Tensor:
        """See :meth:`Backend.max_pool`. spconv's max pool starts from 0 (it assumes ReLU'd inputs), so we
        pool ``feats - m`` with ``m`` the (constant) per-channel minimum and add ``m`` back: exact max."""
        if kmap.transposed:
            raise ValueError("max_pool needs a conv (non-transposed) kernel map, got a transposed one")
        k, s, d = kmap.kernel_size, kmap.stride, kmap.dilation
        n_out = manager.size(kmap.out_key)
        if feats.shape[0] == 0 or n_out == 0:
            return feats.new_zeros((n_out, feats.shape[1])) + 0 * feats.sum()
        _, Fsp, ConvAlgo = import_spconv()
        algo = self._algo(feats, k, "max_pool")
        plan = conv_pairs(manager, kmap.in_key, kmap.out_key, k, s, d, "conv", algo)
        m = feats.detach().amin(dim=0, keepdim=True)
        shifted = (feats - m).contiguous()
        if algo == ConvAlgo.Native:
            out = Fsp.indice_maxpool(shifted, plan.pairs[0], plan.pairs[1], plan.num_out)
        else:
            out = Fsp.indice_maxpool_implicit_gemm(shifted, plan.pairs[0], plan.pairs[1], plan.num_out)
        return gather_rows(out + m, plan.out_rows)


def _run(plan: SpconvPairs, feats: torch.Tensor, w: torch.Tensor, n_out: int, inverse: bool) -> torch.Tensor:
    """spconv's differentiable conv over ``plan``: feats ``[N_sp_in, C_in]``, w ``[C_out, K, K, K, C_in]``
    -> ``[n_out, C_out]`` in spconv's output row order (``inverse``: the plan's input rows)."""
    _, Fsp, ConvAlgo = import_spconv()
    subm = plan.mode == "subm"
    if plan.algo == ConvAlgo.Native:
        pairs, pair_num = plan.pairs
        if subm:
            return Fsp.indice_subm_conv(feats, w, pairs, pair_num, n_out, plan.algo)
        if inverse:
            return Fsp.indice_inverse_conv(feats, w, pairs, pair_num, n_out, plan.algo)
        return Fsp.indice_conv(feats, w, pairs, pair_num, n_out, plan.algo)
    from spconv.tools import CUDAKernelTimer

    pf, pb, pmf, pmb, maf, mab, masks = plan.pairs
    if inverse:  # spconv's SparseInverseConv3d swaps the forward and backward pairs of its couple conv
        pf, pb, pmf, pmb, maf, mab = pb, pf, pmb, pmf, mab, maf
    return Fsp.implicit_gemm(feats, w, pf, pb, pmf, pmb, maf, mab, n_out, masks, True, subm, CUDAKernelTimer(False))


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
    if not isinstance(x, SparseTensor):
        raise TypeError(f"x must be a SparseTensor, got {type(x).__name__}")
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

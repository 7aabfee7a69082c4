"""spconv's plan of a kernel map: spconv's own index pairs, translated to sparse3d's rows, and the run.

spconv wants non-negative voxel indices inside a ``spatial_shape`` and places the output of a
regular conv at ``o = (i + padding - k * dilation) / stride``, of a transposed conv at
``o = i * stride - padding + k * dilation``, with kernel index ``k`` in [0, K). sparse3d reads
input ``o * stride + (k - c) * dilation`` (``c = (K - 1) // 2``, :mod:`sparse3d.kernel`). So we
run spconv with ``padding = c * dilation`` on coordinates shifted by an origin (a multiple of the
stride for a strided conv, far enough below the smallest coordinate that no output falls below 0)
and a spatial shape with room for every output; then spconv's output set equals ours and we only
map its output rows (its own order) to ours.

How each kind of map runs (:func:`plan_for`):

==============================  ==================================================================
kernel map                      spconv
==============================  ==================================================================
conv, submanifold, odd kernel   SubMConv3d pairs (``get_indice_pairs(subm=True)``), ``indice_subm_conv``
conv (strided, or even kernel)  SparseConv3d pairs, ``indice_conv``, output rows gathered onto ours
                                (its SubMConv centres even kernels at K // 2, we at (K - 1) // 2)
conv_transpose (known coords)   SparseInverseConv3d: the pairs of the conv map it transposes, reused
generative_conv_transpose       SparseConvTranspose3d pairs (``transpose=True``), ``indice_conv``
max pool (a conv map)           the conv map's SparseConv3d pairs, ``indice_maxpool``
==============================  ==================================================================

Index pairs (:class:`SpconvPairs`) and plans (:class:`SpconvPlan`) are cached in the kernel map's
plan cache under "spconv" (shared by a map and its transpose), so every layer of the same geometry
reuses them, as spconv's ``indice_key`` does, without anyone naming a key.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

import torch

from sparse3d import _ext
from sparse3d.kernel import sparse_to_spconv_weight
from sparse3d.kernel_map import KernelMap

SPCONV_INSTALL_HINT = (
    "install spconv 2.x with `pip install spconv-cu120` (choose the wheel matching your CUDA version, "
    "e.g. spconv-cu118, or `pip install spconv` for CPU only), or use one of the other backends: "
    "backend='native' (sparse3d's own kernels, the default) or backend='torch' (pure-PyTorch reference)"
)


def import_spconv() -> Tuple[Any, Any, Any]:
    """``(spconv.pytorch.ops, spconv.pytorch.functional, ConvAlgo)``, imported on first use.

    Raises ImportError with an install hint (and the alternative backends) when spconv is missing."""
    try:
        with warnings.catch_warnings():  # spconv 2.3 uses torch.cuda.amp.custom_fwd, deprecated in torch 2.4,
            warnings.simplefilter("ignore", FutureWarning)  # and its ccimport locale.getdefaultlocale
            warnings.simplefilter("ignore", DeprecationWarning)
            from spconv.core import ConvAlgo
            from spconv.pytorch import functional as Fsp
            from spconv.pytorch import ops as sp_ops
    except (ImportError, OSError) as e:
        raise ImportError(f"the 'spconv' backend needs spconv, which could not be imported ({e}); "
                          f"{SPCONV_INSTALL_HINT}") from e
    return sp_ops, Fsp, ConvAlgo


def gather_rows(x: torch.Tensor, rows: Optional[torch.Tensor]) -> torch.Tensor:
    """Rows of ``x`` ``[M, C]`` at ``rows`` int64 ``[N]`` (-1 gives a zero row) -> ``[N, C]``; None = ``x``."""
    if rows is None:
        return x
    if rows.numel() and int(rows.min()) < 0:
        x = torch.cat([x, x.new_zeros((1, x.shape[1]))], dim=0)
        rows = torch.where(rows >= 0, rows, torch.full_like(rows, x.shape[0] - 1))
    return x.index_select(0, rows)


@dataclass(frozen=True, eq=False)
class SpconvPairs:
    """spconv's index pairs of one conv geometry, and how spconv's output rows relate to sparse3d's.

    mode:       "subm", "conv" (regular, any stride) or "transpose" (spconv's generative transposed conv)
    algo:       the spconv ConvAlgo the pairs were made for (Native, or MaskImplicitGemm on CUDA)
    pairs:      Native: ``(indice_pairs int32 [2, K, N], indice_pair_num int32 [K])``;
                implicit GEMM: ``(pair_fwd, pair_bwd, pair_mask_fwd_splits, pair_mask_bwd_splits,
                mask_argsort_fwd_splits, mask_argsort_bwd_splits, masks)``
    num_out:    rows of spconv's output
    out_coords: int32 ``[num_out, 4]`` spconv's output coordinates in sparse3d's frame (its row order)
    out_rows:   int64 ``[N_out]``: spconv output row of each sparse3d output row (-1: none, so 0),
                or None when the orders are identical
    """

    mode: str
    algo: Any
    pairs: Tuple[torch.Tensor, ...]
    num_out: int
    out_coords: torch.Tensor
    out_rows: Optional[torch.Tensor]


@dataclass(frozen=True, eq=False)
class SpconvPlan:
    """How spconv runs one kernel map; it runs itself (:meth:`conv`, :meth:`max_pool`).

    pairs:   spconv's index pairs (shared with the map's transpose where spconv reuses them)
    inverse: run spconv's inverse conv over ``pairs`` (a transposed map onto known coordinates)
    in_rows: inverse only: int64 ``[pairs.num_out]``, the sparse3d input row behind each spconv row of
             the pairs' output side (-1: none), or None when the orders are identical
    num_out: rows of the result, the map's output set
    """

    pairs: SpconvPairs
    inverse: bool
    in_rows: Optional[torch.Tensor]
    num_out: int

    def conv(self, feats: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Differentiable conv: feats ``[N_in, C_in]``, sparse3d weight ``[K, C_in, C_out]`` (converted by
        :func:`sparse3d.kernel.sparse_to_spconv_weight`, a differentiable permute) -> ``[N_out, C_out]``
        in the row order of the map's output set."""
        w = sparse_to_spconv_weight(weight).contiguous()
        feats = feats.contiguous()
        if self.inverse:
            return _run(self.pairs, gather_rows(feats, self.in_rows), w, self.num_out, inverse=True)
        return gather_rows(_run(self.pairs, feats, w, self.pairs.num_out, inverse=False), self.pairs.out_rows)

    def max_pool(self, feats: torch.Tensor) -> torch.Tensor:
        """Differentiable max over each window: feats ``[N_in, C]`` -> ``[N_out, C]``. spconv's max pool
        starts from 0 (it assumes ReLU'd inputs), so this pools ``feats - m`` with ``m`` the (constant)
        per-channel minimum and adds ``m`` back: the exact max."""
        if self.inverse or self.pairs.mode == "transpose":
            raise ValueError("max_pool needs the plan of a conv (non-transposed) kernel map")
        _, Fsp, ConvAlgo = import_spconv()
        p = self.pairs
        m = feats.detach().amin(dim=0, keepdim=True)
        shifted = (feats - m).contiguous()
        if p.algo == ConvAlgo.Native:
            out = Fsp.indice_maxpool(shifted, p.pairs[0], p.pairs[1], p.num_out)
        else:
            out = Fsp.indice_maxpool_implicit_gemm(shifted, p.pairs[0], p.pairs[1], p.num_out)
        return gather_rows(out + m, p.out_rows)


def plan_for(kmap: KernelMap, algo: Any, pool: bool = False) -> SpconvPlan:
    """The :class:`SpconvPlan` of ``kmap`` for spconv algorithm ``algo``, from the map's plan cache;
    ``pool``: the plan of a max pool over the (conv) map, which always runs SparseConv3d's pairs."""
    key = ("pool" if pool else "plan", kmap.kind, str(algo))
    return kmap.plans.get("spconv", key, SpconvPlan, lambda: _build_plan(kmap, algo, pool))


def _build_plan(kmap: KernelMap, algo: Any, pool: bool) -> SpconvPlan:
    k = kmap.kernel_size
    if kmap.kind == "conv":
        mode = "subm" if kmap.submanifold and k % 2 == 1 and not pool else "conv"
        return SpconvPlan(_pairs(kmap, mode, algo), False, None, kmap.num_out)
    if pool:
        raise ValueError(f"max_pool needs a conv (non-transposed) kernel map, got kmap.kind={kmap.kind!r}")
    if kmap.generative:
        return SpconvPlan(_pairs(kmap, "transpose", algo), False, None, kmap.num_out)
    # onto known coordinates: the inverse of the conv map this one transposes, whose pairs it shares
    conv_map = kmap.transpose()
    p = _pairs(conv_map, "conv", algo)
    in_rows = None
    if p.out_rows is not None:  # invert "our row -> spconv row" into "spconv row -> our row"
        in_rows = torch.full((p.num_out,), -1, dtype=torch.long, device=p.out_rows.device)
        found = p.out_rows >= 0
        in_rows[p.out_rows[found]] = torch.nonzero(found).squeeze(1)
    return SpconvPlan(p, True, in_rows, kmap.num_out)


def _pairs(kmap: KernelMap, mode: str, algo: Any) -> SpconvPairs:
    """spconv's pairs for the conv ``kmap.in_coords`` -> ``kmap.out_coords`` (cached in its plan cache).

    mode "subm": spconv SubMConv (one set, stride 1, odd kernel);
    mode "conv": spconv SparseConv (output: every reachable voxel; rows mapped onto ``out_coords``);
    mode "transpose": spconv SparseConvTranspose (generative: output ``i * stride + off[k]``).
    spconv's input rows are always ``in_coords``' rows in sparse3d's order."""
    def build() -> SpconvPairs:
        coords = kmap.in_coords
        k, s, d = kmap.kernel_size, kmap.stride, kmap.dilation
        c = (k - 1) // 2
        if mode == "subm":
            origin, shape = _origin_and_shape(coords, k * d, k * d, 1)
            out_origin = origin
        elif mode == "conv":
            origin, shape = _origin_and_shape(coords, (k - 1 - c) * d, k * d + s, s)
            out_origin = torch.div(origin, s, rounding_mode="floor")
        else:
            origin, shape = _origin_and_shape(coords, -(-c * d // s), c * d + 2, 1)
            out_origin = origin * s
        batch_size = int(coords[:, 0].max()) + 1 if coords.shape[0] else 1
        sp_out, pairs = _make_pairs(_shift(coords, origin), batch_size, shape, algo, k, s, c * d, d,
                                    mode == "subm", mode == "transpose")
        out_coords = coords if mode == "subm" else _unshift(sp_out, out_origin)
        return SpconvPairs(mode, algo, pairs, int(sp_out.shape[0]), out_coords,
                           _rows_in_ours(kmap.out_coords, out_coords))

    if mode not in ("subm", "conv", "transpose"):
        raise ValueError(f"mode must be 'subm', 'conv' or 'transpose', got {mode!r}")
    key = ("pairs", kmap.transposed, mode, str(algo))
    return kmap.plans.get("spconv", key, SpconvPairs, build)


def _origin_and_shape(coords: torch.Tensor, below: int, above: int, multiple: int) -> Tuple[torch.Tensor, List[int]]:
    """Per-axis origin (a multiple of ``multiple``, at least ``below`` under the minimum) and the
    spatial shape that holds ``above`` more than the maximum, for coords int32 ``[N, 4]``."""
    if coords.shape[0] == 0:
        return torch.zeros(3, dtype=torch.int32, device=coords.device), [1 + below + above] * 3
    lo = coords[:, 1:].min(dim=0).values.long() - below
    origin = torch.div(lo, multiple, rounding_mode="floor") * multiple
    hi = coords[:, 1:].max(dim=0).values.long() - origin
    return origin.int(), [int(h) + 1 + above for h in hi.tolist()]


def _shift(coords: torch.Tensor, origin: torch.Tensor) -> torch.Tensor:
    out = coords.clone()
    out[:, 1:] -= origin.to(coords.device)
    return out.contiguous()


def _unshift(coords: torch.Tensor, origin: torch.Tensor) -> torch.Tensor:
    out = coords.int().clone()
    out[:, 1:] += origin.to(coords.device)
    return out


def _rows_in_ours(ours: torch.Tensor, sp_coords: torch.Tensor) -> Optional[torch.Tensor]:
    """For every sparse3d output row (coords ``ours`` int32 ``[N_out, 4]``), the spconv row with the
    same coordinates (-1 if none); None when spconv's rows are already in sparse3d's order."""
    n_out = ours.shape[0]
    if sp_coords.shape[0] == n_out and torch.equal(sp_coords, ours):
        return None
    sp_to_ours = _ext.hash().build(ours).lookup(sp_coords.contiguous()).long()  # [num_out], -1 if not ours
    rows = torch.full((n_out,), -1, dtype=torch.long, device=sp_coords.device)
    found = sp_to_ours >= 0
    rows[sp_to_ours[found]] = torch.nonzero(found).squeeze(1)
    return rows


def _make_pairs(indices: torch.Tensor, batch_size: int, shape: List[int], algo: Any, k: int, s: int, pad: int,
                d: int, subm: bool, transpose: bool) -> Tuple[torch.Tensor, Tuple[torch.Tensor, ...]]:
    """Run spconv's index generation; returns (spconv out indices, pairs tuple for the conv call)."""
    sp_ops, _, ConvAlgo = import_spconv()
    args = (indices, batch_size, shape, algo, [k] * 3, [s] * 3, [pad] * 3, [d] * 3, [0] * 3, subm, transpose)
    if algo == ConvAlgo.Native:
        out_inds, pairs, pair_num = sp_ops.get_indice_pairs(*args)
        return (indices if subm else out_inds), (pairs, pair_num)
    from spconv.pytorch.core import ThrustSortAllocator

    res = sp_ops.get_indice_pairs_implicit_gemm(*args, is_train=True, alloc=ThrustSortAllocator(indices.device))
    out_inds = indices if subm else res[0]
    return out_inds, tuple(res[2:9])


def _run(p: SpconvPairs, feats: torch.Tensor, w: torch.Tensor, n_out: int, inverse: bool) -> torch.Tensor:
    """spconv's differentiable conv over ``p``: feats ``[N_sp_in, C_in]``, w ``[C_out, K, K, K, C_in]``
    -> ``[n_out, C_out]`` in spconv's output row order (``inverse``: the pairs' input rows)."""
    _, Fsp, ConvAlgo = import_spconv()
    subm = p.mode == "subm"
    out: torch.Tensor
    if p.algo == ConvAlgo.Native:
        pairs, pair_num = p.pairs
        if subm:
            out = Fsp.indice_subm_conv(feats, w, pairs, pair_num, n_out, p.algo)
        elif inverse:
            out = Fsp.indice_inverse_conv(feats, w, pairs, pair_num, n_out, p.algo)
        else:
            out = Fsp.indice_conv(feats, w, pairs, pair_num, n_out, p.algo)
        return out
    from spconv.tools import CUDAKernelTimer

    pf, pb, pmf, pmb, maf, mab, masks = p.pairs
    if inverse:  # spconv's SparseInverseConv3d swaps the forward and backward pairs of its couple conv
        pf, pb, pmf, pmb, maf, mab = pb, pf, pmb, pmf, mab, maf
    out = Fsp.implicit_gemm(feats, w, pf, pb, pmf, pmb, maf, mab, n_out, masks, True, subm, CUDAKernelTimer(False))
    return out

"""spconv's own index pairs for one convolution geometry, translated to sparse3d's rows.

spconv wants non-negative voxel indices inside a ``spatial_shape`` and places the output of a
regular conv at ``o = (i + padding - k * dilation) / stride``, of a transposed conv at
``o = i * stride - padding + k * dilation``, with kernel index ``k`` in [0, K). sparse3d reads
input ``o * stride + (k - c) * dilation`` (``c = (K - 1) // 2``, :mod:`sparse3d.kernel`). So we
run spconv with ``padding = c * dilation`` on coordinates shifted by an origin (a multiple of the
stride for a strided conv, far enough below the smallest coordinate that no output falls below 0)
and a spatial shape with room for every output; then spconv's output set equals ours and we only
have to map its output rows (its own order) to ours through our hash table.

A :class:`SpconvPairs` is built once per (coordinate set, geometry, algorithm) and cached in
``CoordinateManager.backend_cache``, so every layer with the same geometry reuses it, as spconv's
``indice_key`` does.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch

from sparse3d.coords import CoordinateManager


SPCONV_INSTALL_HINT = (
    "install spconv 2.x with `pip install spconv-cu120` (choose the wheel matching your CUDA version, "
    "e.g. spconv-cu118, or `pip install spconv` for CPU only), or use one of the other backends: "
    "backend='native' (sparse3d's own kernels, the default) or backend='torch' (pure-PyTorch reference)"
)


def import_spconv():
    """``(spconv.pytorch.ops, spconv.pytorch.functional, ConvAlgo)``, imported on first use.

    Raises ImportError with an install hint (and the alternative backends) when spconv is missing."""
    try:
        with warnings.catch_warnings():  # spconv 2.3 uses torch.cuda.amp.custom_fwd, deprecated in torch 2.4
            warnings.simplefilter("ignore", FutureWarning)
            from spconv.core import ConvAlgo
            from spconv.pytorch import functional as Fsp
            from spconv.pytorch import ops as sp_ops
    except (ImportError, OSError) as e:
        raise ImportError(f"the 'spconv' backend needs spconv, which could not be imported ({e}); "
                          f"{SPCONV_INSTALL_HINT}") from e
    return sp_ops, Fsp, ConvAlgo


@dataclass(frozen=True)
class SpconvPairs:
    """spconv index pairs of one conv, and how spconv's rows relate to sparse3d's.

    mode:      "subm", "conv" (regular, any stride) or "transpose" (spconv's generative transposed conv)
    algo:      the spconv ConvAlgo the pairs were made for (Native, or MaskImplicitGemm on CUDA)
    pairs:     Native: ``(indice_pairs int32 [2, K, N], indice_pair_num int32 [K])``;
               implicit GEMM: ``(pair_fwd, pair_bwd, pair_mask_fwd_splits, pair_mask_bwd_splits,
               mask_argsort_fwd_splits, mask_argsort_bwd_splits, masks)``
    num_out:   rows of spconv's output
    out_coords: int32 ``[num_out, 4]`` spconv's output coordinates in sparse3d's frame (its row order)
    out_rows:  int64 ``[N_out]``: spconv output row of each sparse3d output row (-1: no inputs, so 0),
               or None when the orders are identical
    """

    mode: str
    algo: object
    pairs: Tuple
    num_out: int
    out_coords: torch.Tensor
    out_rows: Optional[torch.Tensor]


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


def _rows_in_ours(manager: CoordinateManager, out_key: int, sp_coords: torch.Tensor) -> Optional[torch.Tensor]:
    """For every sparse3d output row, the spconv row with the same coordinates (-1 if none);
    None when spconv's rows are already in sparse3d's order."""
    n_out = manager.size(out_key)
    ours = manager.coords(out_key)
    if sp_coords.shape[0] == n_out and torch.equal(sp_coords, ours):
        return None
    sp_to_ours = manager.table(out_key).lookup(sp_coords.contiguous()).long()  # [num_out], -1 if not ours
    rows = torch.full((n_out,), -1, dtype=torch.long, device=sp_coords.device)
    found = sp_to_ours >= 0
    rows[sp_to_ours[found]] = torch.nonzero(found).squeeze(1)
    return rows


def _make_pairs(indices: torch.Tensor, batch_size: int, shape: List[int], algo, k: int, s: int, pad: int, d: int,
                subm: bool, transpose: bool) -> Tuple[torch.Tensor, Tuple]:
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


def conv_pairs(manager: CoordinateManager, in_key: int, out_key: int, kernel_size: int, stride: int, dilation: int,
               mode: str, algo) -> SpconvPairs:
    """spconv's pairs for the conv from set ``in_key`` onto set ``out_key`` (cached on ``manager``).

    mode "subm": spconv SubMConv (``in_key == out_key``, stride 1, odd kernel);
    mode "conv": spconv SparseConv (output: every reachable voxel; rows mapped onto ``out_key``);
    mode "transpose": spconv SparseConvTranspose (generative: output ``i * stride + off[k]``).
    spconv's input rows are always ``in_key``'s rows in sparse3d's order.
    """
    cache = ("spconv", str(algo), mode, in_key, out_key, kernel_size, stride, dilation)
    hit = manager.backend_cache.get(cache)
    if hit is not None:
        return hit  # type: ignore[return-value]
    coords = manager.coords(in_key)
    k, s, d = kernel_size, stride, dilation
    c = (k - 1) // 2
    if mode == "subm":
        origin, shape = _origin_and_shape(coords, k * d, k * d, 1)
        out_origin = origin
    elif mode == "conv":
        origin, shape = _origin_and_shape(coords, (k - 1 - c) * d, k * d + s, s)
        out_origin = torch.div(origin, s, rounding_mode="floor")
    elif mode == "transpose":
        origin, shape = _origin_and_shape(coords, -(-c * d // s), c * d + 2, 1)
        out_origin = origin * s
    else:
        raise ValueError(f"mode must be 'subm', 'conv' or 'transpose', got {mode!r}")
    batch_size = int(coords[:, 0].max()) + 1 if coords.shape[0] else 1
    sp_out, pairs = _make_pairs(_shift(coords, origin), batch_size, shape, algo, k, s, c * d, d,
                                mode == "subm", mode == "transpose")
    out_coords = coords if mode == "subm" else _unshift(sp_out, out_origin)
    plan = SpconvPairs(mode, algo, pairs, int(sp_out.shape[0]), out_coords,
                       _rows_in_ours(manager, out_key, out_coords))
    manager.backend_cache[cache] = plan
    return plan


def inverse_pairs(manager: CoordinateManager, fine_key: int, coarse_key: int, kernel_size: int, stride: int,
                  dilation: int, algo) -> Tuple[SpconvPairs, Optional[torch.Tensor]]:
    """Pairs for spconv's inverse conv (coarse ``coarse_key`` -> known fine ``fine_key``): the pairs of
    the strided conv ``fine_key`` -> ``coarse_key`` (shared with that Conv3d), and the sparse3d row of
    ``coarse_key`` behind each of its spconv output rows (int64 ``[num_out]``, -1 where ``coarse_key``
    lacks it; None when the orders are identical). The inverse conv's output rows are ``fine_key``'s."""
    plan = conv_pairs(manager, fine_key, coarse_key, kernel_size, stride, dilation, "conv", algo)
    cache = ("spconv-inverse", str(algo), fine_key, coarse_key, kernel_size, stride, dilation)
    hit = manager.backend_cache.get(cache)
    if hit is None:
        ours = manager.coords(coarse_key)
        if plan.num_out == ours.shape[0] and torch.equal(plan.out_coords, ours):
            hit = (None,)
        else:
            hit = (manager.table(coarse_key).lookup(plan.out_coords.contiguous()).long(),)
        manager.backend_cache[cache] = hit
    return plan, hit[0]  # type: ignore[index]

"""spconv 2.3, the peer of benchmarks/bm_conv.py: its modules, tensors and index-pair builders for the same
conv geometry as sparse3d's, and the row order that lines its outputs up with ours."""
from __future__ import annotations

from typing import Callable, Sequence

import torch

import sparse3d as s3d


def _spconv():
    import spconv.pytorch as spconv
    from spconv.core import ConvAlgo
    from spconv.pytorch import ops as sops
    return spconv, ConvAlgo, sops


def spconv_algo(device: torch.device):
    """The spconv algorithm benchmarked on ``device``: Native on CPU, MaskImplicitGemm (its default) on CUDA."""
    _, ConvAlgo, _ = _spconv()
    return ConvAlgo.MaskImplicitGemm if device.type == "cuda" else ConvAlgo.Native


def spconv_version() -> str:
    import spconv
    return str(getattr(spconv, "__version__", "unknown"))


def spconv_tensor(coords: torch.Tensor, feats: torch.Tensor):
    spconv, _, _ = _spconv()
    shape = (coords[:, 1:].max(0).values + 3).tolist()
    return spconv.SparseConvTensor(feats, coords, shape, int(coords[:, 0].max()) + 1)


def spconv_layer(k: int, s: int, c_in: int, c_out: int, algo):
    """spconv's module for our conv (k, s): SubMConv3d at stride 1, SparseConv3d padded by (k - 1) // 2."""
    spconv, _, _ = _spconv()
    if s == 1:
        return spconv.SubMConv3d(c_in, c_out, k, bias=False, indice_key="bm", algo=algo)
    return spconv.SparseConv3d(c_in, c_out, k, s, padding=(k - 1) // 2, bias=False, algo=algo)


def spconv_pair_builder(coords: torch.Tensor, spatial_shape: Sequence[int], algo) -> Callable[[], object]:
    """A call that builds spconv's submanifold 3x3x3 index pairs from scratch for ``coords``.

    Native (CPU): ``get_indice_pairs``. Implicit GEMM (CUDA): ``get_indice_pairs_implicit_gemm`` with
    ``is_train=True`` (forward and backward pairs and masks, as SubMConv3d builds them in training;
    sparse3d's map builds both of its tables too), with a fresh sort allocator per call."""
    _, ConvAlgo, sops = _spconv()
    batch_size = int(coords[:, 0].max()) + 1
    args = (coords, batch_size, list(spatial_shape), algo, [3, 3, 3], [1, 1, 1], [1, 1, 1], [1, 1, 1], [0, 0, 0],
            True, False)  # ..., ksize, stride, padding, dilation, out_padding, subm, transpose
    if algo == ConvAlgo.Native:
        return lambda: sops.get_indice_pairs(*args)
    from spconv.pytorch.core import ThrustSortAllocator

    return lambda: sops.get_indice_pairs_implicit_gemm(*args, is_train=True,
                                                       alloc=ThrustSortAllocator(coords.device))


def rows_in_our_order(ours: s3d.SparseTensor, sp_indices: torch.Tensor) -> torch.Tensor:
    """Row of each spconv output coordinate in our output tensor."""
    idx = s3d.ops.lookup(ours, sp_indices.int())
    assert (idx >= 0).all(), "spconv produced a coordinate sparse3d does not have"
    assert len(idx) == len(ours), f"spconv has {len(idx)} outputs, sparse3d {len(ours)}"
    return idx

"""Octree ops with autograd: conv at one depth, stride-2 conv to the parent depth, transposed conv to the
children, max / avg pooling and unpooling.

Features are plain tensors aligned with the octree's rows at one depth: ``[N_d, C]`` over all nodes, or
``[M_d, C]`` over the non-empty ones (``nempty=True``). Convs run the octree's kernel maps
(:mod:`sparse3d.octree.tables`) on the shared conv backends (``backend=``: "native", "torch", ... as for
:mod:`sparse3d.ops`), with weights ``[K**3, C_in, C_out]`` in the offset order of :mod:`sparse3d.kernel`: an
octree conv *is* sparse3d's conv on the octree's coordinates (``Octree.to_sparse``).

Differences from O-CNN, on purpose: a stride-2 conv with kernel 3 gives every node of depth d - 1 the sum
over its 3x3x3 first-child neighbourhood, so an empty node next to non-empty ones may get a non-zero output
(O-CNN sets the empty ones to 0); pooling gives 0 at empty nodes, as O-CNN's padding does.
"""
from __future__ import annotations

from typing import Optional, Tuple, Union

import torch

from sparse3d.backends import Backend, get_backend
from sparse3d.backends.base import gather_windows
from sparse3d.octree.structure import Octree
from sparse3d.utils.checks import require_tensor

__all__ = ["octree_conv", "octree_deconv", "octree_max_pool", "octree_avg_pool", "octree_max_unpool",
           "octree_upsample"]


def _check_octree(octree: object) -> Octree:
    if not isinstance(octree, Octree):
        raise TypeError(f"octree must be an Octree, got {type(octree).__name__}")
    return octree


def _check_feats(feats: torch.Tensor, octree: Octree, depth: int, nempty: bool, name: str = "feats") -> None:
    n = octree.num_nodes(depth, nempty)
    require_tensor(feats, name, f"float [N={n}, C]")
    if feats.dim() != 2 or feats.shape[0] != n:
        which = "non-empty nodes" if nempty else "nodes"
        raise ValueError(f"{name} must have shape [N={n}, C] ({which} at depth {depth}), got {tuple(feats.shape)}")
    if not feats.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {feats.dtype}")
    if feats.device != octree.device:
        raise ValueError(f"{name} must be on the octree's device {octree.device}, got {feats.device}")


def _check_weight(feats: torch.Tensor, weight: torch.Tensor, kernel_size: int, bias: Optional[torch.Tensor]) -> None:
    require_tensor(weight, "weight", "[K**3, C_in, C_out]")
    expect = (kernel_size**3, int(feats.shape[1]))
    if weight.dim() != 3 or tuple(weight.shape[:2]) != expect:
        raise ValueError(f"weight must have shape [K**3={expect[0]}, C_in={expect[1]}, C_out], got "
                         f"{tuple(weight.shape)}")
    if weight.dtype != feats.dtype:
        raise TypeError(f"weight dtype {weight.dtype} must match feats dtype {feats.dtype}")
    if bias is not None:
        require_tensor(bias, "bias", "[C_out]")
        if tuple(bias.shape) != (weight.shape[2],) or bias.dtype != weight.dtype:
            raise ValueError(f"bias must be {weight.dtype} [C_out={weight.shape[2]}], got {bias.dtype} "
                             f"{tuple(bias.shape)}")


def octree_conv(feats: torch.Tensor, octree: Octree, depth: int, weight: torch.Tensor,
                bias: Optional[torch.Tensor] = None, kernel_size: int = 3, stride: int = 1, nempty: bool = False,
                backend: Union[str, Backend, None] = None) -> torch.Tensor:
    """Octree conv at ``depth``: feats ``[N_d, C_in]`` -> ``[N_d, C_out]`` (stride 1, kernel 1 or 3) or
    ``[N_{d-1}, C_out]`` (stride 2, kernel 2 or 3; the parent depth). weight ``[K**3, C_in, C_out]``."""
    octree = _check_octree(octree)
    depth = octree.check_depth(depth, low=1 if stride == 2 else 0)
    _check_feats(feats, octree, depth, nempty)
    _check_weight(feats, weight, kernel_size, bias)
    kmap = octree.kernel_map(depth, kernel_size, stride, nempty)
    out = get_backend(backend).conv(feats, weight, kmap)
    return out + bias if bias is not None else out


def octree_deconv(feats: torch.Tensor, octree: Octree, depth: int, weight: torch.Tensor,
                  bias: Optional[torch.Tensor] = None, kernel_size: int = 2, stride: int = 2, nempty: bool = False,
                  backend: Union[str, Backend, None] = None) -> torch.Tensor:
    """Transposed octree conv: the transpose of :func:`octree_conv` with the same arguments at the output
    depth. Stride 2: feats at ``depth`` ``[N_d, C_in]`` -> the children's depth ``[N_{d+1}, C_out]`` (kernel 2:
    each child reads its parent through offset = its child position); stride 1 (kernel 3): the same depth."""
    octree = _check_octree(octree)
    depth = octree.check_depth(depth, high=octree.depth - 1 if stride == 2 else octree.depth)
    _check_feats(feats, octree, depth, nempty)
    _check_weight(feats, weight, kernel_size, bias)
    out_depth = depth + 1 if stride == 2 else depth
    kmap = octree.kernel_map(out_depth, kernel_size, stride, nempty).transpose()
    out = get_backend(backend).conv(feats, weight, kmap)
    return out + bias if bias is not None else out


def _child_windows(feats: torch.Tensor, octree: Octree, depth: int, nempty: bool, fill: float
                   ) -> Tuple[torch.Tensor, torch.Tensor]:
    """The children of every node of ``depth - 1``: ``([N_{d-1}, 8, C], present bool [N_{d-1}, 8])``."""
    depth = octree.check_depth(depth, low=1)
    _check_feats(feats, octree, depth, nempty)
    nbr = octree.kernel_map(depth, 2, 2, nempty).nbr_out
    return gather_windows(feats, nbr, fill)


def octree_max_pool(feats: torch.Tensor, octree: Octree, depth: int, nempty: bool = False,
                    return_indices: bool = False) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """Max over the children: feats at ``depth`` ``[N_d, C]`` -> ``[N_{d-1}, C]`` (0 at nodes without
    children). ``return_indices``: also the child position (0..7) of each max, int64 ``[N_{d-1}, C]``, for
    :func:`octree_max_unpool`."""
    octree = _check_octree(octree)
    g, present = _child_windows(feats, octree, depth, nempty, float("-inf"))
    vals, idx = g.max(dim=1) if g.shape[0] else (g.new_zeros((0, g.shape[2])), g.new_zeros((0, g.shape[2]),
                                                                                          dtype=torch.long))
    vals = torch.where(present.any(1, keepdim=True), vals, torch.zeros_like(vals))
    return (vals, idx) if return_indices else vals


def octree_avg_pool(feats: torch.Tensor, octree: Octree, depth: int, nempty: bool = False) -> torch.Tensor:
    """Mean over the present children: ``[N_d, C]`` -> ``[N_{d-1}, C]`` (0 at nodes without children)."""
    octree = _check_octree(octree)
    g, present = _child_windows(feats, octree, depth, nempty, 0.0)
    count = present.sum(dim=1, keepdim=True).clamp_min(1).to(g.dtype)
    return g.sum(dim=1) / count


def octree_max_unpool(feats: torch.Tensor, indices: torch.Tensor, octree: Octree, depth: int,
                      nempty: bool = False) -> torch.Tensor:
    """Inverse of :func:`octree_max_pool`: feats at ``depth`` ``[N_d, C]`` and its indices -> the children's
    depth ``[N_{d+1}, C]``, each value at the child it came from, 0 elsewhere."""
    octree = _check_octree(octree)
    depth = octree.check_depth(depth, high=octree.depth - 1)
    _check_feats(feats, octree, depth, nempty)
    require_tensor(indices, "indices", "int64 [N, C]")
    if indices.shape != feats.shape or indices.dtype != torch.long:
        raise ValueError(f"indices must be int64 of feats' shape {tuple(feats.shape)} (from octree_max_pool), got "
                         f"{indices.dtype} {tuple(indices.shape)}")
    nbr = octree.kernel_map(depth + 1, 2, 2, nempty).nbr_out.long()  # [N_d, 8] child rows
    n_child = octree.num_nodes(depth + 1, nempty)
    rows = nbr.gather(1, indices.clamp(0, 7))
    rows = torch.where((rows >= 0) & (indices >= 0) & (indices < 8), rows, torch.full_like(rows, n_child))
    out = feats.new_zeros((n_child + 1, feats.shape[1])).scatter(0, rows, feats)
    return out[:n_child]


def octree_upsample(feats: torch.Tensor, octree: Octree, depth: int, nempty: bool = False) -> torch.Tensor:
    """Nearest up-sampling (average unpooling): every child at ``depth + 1`` takes its parent's feature,
    ``[N_d, C]`` -> ``[N_{d+1}, C]``."""
    octree = _check_octree(octree)
    depth = octree.check_depth(depth, high=octree.depth - 1)
    _check_feats(feats, octree, depth, nempty)
    parent = octree.parent_rows(depth + 1)
    if nempty:
        parent = parent[octree.nonempty_rows(depth + 1)]
        from sparse3d.octree.tables import _remap

        parent = _remap(octree, depth)[parent].long()
    return feats[parent]

"""The octree as a geometry provider: per-depth neighbour tables and the kernel maps made from them.

Every table follows the contract of :mod:`sparse3d.kernel_map` (``off[k]`` from
:func:`sparse3d.kernel.kernel_offsets`, rows of the octree's node order), so the maps run on every conv
backend (the GEMM engine is shared, nothing octree-specific multiplies):

* ``neighbor_table(octree, d)``: int32 ``[N_d, 27]``, ``nbr[i, k]`` = the node at ``coords[i] + off[k]`` of
  depth d, or -1. Built top-down in O(27 N) without search (csrc/octree, ``neighbors``): the neighbour of a
  child is a child of one of its parent's neighbours (the full-octree convention makes every child of a
  non-empty node exist). Depth 0: each root is its own centre neighbour.
* stride 2, kernel 2 (depth d -> d - 1): ``nbr_out[o, k] = 8 * children[d-1][o] + k`` (the 8 children);
* stride 2, kernel 3: ``nbr_out[o, k]`` = the node at ``2 * coords[o] + off[k]`` of depth d, the 3x3x3
  neighbourhood of o's first child (O-CNN's stride-2 neighbourhood), for every node o of depth d - 1;
* ``nempty=True``: the same geometry restricted to the non-empty nodes (both sides), rows renumbered.

Kernel maps are cached on the octree (one object per geometry), so every layer shares them and the
backends' plans (:class:`~sparse3d.kernel_map.PlanCache`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from sparse3d.kernel_map import KernelMap
from sparse3d.utils.checks import require_choice

if TYPE_CHECKING:  # pragma: no cover
    from sparse3d.octree.structure import Octree

__all__ = ["neighbor_table", "strided_table", "kernel_map", "set_key"]


def set_key(depth: int, nempty: bool) -> int:
    """The key of a coordinate set of the octree in its kernel maps: one per (depth, nempty)."""
    return 2 * depth + int(nempty)


def _remap(octree: "Octree", depth: int) -> torch.Tensor:
    """int32 ``[N_d + 1]``: full row -> row among the non-empty nodes, -1 for empty ones; entry N_d (for -1) is -1."""
    def build() -> torch.Tensor:
        n = octree.num_nodes(depth)
        m = torch.full((n + 1,), -1, dtype=torch.int32, device=octree.device)
        rows = octree.nonempty_rows(depth)
        m[rows] = torch.arange(rows.shape[0], dtype=torch.int32, device=octree.device)
        return m

    out: torch.Tensor = octree.cached(("remap", depth), build)
    return out


def _restrict(octree: "Octree", table: torch.Tensor, depth_in: int, out_rows: torch.Tensor) -> torch.Tensor:
    """The rows ``out_rows`` of a table whose entries are rows of depth ``depth_in``, entries renumbered to the
    non-empty nodes of ``depth_in`` (empty -> -1)."""
    t = table[out_rows].long()
    t = torch.where(t >= 0, t, torch.full_like(t, octree.num_nodes(depth_in)))
    return _remap(octree, depth_in)[t].contiguous()


def neighbor_table(octree: "Octree", depth: int, nempty: bool = False) -> torch.Tensor:
    """int32 ``[N_d, 27]`` (``[M_d, 27]`` for ``nempty``): the 3x3x3 neighbours at ``depth`` (module doc)."""
    from sparse3d.octree.structure import octree_ext

    depth = octree.check_depth(depth)
    if nempty:
        def build_nempty() -> torch.Tensor:
            return _restrict(octree, neighbor_table(octree, depth), depth, octree.nonempty_rows(depth))

        out: torch.Tensor = octree.cached(("nbr", depth, True), build_nempty)
        return out

    def build() -> torch.Tensor:
        if depth == 0:
            n = octree.num_nodes(0)
            t = torch.full((n, 27), -1, dtype=torch.int32, device=octree.device)
            t[:, 13] = torch.arange(n, dtype=torch.int32, device=octree.device)
            return t
        parents = octree.nonempty_rows(depth - 1).to(torch.int32)
        rows = parents.repeat_interleave(8)
        pos = torch.arange(8, dtype=torch.int32, device=octree.device).repeat(parents.shape[0])
        return octree_ext().neighbors(neighbor_table(octree, depth - 1), octree.children[depth - 1], rows, pos,
                                      octree.num_nodes(depth))

    out = octree.cached(("nbr", depth, False), build)
    return out


def strided_table(octree: "Octree", depth: int, kernel_size: int, nempty: bool = False) -> torch.Tensor:
    """int32 ``[N_{d-1}, K**3]``: the stride-2 table from ``depth`` to ``depth - 1`` (kernel 2 or 3)."""
    from sparse3d.octree.structure import octree_ext

    depth = octree.check_depth(depth, low=1)
    require_choice(kernel_size, "kernel_size", (2, 3))
    if nempty:
        def build_nempty() -> torch.Tensor:
            full = strided_table(octree, depth, kernel_size)
            return _restrict(octree, full, depth, octree.nonempty_rows(depth - 1))

        out: torch.Tensor = octree.cached(("strided", depth, kernel_size, True), build_nempty)
        return out

    def build() -> torch.Tensor:
        ch = octree.children[depth - 1]
        if kernel_size == 2:
            k = torch.arange(8, dtype=torch.int32, device=octree.device)
            return torch.where(ch[:, None] >= 0, 8 * ch[:, None] + k, torch.full_like(k, -1)).contiguous()
        n = octree.num_nodes(depth - 1)
        rows = torch.arange(n, dtype=torch.int32, device=octree.device)
        pos = torch.zeros(n, dtype=torch.int32, device=octree.device)
        return octree_ext().neighbors(neighbor_table(octree, depth - 1), ch, rows, pos, octree.num_nodes(depth))

    out = octree.cached(("strided", depth, kernel_size, False), build)
    return out


def kernel_map(octree: "Octree", depth: int, kernel_size: int = 3, stride: int = 1, nempty: bool = False
               ) -> KernelMap:
    """The conv :class:`KernelMap` of the octree at ``depth``: stride 1 (kernel 3; kernel 1 is the identity
    map) onto the same nodes, or stride 2 (kernel 2 or 3) onto the nodes of ``depth - 1``. Cached."""
    depth = octree.check_depth(depth)
    stride = require_choice(stride, "stride", (1, 2))
    if stride == 1:
        require_choice(kernel_size, "kernel_size (stride 1)", (1, 3))
    else:
        octree.check_depth(depth, low=1)
        require_choice(kernel_size, "kernel_size (stride 2)", (2, 3))
    nempty = bool(nempty)

    def build() -> KernelMap:
        c_in = octree.coords[depth]
        if nempty:
            c_in = c_in[octree.nonempty_rows(depth)]
        if stride == 1:
            if kernel_size == 1:
                nbr = torch.arange(c_in.shape[0], dtype=torch.int32, device=octree.device)[:, None]
            else:
                nbr = neighbor_table(octree, depth, nempty)
            key = set_key(depth, nempty)
            return KernelMap.from_neighbor_table(nbr, c_in, c_in, kernel_size, 1, 1, key, key)
        c_out = octree.coords[depth - 1]
        if nempty:
            c_out = c_out[octree.nonempty_rows(depth - 1)]
        nbr = strided_table(octree, depth, kernel_size, nempty)
        return KernelMap.from_neighbor_table(nbr, c_in, c_out, kernel_size, 2, 1, set_key(depth, nempty),
                                             set_key(depth - 1, nempty))

    out: KernelMap = octree.cached(("kmap", depth, kernel_size, stride, nempty), build)
    return out

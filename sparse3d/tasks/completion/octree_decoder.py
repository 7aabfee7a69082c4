"""Octree generation as the completion decoder (OGN; O-CNN's U-Net decoder): ``decoder: octree``.

The sparse encoder and the coarsest level of :class:`~sparse3d.tasks.completion.model.CompletionNet` stay as
they are; the coarse voxels then become the leaves of a :class:`~sparse3d.octree.Octree` (depth D_c with
``2^D_c`` above the largest coarse coordinate, leaf stride ``2**(L-1)``), and decoding *generates* the octree:

    depth D_c   the coarse voxels and their empty siblings (the full-octree convention), an octree conv
                block, split logits on every node
    D_c + l     :meth:`Octree.grow` gives the 8 children of every node classified *split* (the logit > 0;
                in training also every node the target occupies), a transposed octree conv (kernel 2,
                stride 2) carries the parent's features to them, the encoder's skip features of that
                stride are concatenated, octree conv blocks, split (occupancy) logits
    finest      occupancy + truncated signed distance, as the sparse decoder

Every conv runs the octree's own neighbour tables (built top-down from the parents' neighbours, no hashing)
on the shared conv backends. The node sets equal the sparse generative decoder's at the finer levels (8
children of each kept voxel); they differ at the coarsest level (the siblings) and at the volume's border:
children outside ``bounds`` stay in the octree (an octree keeps all 8 siblings) but are never split, scored
or output. Voxels at negative coordinates (from the coarse level's growth without ``bounds``) are dropped:
the octree's cube starts at voxel 0, as crops and scenes do.

Outputs follow :class:`~sparse3d.tasks.completion.model.CompletionOutput`, so the loss, prediction and
evaluation do not know which decoder ran.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

import torch
from torch import nn

from sparse3d import ops
from sparse3d.octree import Octree, OctreeConv, OctreeDeconv
from sparse3d.tensor import SparseTensor

if TYPE_CHECKING:  # pragma: no cover
    from sparse3d.tasks.completion.model import CompletionConfig, CompletionOutput, TargetFn


class _Norm(nn.Module):
    """BatchNorm + ReLU of octree features ``[N, C]``; zero rows pass through the affine part only (batch
    statistics of zero rows do not exist), as :class:`sparse3d.nn.BatchNorm` does."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(channels)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        if f.shape[0] == 0:
            return torch.relu(f * self.bn.weight + self.bn.bias)
        return torch.relu(self.bn(f))


class _Block(nn.Module):
    """Octree conv 3x3x3 at one depth + BatchNorm + ReLU: ``[N_d, C_in] -> [N_d, C_out]``."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = OctreeConv(c_in, c_out, 3)
        self.norm = _Norm(c_out)

    def forward(self, f: torch.Tensor, octree: Octree, depth: int) -> torch.Tensor:
        return self.norm(self.conv(f, octree, depth))


class _Up(nn.Module):
    """Transposed octree conv (kernel 2, stride 2) to the children + BatchNorm + ReLU: ``[N_d] -> [N_{d+1}]``."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = OctreeDeconv(c_in, c_out, 2, 2)
        self.norm = _Norm(c_out)

    def forward(self, f: torch.Tensor, octree: Octree, depth: int) -> torch.Tensor:
        return self.norm(self.conv(f, octree, depth))


def coarse_octree(h: SparseTensor) -> Tuple[Octree, torch.Tensor, torch.Tensor]:
    """The octree whose leaves are ``h``'s voxels (at h's stride) and their siblings.

    Returns ``(octree, rows, kept)``: rows int64 ``[M]`` the leaf row of each kept voxel, kept bool ``[N]``
    the voxels of h at non-negative coordinates (the octree's cube starts at 0)."""
    kept = (h.coords[:, 1:] >= 0).all(1)
    cells = h.coords[kept]
    top = int(cells[:, 1:].max()) + 1 if cells.shape[0] else 1
    depth = max(1, (top - 1).bit_length())
    octree, rows = Octree.from_cells(cells, depth, full_depth=0, batch_size=max(h.batch_size, 1),
                                     leaf_stride=h.stride)
    return octree, rows, kept


class OctreeDecoder(nn.Module):
    """``decoder(h, skips, x, bounds, target_fn) -> CompletionOutput`` (module doc); ``h``: the coarsest level
    ``[N, channels[-1]]`` at stride ``2**(L-1)``, ``skips``: the encoder's outputs, finest first, ``x``: the
    network input at stride 1 (its raw features feed the distance head)."""

    def __init__(self, config: "CompletionConfig") -> None:
        super().__init__()
        ch = config.channels
        top = ch[-1]
        self.trunc = config.trunc
        self.coarse = nn.ModuleList([_Block(top, top) for _ in range(config.blocks)])
        self.up = nn.ModuleList()
        self.fuse = nn.ModuleList()
        self.occ = nn.ModuleList([nn.Linear(top, 1)])
        for i in range(len(ch) - 2, -1, -1):  # from the second coarsest to the finest
            self.up.append(_Up(ch[i + 1], ch[i]))
            self.fuse.append(nn.ModuleList([_Block(2 * ch[i], ch[i])] + [_Block(ch[i], ch[i])
                                                                           for _ in range(config.blocks)]))
            self.occ.append(nn.Linear(ch[i], 1))
        self.sdf = nn.Linear(ch[0] + config.in_channels, 1)

    def forward(self, h: SparseTensor, skips: List[SparseTensor], x: SparseTensor,
                bounds: Optional[Sequence[int]], target_fn: Optional["TargetFn"]) -> "CompletionOutput":
        from sparse3d.tasks.completion.model import CompletionOutput, _in_bounds

        out = CompletionOutput()
        octree, rows, kept = coarse_octree(h)
        depth = octree.depth
        f = h.feats.new_zeros((octree.num_nodes(depth), h.num_channels)).index_copy(0, rows, h.feats[kept])
        for block in self.coarse:
            f = block(f, octree, depth)
        levels = len(self.occ)
        split = torch.zeros(0, dtype=torch.bool)  # per level: the nodes whose children the next level holds
        for lvl in range(levels):
            if lvl > 0:
                octree = octree.grow(split)
                f = self.up[lvl - 1](f, octree, depth)
                depth += 1
                level = octree.to_sparse(depth, f)
                skip_feats, _ = ops.align(skips[-1 - lvl], level)
                f = torch.cat([f, skip_feats], 1)
                blocks = self.fuse[lvl - 1]
                assert isinstance(blocks, nn.ModuleList)
                for block in blocks:
                    f = block(f, octree, depth)
                level = level.replace(f)
            else:
                level = octree.to_sparse(depth, f)
            inside = _in_bounds(level, bounds)
            logit = self.occ[lvl](f)[:, 0]
            scored = ops.prune(level, inside)
            out.levels.append(scored)
            out.logits.append(logit[inside])
            out.strides.append(level.stride)
            if lvl < levels - 1:
                split = logit > 0
                if target_fn is not None:
                    split = split | target_fn(level.coords, level.stride).to(split.device)
                split = split & inside
                continue
            raw, _ = ops.align(x, scored)  # the input's (tsdf / trunc, known) at the scored voxels
            d = self.sdf(torch.cat([f[inside], raw], 1))[:, 0]
            out.tsdf_all = torch.tanh(d) * self.trunc
            keep = out.logits[-1] > 0
            out.surface = ops.prune(scored, keep).replace(out.tsdf_all[keep][:, None])
        return out

"""Dependent (autoregressive) occupancy prediction over interleaved voxel groups, after ScanComplete.

A level's voxels are split into ``groups`` interleaved classes by the parity of their lattice
coordinates (:func:`group_index`): 8 = the parity classes ``(x % 2, y % 2, z % 2)``, group
``4 * (x % 2) + 2 * (y % 2) + z % 2``; 2 = the checkerboard ``(x + y + z) % 2``; 1 = one group (the
one-shot decoder). Groups are decided in order g = 0, 1, ...; group g's occupancy head sees

    z_g = h + mix([h, ctx_g])        at the voxels of group g         (h: the level's features [N, C])
    ctx_g = ReLU(SubMConv3d_3([occ * m_g, m_g]))                       (over all N voxels of the level)
    m_g = 1 where the voxel's group < g (already decided), else 0;  occ = the decided occupancy (0 / 1)

so the head of group g depends on the occupancy of groups < g in the 3x3x3 neighbourhood and on
nothing of groups >= g (their inputs are multiplied by m_g = 0 before the conv: exact zeros). ``mix``
is Linear(C + C_ctx -> C), ReLU, Linear(C -> C) with the last layer initialised to zero, so an untrained
dependent head starts as the one-shot head. The context branch has no batch norm: batch statistics
would mix the groups.

The decided occupancy ``occ`` is

* teacher forcing (training, ``target`` given): the ground truth of the earlier groups;
* inference (``target=None``): the model's own decisions ``logit > 0`` of the earlier groups;
* with ``sampling`` p > 0 (scheduled sampling against exposure bias), teacher forcing gives a random
  fraction p of the earlier groups' voxels the model's own decision instead of the truth. The draw is
  seeded by the level's coordinates (a function of the batch, so a resumed run repeats it).

Both run the same loop over the groups, so with ``target`` equal to the model's own decisions the
two give bit-identical logits. Cost: ``groups`` small convolutions (2 -> C_ctx channels) over the
level's voxels instead of none; the rest of the network runs once.

Measured on the demo rooms (docs/completion.md, benchmarks/bm_completion.py --compare; 700 steps): with
pure teacher forcing the model learns to trust its context and, fed its own decisions at inference, is
worse than the one-shot decoder (exposure bias); with ``sampling`` = 1 (always its own decisions, no
teacher forcing) it is not better in IoU over two seeds (+0.004, -0.014) and its chamfer distance is ~2 %
lower.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import nn

import sparse3d.nn as snn
from sparse3d.tensor import SparseTensor

GROUP_CHOICES = (1, 2, 8)


def group_index(coords: torch.Tensor, groups: int) -> torch.Tensor:
    """coords int ``[N, 4]`` (batch, x, y, z) on a level's lattice -> group long ``[N]`` in ``[0, groups)``.

    8: ``4 * (x & 1) + 2 * (y & 1) + (z & 1)``; 2: ``(x + y + z) & 1``; 1: all 0 (``&`` also takes the
    parity of negative coordinates)."""
    if groups not in GROUP_CHOICES:
        raise ValueError(f"groups must be one of {list(GROUP_CHOICES)}, got {groups!r}")
    xyz = coords[:, 1:].long() & 1
    if groups == 8:
        return 4 * xyz[:, 0] + 2 * xyz[:, 1] + xyz[:, 2]
    if groups == 2:
        return xyz.sum(1) & 1
    return torch.zeros(len(coords), dtype=torch.long, device=coords.device)


class GroupedOccupancy(nn.Module):
    """Occupancy of one level decided group by group (see the module docstring).

    ``head(h, occ_head, target=None) -> (z, logit)``: h SparseTensor feats ``[N, channels]``; occ_head a
    torch module on rows ``[M, channels] -> [M, 1]`` (the level's occupancy head, owned by the
    model);
    target bool ``[N]`` (teacher forcing) or None (inference). z: h's coordinates with feats ``[N, channels]``
    (each voxel's ``z_g`` of its own group), logit float ``[N]`` in h's row order.
    """

    def __init__(self, channels: int, groups: int, ctx_channels: int = 8, sampling: float = 0.0) -> None:
        super().__init__()
        if groups not in GROUP_CHOICES:
            raise ValueError(f"groups must be one of {list(GROUP_CHOICES)}, got {groups!r}")
        if ctx_channels < 1:
            raise ValueError(f"ctx_channels must be >= 1, got {ctx_channels}")
        if not 0.0 <= sampling <= 1.0:
            raise ValueError(f"sampling must be in [0, 1], got {sampling!r}")
        self.groups = groups
        self.sampling = float(sampling)
        self.ctx = nn.Sequential(snn.SubMConv3d(2, ctx_channels, 3), snn.ReLU())
        self.mix = nn.Sequential(nn.Linear(channels + ctx_channels, channels), nn.ReLU(),
                                 nn.Linear(channels, channels))
        nn.init.zeros_(self.mix[2].weight)
        nn.init.zeros_(self.mix[2].bias)

    def forward(self, h: SparseTensor, occ_head: nn.Module,
                target: Optional[torch.Tensor] = None) -> Tuple[SparseTensor, torch.Tensor]:
        n = len(h)
        if target is not None and (target.shape != (n,) or target.dtype != torch.bool):
            raise ValueError(f"target must be bool [N={n}] (the level's true occupancy), got "
                             f"{tuple(target.shape)} {target.dtype}")
        group = group_index(h.coords, self.groups)
        feats = h.feats
        # decided occupancy: the ground truth (teacher forcing) or filled in group by group (inference)
        occ = target.to(feats.dtype) if target is not None else feats.new_zeros(n)
        own = None  # teacher forcing with sampling: bool [N], the voxels that carry the model's own decision
        if target is not None and self.sampling > 0:
            gen = torch.Generator(h.device).manual_seed(int(h.coords.long().sum()) * 1000003 + n)
            own = torch.rand(n, generator=gen, device=h.device) < self.sampling
        zs, logits, rows_all = [], [], []
        for g in range(self.groups):
            rows = torch.nonzero(group == g).flatten()
            if len(rows) == 0:
                continue
            m = (group < g).to(feats.dtype)
            ctx = self.ctx(h.replace(torch.stack([occ * m, m], 1))).feats[rows]
            hg = feats[rows]
            zg = hg + self.mix(torch.cat([hg, ctx.to(hg.dtype)], 1))
            lg = occ_head(zg)[:, 0]
            if target is None or own is not None:
                decided = (lg.detach() > 0).to(occ.dtype)
                if own is not None:
                    decided = torch.where(own[rows], decided, occ[rows])
                occ = occ.index_copy(0, rows, decided)
            zs.append(zg)
            logits.append(lg)
            rows_all.append(rows)
        if not rows_all:  # an empty level
            return h, occ_head(feats)[:, 0]
        order = torch.argsort(torch.cat(rows_all))  # rows_all concatenated is a permutation of 0..N-1
        z = torch.cat(zs)[order]
        return h.replace(z), torch.cat(logits)[order]

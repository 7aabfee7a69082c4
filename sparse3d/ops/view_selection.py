"""View selection for 3DMV: per batch item (crop / scene), the k frames that cover the most voxels.

A view covers a voxel when the voxel passes back-projection's visibility test in it (the rule of
sparse3d/ops/backproject.py: in front of the camera, inside the frame, valid depth in [near, far],
|depth - voxel depth| <= depth_thresh), computed by the same kernel (``sparse3d._C.project.visibility``).
The greedy choice (3DMV): repeatedly take the view that covers the most voxels not covered yet
(ties: the lowest view index), until k views are taken or the item has no usable view left.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Union

import torch

from sparse3d.ops.backproject import native, prepare_inputs
from sparse3d.tensor import SparseTensor
from sparse3d.utils.checks import require_int


class ViewSelection(NamedTuple):
    """What ``select_views`` returns (B = batch items, k = views asked for).

    views          int64 [B, k]  greedy picks in pick order; -1 where item b has fewer than k usable views
    new_voxels     int64 [B, k]  voxels each pick newly covered (0 for -1 entries)
    covered        int64 [B]     voxels of item b covered by its picks
    skipped_views  int64 [S]     views skipped for a non-finite pose or intrinsics (never picked)
    """

    views: torch.Tensor
    new_voxels: torch.Tensor
    covered: torch.Tensor
    skipped_views: torch.Tensor


def view_coverage(coords: Union[torch.Tensor, SparseTensor], voxel_to_world: torch.Tensor, depth: torch.Tensor,
                  intrinsics: torch.Tensor, cam_to_world: torch.Tensor, view_batch: torch.Tensor,
                  depth_thresh: Optional[float] = None, near: float = 0.1, far: float = 10.0) -> torch.Tensor:
    """bool ``[N, V]``: view v passes the back-projection test for voxel n (False for views of another
    batch item and for skipped views). Arguments as ``sparse3d.ops.backproject`` (no feature maps)."""
    p = prepare_inputs(coords, voxel_to_world, depth, intrinsics, cam_to_world, view_batch, depth_thresh, near, far)
    return native().visibility(p.coords, p.voxel_to_world, p.depth, p.intrinsics, p.world_to_cam, p.view_batch,
                                 p.depth_thresh, p.near, p.far)


def greedy_cover(cover: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy max coverage of one item: cover bool ``[M, U]`` (voxel x candidate view) -> (picks int64 [<= k]
    columns in pick order, new int64 [<= k] voxels each pick added). Ties go to the lowest column."""
    M, U = cover.shape
    covered = torch.zeros(M, dtype=torch.bool, device=cover.device)
    taken = torch.zeros(U, dtype=torch.bool, device=cover.device)
    picks, new = [], []
    for _ in range(min(k, U)):
        gain = (cover & ~covered[:, None]).sum(0)
        gain = torch.where(taken, -1, gain)
        j = int(torch.argmax(gain))  # the first maximum: the lowest column
        picks.append(j)
        new.append(int(gain[j]))
        taken[j] = True
        covered |= cover[:, j]
    return torch.tensor(picks, dtype=torch.long), torch.tensor(new, dtype=torch.long)


def select_views(coords: Union[torch.Tensor, SparseTensor], voxel_to_world: torch.Tensor, depth: torch.Tensor,
                 intrinsics: torch.Tensor, cam_to_world: torch.Tensor, view_batch: torch.Tensor, k: int,
                 depth_thresh: Optional[float] = None, near: float = 0.1, far: float = 10.0) -> ViewSelection:
    """Per batch item, k views by greedy maximum coverage (3DMV; k = 1, 3, 5 in its ablation).

    Arguments as ``sparse3d.ops.backproject`` (no feature maps) plus ``k >= 1``. A pick may add no new
    voxel when the item's other views cover nothing more; it is still taken (so k views are used
    whenever the item has k usable ones). Returns a :class:`ViewSelection`.
    """
    k = require_int(k, "k", low=1)
    p = prepare_inputs(coords, voxel_to_world, depth, intrinsics, cam_to_world, view_batch, depth_thresh, near, far)
    cover = native().visibility(p.coords, p.voxel_to_world, p.depth, p.intrinsics, p.world_to_cam, p.view_batch,
                                  p.depth_thresh, p.near, p.far)
    B = p.voxel_to_world.shape[0]
    views = torch.full((B, k), -1, dtype=torch.long)
    new_voxels = torch.zeros(B, k, dtype=torch.long)
    covered = torch.zeros(B, dtype=torch.long)
    batch = p.coords[:, 0].long()
    for b in range(B):
        usable = (p.view_batch == b).nonzero().flatten()
        if len(usable) == 0:
            continue
        item = cover[batch == b][:, usable]
        picks, new = greedy_cover(item, k)
        views[b, :len(picks)] = usable[picks].cpu()
        new_voxels[b, :len(new)] = new
        covered[b] = int(new.sum())
    dev = p.coords.device
    return ViewSelection(views.to(dev), new_voxels.to(dev), covered.to(dev), p.skipped_views)

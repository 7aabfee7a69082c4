"""Targets and loss of scene completion.

The target of a batch is dense: ``tsdf [B, X, Y, Z]`` (voxel units, truncated to +-trunc,
positive in front of surfaces) and ``known [B, X, Y, Z]`` (bool, target space observed).
A voxel is *occupied* (on the surface) when known and ``|tsdf| < occ_thresh``; a coarse voxel
at stride s is occupied when any of its s**3 children is, and *valid* when any child is known.
Unknown target space, and space outside the volume, is masked out of every loss term.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import torch
import torch.nn.functional as F

from sparse3d.tasks.completion.model import CompletionOutput


class CompletionTarget:
    """Dense target volumes of a batch with per-stride lookups.

    tsdf float ``[B, X, Y, Z]``; known bool ``[B, X, Y, Z]``; occ_thresh in voxels.
    """

    def __init__(self, tsdf: torch.Tensor, known: torch.Tensor, occ_thresh: float = 1.0) -> None:
        if tsdf.dim() != 4 or known.shape != tsdf.shape or known.dtype != torch.bool:
            raise ValueError(f"tsdf must be float [B, X, Y, Z] and known bool of the same shape, got "
                             f"{tuple(tsdf.shape)} {tsdf.dtype} and {tuple(known.shape)} {known.dtype}")
        self.tsdf = tsdf.float()
        self.known = known
        self.occ_thresh = float(occ_thresh)
        self._occ: Dict[int, torch.Tensor] = {1: known & (self.tsdf.abs() < self.occ_thresh)}
        self._valid: Dict[int, torch.Tensor] = {1: known}

    @property
    def shape(self) -> Tuple[int, int, int]:
        return tuple(self.tsdf.shape[1:])  # type: ignore[return-value]

    def _pooled(self, table: Dict[int, torch.Tensor], stride: int) -> torch.Tensor:
        if stride not in table:
            v = table[1].float()[:, None]
            pad = [(-s) % stride for s in self.shape]
            v = F.pad(v, (0, pad[2], 0, pad[1], 0, pad[0]))
            table[stride] = F.max_pool3d(v, stride, stride)[:, 0] > 0
        return table[stride]

    def _gather(self, vol: torch.Tensor, coords: torch.Tensor, fill) -> Tuple[torch.Tensor, torch.Tensor]:
        c = coords.long().to(vol.device)
        hi = torch.tensor(vol.shape[1:], device=vol.device)
        inside = ((c[:, 1:] >= 0) & (c[:, 1:] < hi)).all(1) & (c[:, 0] < vol.shape[0])
        out = torch.full((len(c),), fill, dtype=vol.dtype, device=vol.device)
        ci = c[inside]
        out[inside] = vol[ci[:, 0], ci[:, 1], ci[:, 2], ci[:, 3]]
        return out, inside

    def occupancy(self, coords: torch.Tensor, stride: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """coords int32 ``[N, 4]`` at ``stride`` -> (occupied bool ``[N]``, valid bool ``[N]``)."""
        occ, _ = self._gather(self._pooled(self._occ, stride), coords, False)
        valid, _ = self._gather(self._pooled(self._valid, stride), coords, False)
        return occ, valid

    def occupied(self, coords: torch.Tensor, stride: int) -> torch.Tensor:
        """The model's ``target_fn``: occupied bool ``[N]``."""
        return self.occupancy(coords, stride)[0]

    def distance(self, coords: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Finest coords ``[N, 4]`` -> (tsdf ``[N]``, valid bool ``[N]``)."""
        d, _ = self._gather(self.tsdf, coords, 0.0)
        valid, _ = self._gather(self.known, coords, False)
        return d, valid


def log_transform(d: torch.Tensor) -> torch.Tensor:
    """sign(d) * log(|d| + 1): SG-NN's distance transform for the L1 loss."""
    return torch.sign(d) * torch.log1p(d.abs())


@dataclass
class LossWeights:
    occupancy: float = 1.0
    distance: float = 1.0
    log_l1: bool = True


def completion_loss(out: CompletionOutput, target: CompletionTarget,
                    weights: LossWeights = LossWeights()) -> Tuple[torch.Tensor, Dict[str, float]]:
    """Occupancy BCE per level (mean over valid voxels) + (log-)L1 on the finest distances.
    Returns (scalar loss, {name: float} for logging)."""
    total = out.logits[0].new_zeros(())
    logs: Dict[str, float] = {}
    for lvl, (x, logit) in enumerate(zip(out.levels, out.logits)):
        occ, valid = target.occupancy(x.coords, x.stride)
        if valid.any():
            bce = F.binary_cross_entropy_with_logits(logit[valid], occ[valid].float())
        else:
            bce = logit.sum() * 0.0
        total = total + weights.occupancy * bce
        logs[f"bce_s{x.stride}"] = float(bce.detach())
    finest = out.levels[-1]
    d, valid = target.distance(finest.coords)
    if valid.any() and out.tsdf_all is not None:
        p, t = out.tsdf_all[valid], d[valid]  # target already truncated to +-trunc
        l1 = (log_transform(p) - log_transform(t)).abs().mean() if weights.log_l1 else (p - t).abs().mean()
    else:
        l1 = out.tsdf_all.sum() * 0.0 if out.tsdf_all is not None else total * 0.0
    total = total + weights.distance * l1
    logs["l1"] = float(l1.detach())
    logs["loss"] = float(total.detach())
    return total, logs


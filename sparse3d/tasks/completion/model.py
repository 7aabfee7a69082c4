"""Coarse-to-fine sparse generative scene completion (in the spirit of SG-NN / ScanComplete).

Input: a sparse TSDF ``x`` at stride 1 with feats ``[N, 2]`` = (tsdf / trunc, known), where
known = 1 for observed near-surface voxels and 0 for the unobserved frontier voxels next to them.

    encoder   stride 1 -> 2 -> ... -> 2**(L-1)   (strided sparse convs, skip features kept)
    coarse    with ``coarse_dense`` the coarsest level holds every voxel inside ``bounds``
              (so fully unseen walls and floors can be predicted); it then grows by ``grow_steps``
              rings (generative k3 s1 transposed convs: context), predicts occupancy, prunes
    levels    generative k2 s2 transposed conv creates the 8 children of every kept voxel,
              concatenate the encoder skip features, predict occupancy, prune
    finest    occupancy + truncated signed distance (voxel units, in [-trunc, trunc]); the distance
              head also sees the raw input (tsdf / trunc, known) at each voxel it has, so observed
              distances need not be re-learned through the encoder-decoder
    octree    with ``decoder: octree`` the levels below the coarsest generate an octree instead (OGN / O-CNN:
              only the octants classified split get children; sparse3d/tasks/completion/octree_decoder.py)
    groups    with ``groups`` > 1 the ``group_levels`` finest levels decide their occupancy in
              interleaved groups (8 parity classes or a 2-class checkerboard), each group's head seeing
              the occupancy already decided for the earlier groups around it (ScanComplete's dependent
              predictions; sparse3d/tasks/completion/dependent.py); 1 = all voxels of a level at once

Fully convolutional: train on crops, predict whole scenes. During training, ``keep`` at each
level is ``predicted | target`` (given by ``target_fn``) so finer levels always see the true
surface, and grouped levels condition on the true occupancy of earlier groups (teacher forcing);
at inference only the prediction decides.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import nn

import sparse3d.nn as snn
from sparse3d import ops
from sparse3d.tasks.completion.dependent import GROUP_CHOICES, GroupedOccupancy
from sparse3d.tasks.completion.octree_decoder import OctreeDecoder
from sparse3d.tensor import SparseTensor, require_sparse_tensor

# target_fn(coords int32 [N, 4], stride) -> bool [N]: true occupancy at that level.
TargetFn = Callable[[torch.Tensor, int], torch.Tensor]
DECODERS = ("sparse", "octree")


@dataclass
class CompletionConfig:
    """Network hyper-parameters (all documented in configs/completion_default.yaml)."""

    in_channels: int = 2
    channels: Tuple[int, ...] = (16, 32, 64)  # per level, finest first; len = number of levels
    grow_steps: int = 3  # rings added at the coarsest level (each ring = 2**(L-1) fine voxels)
    blocks: int = 1  # submanifold conv blocks per level (encoder and decoder)
    coarse_dense: bool = False  # coarsest level covers every voxel inside ``bounds`` (SG-NN style)
    trunc: float = 3.0  # truncation (voxels) of the regressed distance
    groups: int = 1  # 1: a level's voxels at once; 8 (parity classes) or 2 (checkerboard): dependent groups
    group_levels: int = 1  # with groups > 1: this many of the finest levels predict in groups (1 = the finest)
    group_channels: int = 8  # with groups > 1: channels of the context conv over the decided occupancy
    group_sampling: float = 0.0  # training: fraction of earlier-group voxels given the model's own decision
    decoder: str = "sparse"  # "sparse": generative transposed convs + pruning; "octree": octree generation
    # metres per voxel of the training data (set from the checkpoint by load_model; None = not recorded).
    # Not a network parameter: prediction checks that a sample's voxel size matches it.
    voxel_size: Optional[float] = None

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        if len(self.channels) < 1 or any(c < 1 for c in self.channels):
            raise ValueError(f"channels must be a non-empty list of ints >= 1, got {list(self.channels)}")
        if self.grow_steps < 0:
            raise ValueError(f"grow_steps must be >= 0, got {self.grow_steps}")
        if self.trunc <= 0:
            raise ValueError(f"trunc must be > 0 voxels, got {self.trunc}")
        if self.groups not in GROUP_CHOICES:
            raise ValueError(f"groups must be one of {list(GROUP_CHOICES)}, got {self.groups!r}")
        if not 1 <= self.group_levels <= len(self.channels):
            raise ValueError(f"group_levels must be in [1, {len(self.channels)}] (the number of levels), "
                             f"got {self.group_levels}")
        if self.group_channels < 1:
            raise ValueError(f"group_channels must be >= 1, got {self.group_channels}")
        if not 0.0 <= self.group_sampling <= 1.0:
            raise ValueError(f"group_sampling must be in [0, 1], got {self.group_sampling!r}")
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {list(DECODERS)}, got {self.decoder!r}")
        if self.decoder == "octree" and self.groups > 1:
            raise ValueError(f"groups={self.groups} (dependent predictions) needs decoder 'sparse'; the octree "
                             "decoder decides a level's octants at once")
        if self.voxel_size is not None and not self.voxel_size > 0:
            raise ValueError(f"voxel_size must be > 0 metres or None, got {self.voxel_size}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d


@dataclass
class CompletionOutput:
    """Per level (coarse -> fine): the voxels scored and their occupancy logits ``[N_l]``;
    ``surface``: finest voxels kept, feats ``[M, 1]`` = predicted tsdf (voxel units);
    ``tsdf_all``: predicted tsdf ``[N_finest]`` at every finest scored voxel."""

    levels: List[SparseTensor] = field(default_factory=list)
    logits: List[torch.Tensor] = field(default_factory=list)
    strides: List[int] = field(default_factory=list)
    tsdf_all: Optional[torch.Tensor] = None
    surface: Optional[SparseTensor] = None


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(snn.SubMConv3d(c_in, c_out, 3), snn.BatchNorm(c_out), snn.ReLU())


def _in_bounds(x: SparseTensor, bounds: Optional[Sequence[int]]) -> torch.Tensor:
    """bool [N]: voxel lies inside [0, bounds / stride) (all True without bounds)."""
    if bounds is None:
        return torch.ones(len(x), dtype=torch.bool, device=x.device)
    s = x.stride
    hi = torch.tensor([(int(b) + s - 1) // s for b in bounds], device=x.device)
    xyz = x.coords[:, 1:].long()
    return ((xyz >= 0) & (xyz < hi)).all(1)


def _dense_grid(x: SparseTensor, bounds: Sequence[int], batch_size: int) -> SparseTensor:
    """Zero features at every voxel of ``[0, bounds / stride)`` for each batch item (x's stride)."""
    s = x.stride
    r = [torch.arange((int(b) + s - 1) // s, device=x.device) for b in bounds]
    g = torch.stack(torch.meshgrid(*r, indexing="ij"), -1).reshape(-1, 3)
    c = torch.cat([torch.cat([torch.full((len(g), 1), b, device=x.device, dtype=g.dtype), g], 1)
                   for b in range(max(batch_size, 1))]).int()
    return SparseTensor(c, x.feats.new_zeros((len(c), x.num_channels)), stride=s)


class CompletionNet(nn.Module):
    """``net(x, bounds=None, target_fn=None) -> CompletionOutput``; see the module docstring."""

    def __init__(self, config: Optional[CompletionConfig] = None) -> None:
        super().__init__()
        cfg = config or CompletionConfig()
        self.config = cfg
        ch = cfg.channels
        L = len(ch)
        self.stem = _block(cfg.in_channels, ch[0])
        self.enc = nn.ModuleList([nn.Sequential(*[_block(ch[0], ch[0]) for _ in range(cfg.blocks)])])
        self.down = nn.ModuleList()
        for i in range(1, L):
            self.down.append(nn.Sequential(snn.Conv3d(ch[i - 1], ch[i], 2, stride=2), snn.BatchNorm(ch[i]), snn.ReLU()))
            self.enc.append(nn.Sequential(*[_block(ch[i], ch[i]) for _ in range(cfg.blocks)]))
        top = ch[-1]
        self.octree: Optional[nn.Module] = None
        self.grow = nn.ModuleList([nn.Sequential(snn.GenerativeConvTranspose3d(top, top, 3, stride=1),
                                                 snn.BatchNorm(top), snn.ReLU()) for _ in range(cfg.grow_steps)])
        self.coarse = nn.Sequential(*[_block(top, top) for _ in range(cfg.blocks)])
        self.dependent = nn.ModuleDict()
        if cfg.decoder == "octree":
            self.octree = OctreeDecoder(cfg)
            return
        self.up = nn.ModuleList()
        self.fuse = nn.ModuleList()
        self.occ = nn.ModuleList([snn.Linear(top, 1)])
        for i in range(L - 2, -1, -1):  # from the second coarsest to the finest
            self.up.append(nn.Sequential(snn.GenerativeConvTranspose3d(ch[i + 1], ch[i], 2, stride=2),
                                         snn.BatchNorm(ch[i]), snn.ReLU()))
            self.fuse.append(nn.Sequential(_block(2 * ch[i], ch[i]),
                                           *[_block(ch[i], ch[i]) for _ in range(cfg.blocks)]))
            self.occ.append(snn.Linear(ch[i], 1))
        self.sdf = snn.Linear(ch[0] + cfg.in_channels, 1)  # finest features + the raw input where it exists
        # dependent groups: level index (coarse -> fine, as in forward) -> its grouped head
        if cfg.groups > 1:
            for lvl in range(L - cfg.group_levels, L):
                self.dependent[str(lvl)] = GroupedOccupancy(ch[L - 1 - lvl], cfg.groups, cfg.group_channels,
                                                            cfg.group_sampling)

    @property
    def num_levels(self) -> int:
        return len(self.config.channels)

    def forward(self, x: SparseTensor, bounds: Optional[Sequence[int]] = None,
                target_fn: Optional[TargetFn] = None) -> CompletionOutput:
        """x: stride-1 SparseTensor, feats ``[N, in_channels]``; bounds: (X, Y, Z) of the volume
        (voxels generated outside ``[0, bounds)`` are dropped; required with ``coarse_dense``);
        target_fn: see the module docstring."""
        require_sparse_tensor(x, "x")
        if x.stride != 1 or x.num_channels != self.config.in_channels:
            raise ValueError(f"x must have stride 1 and {self.config.in_channels} channels, "
                             f"got stride {x.stride} and {x.num_channels} channels")
        if self.config.coarse_dense and bounds is None:
            raise ValueError("coarse_dense=True needs bounds=(X, Y, Z): the dense coarsest level covers every "
                             "voxel inside bounds; got bounds=None")
        out = CompletionOutput()
        h = self.enc[0](self.stem(x))
        skips = [h]
        for down, enc in zip(self.down, self.enc[1:]):
            h = enc(down(h))
            skips.append(h)
        if self.config.coarse_dense:
            h = ops.add(h, _dense_grid(h, bounds, x.batch_size))
        for g in self.grow:
            h = g(h)
            h = ops.prune(h, _in_bounds(h, bounds))
        h = self.coarse(h)
        if self.octree is not None:
            out = self.octree(h, skips, x, bounds, target_fn)
            assert isinstance(out, CompletionOutput)
            return out
        for lvl in range(self.num_levels):
            if lvl > 0:
                h = self.up[lvl - 1](h)
                h = ops.prune(h, _in_bounds(h, bounds))
                skip_feats, _ = ops.align(skips[-1 - lvl], h)
                h = self.fuse[lvl - 1](h.replace(torch.cat([h.feats, skip_feats], 1)))
            if str(lvl) in self.dependent:
                target = target_fn(h.coords, h.stride).to(h.device) if target_fn is not None else None
                h, logit = self.dependent[str(lvl)](h, self.occ[lvl].module, target)
            else:
                logit = self.occ[lvl](h).feats[:, 0]
            out.levels.append(h)
            out.logits.append(logit)
            out.strides.append(h.stride)
            last = lvl == self.num_levels - 1
            if last:
                raw, _ = ops.align(x, h)  # the input's (tsdf / trunc, known) at h's voxels, 0 where unobserved
                d = self.sdf(h.replace(torch.cat([h.feats, raw], 1))).feats[:, 0]
                out.tsdf_all = torch.tanh(d) * self.config.trunc
            keep = logit > 0
            if target_fn is not None and not last:
                keep = keep | target_fn(h.coords, h.stride).to(keep.device)
            if last:
                kept = ops.prune(h, keep)
                out.surface = kept.replace(out.tsdf_all[keep][:, None])
            else:
                h = ops.prune(h, keep)
        return out

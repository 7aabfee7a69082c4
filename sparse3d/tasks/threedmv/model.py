"""The joint 3DMV network: the segmentation U-Net (sparse3d.tasks.segmentation.model.SegmentationUNet, its
blocks unchanged) over the voxels, whose input is the geometry features concatenated with the 2D features
lifted from k views (`sparse3d.ops.backproject`, max-pooled over the views), giving per-voxel ScanNet-20 logits.

    net = ThreeDMVNet(cfg.model)
    feats2d = net.features_2d(images)                    # [V, C2, H/4, W/4] (no grad when the 2D net is fixed)
    lifted, n_views = lift_features(feats2d, items)      # sparse3d.tasks.threedmv.data
    logits = net(x_geometry, lifted)                     # SparseTensor [N, 20] on x's voxels

``fix_2d``: the 2D net's weights get no gradient and it runs without autograd; in both modes its BatchNorm
uses the pre-trained running statistics (eval mode: a batch of a few frames is too small to normalise by).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from sparse3d.tasks.segmentation.model import SegmentationUNet
from sparse3d.tasks.threedmv.config import ThreeDMVModelConfig
from sparse3d.tasks.threedmv.net2d import Net2D
from sparse3d.tensor import SparseTensor, require_sparse_tensor


class ThreeDMVNet(nn.Module):
    """``net(x, lifted) -> SparseTensor`` of logits ``[N, num_classes]`` on x's voxels.

    x: stride-1 SparseTensor of the geometry features ``[N, F]`` (segmentation ``sample_features`` of
    ``cfg.geometry()``); lifted: ``[N, feat2d_channels]`` back-projected 2D features (None when
    ``cfg.use_2d`` is False)."""

    def __init__(self, cfg: Optional[ThreeDMVModelConfig] = None, fix_2d: bool = True) -> None:
        super().__init__()
        cfg = cfg or ThreeDMVModelConfig()
        if not isinstance(cfg, ThreeDMVModelConfig):
            raise TypeError(f"cfg must be a ThreeDMVModelConfig, got {type(cfg).__name__}")
        self.config = cfg
        self.fix_2d = bool(fix_2d)
        self.unet = SegmentationUNet(cfg.unet())
        self.net2d: Optional[Net2D] = Net2D(cfg.net2d()) if cfg.use_2d else None
        if self.net2d is not None and self.fix_2d:
            self.net2d.requires_grad_(False)

    def train(self, mode: bool = True) -> "ThreeDMVNet":
        super().train(mode)
        if self.net2d is not None:
            self.net2d.eval()
        return self

    def features_2d(self, images: torch.Tensor) -> torch.Tensor:
        """[V, feat2d_channels, H/4, W/4] features of images float [V, 3, H, W] (`net2d.image_input`)."""
        if self.net2d is None:
            raise ValueError("this network has no 2D stream (model.use_2d is False)")
        if self.fix_2d:
            with torch.no_grad():
                return self.net2d(images)[1]
        return self.net2d(images)[1]

    def forward(self, x: SparseTensor, lifted: Optional[torch.Tensor] = None) -> SparseTensor:
        require_sparse_tensor(x, "x")
        n_geo = self.config.geometry().in_channels
        if x.num_channels != n_geo:
            raise ValueError(f"x must have the {n_geo} geometry channels of {list(self.config.in_features)}, "
                             f"got {x.num_channels}")
        if self.net2d is None:
            if lifted is not None:
                raise ValueError("lifted must be None for a network without a 2D stream (model.use_2d False)")
            return self.unet(x)
        c2 = self.config.feat2d_channels
        if lifted is None or tuple(lifted.shape) != (len(x.feats), c2):
            raise ValueError(f"lifted must be [N, {c2}] = [{len(x.feats)}, {c2}] back-projected features, got "
                             f"{None if lifted is None else tuple(lifted.shape)}")
        return self.unet(x.replace(torch.cat([x.feats, lifted.to(x.feats.dtype)], 1)))

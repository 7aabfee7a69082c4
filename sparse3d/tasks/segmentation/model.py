"""The segmentation network: a sparse residual U-Net (MinkUNet / SparseConvNet style) giving per-voxel
ScanNet-20 logits on the input's own voxels (fully convolutional: train on boxes, predict whole scenes).

    stem      submanifold k3 conv in_channels -> widths[0], BatchNorm, ReLU
    encoder   level 0: ``blocks`` residual blocks; level l >= 1: k2 s2 conv (down, BatchNorm, ReLU) then
              ``blocks`` residual blocks at widths[l]
    decoder   from the coarsest level up: k2 s2 transposed conv onto the encoder's coordinates of the finer
              level (BatchNorm, ReLU), concatenated with that level's encoder features (skip), ``blocks``
              residual blocks (the first maps 2 * widths[l] -> widths[l])
    head      per-voxel linear widths[0] -> num_classes

A residual block is ``relu(bn(conv3(relu(bn(conv3(x))))) + shortcut(x))`` with submanifold k3 convs and a
linear + BatchNorm shortcut when the channels change. Every "BatchNorm" is ``sparse3d.nn.SampleNorm`` instead
when the config's ``norm`` is "sample". Every conv takes the backend given to
``sparse3d.nn.set_backend`` (native, spconv, torch): the weights are the same on each.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, List, Optional, Union

import numpy as np
import torch
from torch import nn

import sparse3d.nn as snn
from sparse3d.backends import Backend
from sparse3d.tasks.segmentation.config import SegmentationModelConfig
from sparse3d.utils.test_time_views import tta_views, view_transform
from sparse3d.tensor import SparseTensor, require_sparse_tensor

if TYPE_CHECKING:
    from sparse3d.tasks.segmentation.sample import SegSample


def norm_layer(channels: int, norm: str = "batch") -> nn.Module:
    """The normalisation of ``channels`` features named by ``SegmentationModelConfig.norm``."""
    if norm == "batch":
        return snn.BatchNorm(channels)
    if norm == "sample":
        return snn.SampleNorm(channels)
    raise ValueError(f"norm must be 'batch' or 'sample', got {norm!r}")


class ResidualBlock(nn.Module):
    """Two submanifold k3 convs with normalisation (``norm``: see :func:`norm_layer`) + ReLU and a (projected)
    identity shortcut; feats ``[N, c_in] -> [N, c_out]`` on the same voxels."""

    def __init__(self, c_in: int, c_out: int, norm: str = "batch") -> None:
        super().__init__()
        self.conv1 = snn.SubMConv3d(c_in, c_out, 3, bias=False)
        self.bn1 = norm_layer(c_out, norm)
        self.conv2 = snn.SubMConv3d(c_out, c_out, 3, bias=False)
        self.bn2 = norm_layer(c_out, norm)
        self.relu = snn.ReLU()
        self.shortcut: Optional[nn.Sequential] = None
        if c_in != c_out:
            self.shortcut = nn.Sequential(snn.Linear(c_in, c_out, bias=False), norm_layer(c_out, norm))

    def forward(self, x: SparseTensor) -> SparseTensor:
        h = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        s = x if self.shortcut is None else self.shortcut(x)
        return self.relu(h.replace(h.feats + s.feats))


def _stage(c_in: int, c_out: int, blocks: int, norm: str = "batch") -> nn.Sequential:
    return nn.Sequential(ResidualBlock(c_in, c_out, norm), *[ResidualBlock(c_out, c_out, norm)
                                                             for _ in range(blocks - 1)])


class SegmentationUNet(nn.Module):
    """``net(x) -> SparseTensor`` of logits ``[N, num_classes]`` on x's coordinates (same order).

    x: stride-1 SparseTensor, feats ``[N, cfg.in_channels]``
    (:func:`sparse3d.tasks.segmentation.dataset.sample_features`); see the module docstring."""

    def __init__(self, cfg: Optional[SegmentationModelConfig] = None) -> None:
        super().__init__()
        cfg = cfg or SegmentationModelConfig()
        if not isinstance(cfg, SegmentationModelConfig):
            raise TypeError(f"cfg must be a SegmentationModelConfig, got {type(cfg).__name__}")
        self.config = cfg
        w, norm = cfg.widths, cfg.norm
        self.stem = nn.Sequential(snn.SubMConv3d(cfg.in_channels, w[0], 3, bias=False), norm_layer(w[0], norm),
                                  snn.ReLU())
        self.enc = nn.ModuleList([_stage(w[0], w[0], cfg.blocks, norm)])
        self.down = nn.ModuleList()
        for i in range(1, len(w)):
            self.down.append(nn.Sequential(snn.Conv3d(w[i - 1], w[i], 2, stride=2, bias=False),
                                           norm_layer(w[i], norm), snn.ReLU()))
            self.enc.append(_stage(w[i], w[i], cfg.blocks, norm))
        self.up = nn.ModuleList()
        self.up_norm = nn.ModuleList()
        self.dec = nn.ModuleList()
        for i in range(len(w) - 2, -1, -1):  # second coarsest -> finest
            self.up.append(snn.ConvTranspose3d(w[i + 1], w[i], 2, stride=2, bias=False))
            self.up_norm.append(nn.Sequential(norm_layer(w[i], norm), snn.ReLU()))
            self.dec.append(_stage(2 * w[i], w[i], cfg.blocks, norm))
        self.head = snn.Linear(w[0], cfg.num_classes)

    def forward(self, x: SparseTensor) -> SparseTensor:
        require_sparse_tensor(x, "x")
        if x.stride != 1 or x.num_channels != self.config.in_channels:
            raise ValueError(f"x must have stride 1 and {self.config.in_channels} channels "
                             f"(in_features {list(self.config.in_features)}), got stride {x.stride} and "
                             f"{x.num_channels} channels")
        h = self.enc[0](self.stem(x))
        skips: List[SparseTensor] = [h]
        for down, enc in zip(self.down, self.enc[1:]):
            h = enc(down(h))
            skips.append(h)
        for j, (up, norm, dec) in enumerate(zip(self.up, self.up_norm, self.dec)):
            skip = skips[-2 - j]
            h = norm(up(h, target=skip))
            h = dec(h.replace(torch.cat([h.feats, skip.feats], 1)))
        return self.head(h)


def predict_logits(model: SegmentationUNet, sample: "SegSample", cfg: Optional[SegmentationModelConfig] = None,
                   backend: Union[str, Backend, None] = None, tta: int = 1,
                   feats: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Class probabilities float32 ``[N, num_classes]`` (softmax of the logits, averaged over ``tta`` test-time
    views of :func:`tta_views`: the scene turned, flipped and shifted, each voxel's probabilities brought back to
    it) of every voxel of ``sample`` in its voxel order, on the model's device. ``cfg``: the model's config
    (default ``model.config``); ``backend``: run on this backend for this call (restored afterwards; None = as
    the model is set); ``feats``: the input features float ``[N, cfg.in_channels]`` (default
    ``sample_features(sample, cfg)``; columns past the ``in_features`` groups, such as 3DMV's lifted 2D features,
    stay with their voxels unchanged). Eval mode, no gradients; the model's train/eval mode is restored."""
    from sparse3d.tasks.segmentation.dataset import check_voxel_size, feature_slices, sample_features

    cfg = cfg or model.config
    views = tta_views(tta)
    check_voxel_size(sample, cfg)
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    if len(sample) == 0:
        return torch.zeros(0, cfg.num_classes, device=device)
    if feats is None:
        feats = sample_features(sample, cfg)
    elif tuple(feats.shape) != (len(sample), cfg.in_channels):
        raise ValueError(f"feats must be [N, F] = [{len(sample)}, {cfg.in_channels}] input features of the sample's "
                         f"voxels, got {tuple(feats.shape)}")
    feats = feats.detach().cpu().numpy().astype(np.float32, copy=False)
    nsl = feature_slices(cfg).get("normals")
    convs = [m for m in model.modules() if isinstance(m, (snn.Conv3d, snn.ConvTranspose3d))]
    saved = [m.backend for m in convs]
    was_training = model.training
    total = None
    try:
        if backend is not None:
            snn.set_backend(model, backend)
        model.eval()
        with torch.no_grad():
            for turns, flip, shift in views:
                q, nrm = view_transform(sample.coords, None if nsl is None else feats[:, nsl], turns, flip, shift)
                f = feats.copy()
                if nsl is not None:
                    f[:, nsl] = nrm
                c = torch.cat([torch.zeros(len(q), 1, dtype=torch.int32), torch.from_numpy(q)], 1).to(device)
                x = SparseTensor(c, torch.from_numpy(f).to(device=device, dtype=dtype))
                p = torch.softmax(model(x).feats.float(), 1)
                total = p if total is None else total + p
    finally:
        for m, b in zip(convs, saved):
            m.backend = b
        model.train(was_training)
    return total / len(views)


def predict_labels(model: SegmentationUNet, sample: "SegSample", cfg: Optional[SegmentationModelConfig] = None,
                   backend: Union[str, Backend, None] = None, tta: int = 1) -> np.ndarray:
    """ScanNet-20 class (argmax of :func:`predict_logits`'s probabilities, ``tta`` test-time views) of every voxel
    of ``sample`` (a SegSample): np.uint8 ``[N]`` in 0..num_classes-1, in the sample's voxel order. ``cfg``,
    ``backend``: as :func:`predict_logits`. The model's train/eval mode and backend are restored."""
    return predict_logits(model, sample, cfg, backend, tta).argmax(1).to(torch.uint8).cpu().numpy()

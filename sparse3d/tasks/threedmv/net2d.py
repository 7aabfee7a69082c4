"""The 2D network of 3DMV: a small encoder-decoder over RGB frames giving per-pixel ScanNet-20 logits and a
feature map at 1/4 of the input resolution (the features that are back-projected into the voxels).

    enc1  3x3 s2 conv 3 -> w0, BN, ReLU, 3x3 conv w0 -> w0, BN, ReLU                      1/2
    enc2  3x3 s2 conv w0 -> w1, BN, ReLU, 3x3 conv w1 -> w1, BN, ReLU                     1/4
    enc3  3x3 s2 conv w1 -> w2, BN, ReLU, 3x3 conv w2 -> w2, BN, ReLU (dilation 2)        1/8
    dec   bilinear x2 of enc3, concatenated with enc2, 3x3 conv -> feat_channels, BN, ReLU   1/4 (the features)
    head  1x1 conv feat_channels -> num_classes                                            1/4 (the logits)

Input: images float [V, 3, H, W] = RGB / 255 - 0.5 (:func:`image_input`), H and W multiples of 8.
Per-pixel training (:func:`pixel_loss`): the logits bilinearly upsampled to H x W against the label images.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

IGNORE = 255


@dataclass
class Net2DConfig:
    """widths: channels of the three encoder levels; feat_channels: C of the 1/4 feature map; num_classes."""

    widths: Tuple[int, int, int] = (16, 32, 64)
    feat_channels: int = 32
    num_classes: int = 20

    def __post_init__(self) -> None:
        try:
            self.widths = tuple(int(w) for w in self.widths)  # type: ignore[assignment]
        except (TypeError, ValueError):
            raise ValueError(f"widths must be 3 ints >= 1, got {self.widths!r}") from None
        if len(self.widths) != 3 or min(self.widths) < 1:
            raise ValueError(f"widths must be 3 ints >= 1, got {list(self.widths)}")
        for name in ("feat_channels", "num_classes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d


def _conv(c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class Net2D(nn.Module):
    """``net(images) -> (logits [V, num_classes, H/4, W/4], feats [V, feat_channels, H/4, W/4])``
    for images float ``[V, 3, H, W]`` (H, W multiples of 8); see the module docstring."""

    def __init__(self, cfg: Optional[Net2DConfig] = None) -> None:
        super().__init__()
        cfg = cfg or Net2DConfig()
        if not isinstance(cfg, Net2DConfig):
            raise TypeError(f"cfg must be a Net2DConfig, got {type(cfg).__name__}")
        self.config = cfg
        w0, w1, w2 = cfg.widths
        self.enc1 = nn.Sequential(_conv(3, w0, 2), _conv(w0, w0))
        self.enc2 = nn.Sequential(_conv(w0, w1, 2), _conv(w1, w1))
        self.enc3 = nn.Sequential(_conv(w1, w2, 2), _conv(w2, w2, dilation=2))
        self.dec = _conv(w2 + w1, cfg.feat_channels)
        self.head = nn.Conv2d(cfg.feat_channels, cfg.num_classes, 1)

    def forward(self, images: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [V, 3, H, W], got {tuple(images.shape)}")
        if images.shape[2] % 8 or images.shape[3] % 8:
            raise ValueError(f"images: H and W must be multiples of 8, got {images.shape[2]} x {images.shape[3]}")
        e2 = self.enc2(self.enc1(images))
        e3 = self.enc3(e2)
        up = F.interpolate(e3, size=e2.shape[2:], mode="bilinear", align_corners=False)
        feats = self.dec(torch.cat([up, e2], 1))
        return self.head(feats), feats


def image_input(color: np.ndarray) -> torch.Tensor:
    """float32 [V, 3, H, W] = RGB / 255 - 0.5 of colour frames uint8 [V, H, W, 3]."""
    c = np.asarray(color)
    if c.ndim != 4 or c.shape[3] != 3:
        raise ValueError(f"color must be uint8 [V, H, W, 3], got shape {list(c.shape)}")
    return torch.from_numpy(np.ascontiguousarray(c.transpose(0, 3, 1, 2))).float().div_(255.0).sub_(0.5)


def pixel_loss(logits: torch.Tensor, labels: torch.Tensor, weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Cross-entropy of logits [V, K, h, w] (bilinearly upsampled to the labels' size) against labels int64
    [V, H, W] (255 = ignored), weighted by class with ``weights`` float [K] (None = 1); 0 tied to the logits
    when no pixel is labelled."""
    up = F.interpolate(logits, size=labels.shape[1:], mode="bilinear", align_corners=False)
    if not bool((labels != IGNORE).any()):
        return up.sum() * 0.0
    w = None if weights is None else weights.to(device=up.device, dtype=up.dtype)
    return F.cross_entropy(up, labels, weight=w, ignore_index=IGNORE)


def pixel_labels(logits: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """int64 [V, H, W]: the argmax class of logits [V, K, h, w] bilinearly upsampled to size (H, W)."""
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False).argmax(1)

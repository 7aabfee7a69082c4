"""PixelCNN (van den Oord et al. 2016): a stack of masked convolutions, mask A first
and mask B after, a K-way softmax per sub-pixel with R -> G -> B ordering.

The plain stack has a blind spot (pixels up-right of the current one never reach it);
see :mod:`sparse3d.gen2d.gated_pixelcnn` for the fix.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from sparse3d.utils.checks import require_int
from .autoregressive import AutoregressiveImageModel
from .layers import MaskedConv2d


class _ResidualMasked(nn.Module):
    def __init__(self, ch: int, k: int, n_colors: int):
        super().__init__()
        self.conv = MaskedConv2d(ch, ch, k, "B", n_colors)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(torch.relu(x))


class PixelCNN(AutoregressiveImageModel):
    """PixelCNN.

    Args:
        in_channels: image channels C (= number of colour groups).
        n_levels: K, values per sub-pixel (2 for binary, 17 or 256 ...).
        hidden: feature channels (a multiple of in_channels).
        n_layers: number of residual mask-B layers after the first mask-A layer.
        first_kernel, kernel: kernel sizes of the first and later layers.
    forward: x [B, C, H, W] in [-1, 1] -> logits [B, K, C, H, W].
    """

    def __init__(self, in_channels: int = 1, n_levels: int = 256, hidden: int = 64, n_layers: int = 6,
                 first_kernel: int = 7, kernel: int = 3):
        super().__init__()
        for name, v in [("in_channels", in_channels), ("n_levels", n_levels), ("hidden", hidden),
                        ("n_layers", n_layers), ("first_kernel", first_kernel), ("kernel", kernel)]:
            require_int(v, name, low=1)
        if n_levels < 2:
            raise ValueError(f"n_levels: expected >= 2, got {n_levels}")
        if hidden % in_channels:
            raise ValueError(f"hidden: expected a multiple of in_channels={in_channels}, got {hidden}")
        self.in_channels, self.n_levels = in_channels, n_levels
        C = in_channels
        self.inp = MaskedConv2d(C, hidden, first_kernel, "A", C)
        self.body = nn.Sequential(*[_ResidualMasked(hidden, kernel, C) for _ in range(n_layers)])
        self.head = nn.Sequential(nn.ReLU(), MaskedConv2d(hidden, hidden, 1, "B", C), nn.ReLU(),
                                  MaskedConv2d(hidden, n_levels * C, 1, "B", C))

    def logits(self, x: torch.Tensor, cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        if cond is not None:
            raise ValueError("cond: PixelCNN is unconditional, expected None, got a tensor")
        B, C, H, W = x.shape
        out = self.head(self.body(self.inp(x)))
        return out.view(B, self.n_levels, C, H, W)

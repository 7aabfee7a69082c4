"""Shared layers of the gen2d autoregressive models: causal masks with sub-pixel
(R -> G -> B) channel groups, masked 2-D convolutions, gates, shifts, and seeded
categorical sampling.

Channel groups: channel ``c`` of a feature map belongs to colour group ``c % n_colors``.
For the input image (``n_colors`` channels) channel c *is* colour c; for the output
logits, viewed as ``[B, K, n_colors, H, W]``, output channel ``k * n_colors + c`` is
colour c. A masked convolution lets output group g see, at the centre pixel, input
groups < g (mask "A", first layer) or <= g (mask "B", later layers), every pixel in
the rows above and every pixel to the left in the current row, and nothing else.
"""
from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._checks import check_tensor
from sparse3d.utils.checks import require_choice, require_int

IntPair = Union[int, Tuple[int, int]]


def _pair(name: str, v: IntPair) -> Tuple[int, int]:
    if isinstance(v, int) and not isinstance(v, bool):
        return (require_int(v, name, low=1), v)
    if isinstance(v, tuple) and len(v) == 2:
        return (require_int(v[0], name, low=1), require_int(v[1], name, low=1))
    raise TypeError(f"{name}: expected an int or a pair of ints, got {v!r}")


def causal_mask(out_channels: int, in_channels: int, kernel_size: IntPair, mask_type: str,
                n_colors: int = 1, center: Optional[Tuple[int, int]] = None) -> torch.Tensor:
    """Raster-scan + sub-pixel causal mask for a conv weight.

    Args:
        out_channels, in_channels: conv channels (group of channel c is ``c % n_colors``).
        kernel_size: (kh, kw) or k.
        mask_type: "A" (centre: strictly earlier colours) or "B" (centre: same or earlier).
        n_colors: number of colour groups (3 for RGB, 1 for grey).
        center: kernel position of the current pixel; default (kh // 2, kw // 2).
    Returns:
        float mask [out_channels, in_channels, kh, kw] of 0/1.
    """
    kh, kw = _pair("kernel_size", kernel_size)
    require_int(out_channels, "out_channels", low=1)
    require_int(in_channels, "in_channels", low=1)
    require_int(n_colors, "n_colors", low=1)
    require_choice(mask_type, "mask_type", ("A", "B"))
    ci, cj = center if center is not None else (kh // 2, kw // 2)
    if not (0 <= ci < kh and 0 <= cj < kw):
        raise ValueError(f"center: expected a position inside the {kh}x{kw} kernel, got {center}")
    mask = torch.zeros(out_channels, in_channels, kh, kw)
    mask[:, :, :ci, :] = 1.0
    mask[:, :, ci, :cj] = 1.0
    g_out = torch.arange(out_channels) % n_colors
    g_in = torch.arange(in_channels) % n_colors
    if mask_type == "A":
        allowed = g_out[:, None] > g_in[None, :]
    else:
        allowed = g_out[:, None] >= g_in[None, :]
    mask[:, :, ci, cj] = allowed.float()
    return mask


class MaskedConv2d(nn.Module):
    """2-D convolution whose weight is multiplied by :func:`causal_mask`.

    Output has the same H, W as the input ("same" padding placed so that kernel
    position ``center`` sits on the output pixel).

    forward: x [B, in_channels, H, W] -> [B, out_channels, H, W]
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair, mask_type: str,
                 n_colors: int = 1, center: Optional[Tuple[int, int]] = None, bias: bool = True):
        super().__init__()
        kh, kw = _pair("kernel_size", kernel_size)
        mask = causal_mask(out_channels, in_channels, (kh, kw), mask_type, n_colors, center)
        ci, cj = center if center is not None else (kh // 2, kw // 2)
        self.padding = (cj, kw - 1 - cj, ci, kh - 1 - ci)  # left, right, top, bottom
        self.conv = nn.Conv2d(in_channels, out_channels, (kh, kw), bias=bias)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, 4, "float")
        return F.conv2d(F.pad(x, self.padding), self.conv.weight * self.mask, self.conv.bias)


def gate(x: torch.Tensor) -> torch.Tensor:
    """Gated activation tanh(a) * sigmoid(b) with a, b the two channel halves.

    x [B, 2C, ...] -> [B, C, ...]. With C % n_colors == 0, a and b channels of the same
    index share a colour group.
    """
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


def shift_down(x: torch.Tensor, rows: int = 1) -> torch.Tensor:
    """Shift a [B, C, H, W] map down by ``rows`` (zeros enter at the top)."""
    return F.pad(x, (0, 0, rows, 0))[:, :, : x.shape[2], :]


def sample_categorical(logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF sample from softmax(logits) with given uniforms.

    logits [N, K], u [N] in [0, 1) -> int64 [N]. Deterministic given ``u``: two code
    paths that compute the same logits and draw the same uniforms give the same samples.
    """
    check_tensor("logits", logits, 2, "float")
    check_tensor("u", u, 1, "float")
    cdf = torch.softmax(logits.double(), dim=-1).cumsum(-1)
    idx = (cdf < u.double()[:, None]).sum(-1)
    return idx.clamp(max=logits.shape[1] - 1)

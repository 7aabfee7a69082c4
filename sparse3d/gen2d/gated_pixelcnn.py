"""Gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with
PixelCNN Decoders"): vertical and horizontal stacks without blind spot, gated
tanh x sigmoid units, and an optional condition h (a class label or any vector)
that enters every gate of both stacks.

Vertical stack: a (k//2+1) x k convolution whose output at row i sees rows <= i
(all columns within reach); it feeds the horizontal stack only after a one-row shift
down, so the horizontal stack sees strictly earlier rows from it. Horizontal stack:
a 1 x (k//2+1) masked convolution over the current row up to the current pixel (mask A
in the first layer, B after, with R -> G -> B channel groups), plus residual.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._checks import check_tensor
from sparse3d.utils.checks import require_int
from .autoregressive import AutoregressiveImageModel
from .layers import MaskedConv2d, gate, shift_down


class GatedLayer(nn.Module):
    """One gated layer. forward(v [B,Cin,H,W], h [B,Cin,H,W], cond [B,D] or None)
    -> (v [B,ch,H,W], h [B,ch,H,W])."""

    def __init__(self, in_ch: int, ch: int, kernel: int, mask_type: str, n_colors: int,
                 cond_dim: int = 0, residual: bool = True):
        super().__init__()
        kh = kernel // 2 + 1
        self.kernel, self.kh = kernel, kh
        self.v_conv = nn.Conv2d(in_ch, 2 * ch, (kh, kernel))
        self.v_to_h = nn.Conv2d(2 * ch, 2 * ch, 1)
        self.h_conv = MaskedConv2d(in_ch, 2 * ch, (1, kh), mask_type, n_colors, center=(0, kh - 1))
        self.h_out = MaskedConv2d(ch, ch, 1, "B", n_colors)
        self.cond = nn.Linear(cond_dim, 4 * ch, bias=False) if cond_dim else None
        self.residual = residual and in_ch == ch

    def forward(self, v: torch.Tensor, h: torch.Tensor,
                cond: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        k = self.kernel
        v_pre = self.v_conv(F.pad(v, (k // 2, k // 2, self.kh - 1, 0)))  # row i sees rows <= i
        h_pre = self.h_conv(h) + self.v_to_h(shift_down(v_pre))
        if self.cond is not None:
            if cond is None:
                raise ValueError("cond: this layer is conditional, expected a [B, D] tensor, got None")
            cv, ch_ = self.cond(cond)[:, :, None, None].chunk(2, dim=1)
            v_pre, h_pre = v_pre + cv, h_pre + ch_
        v_out = gate(v_pre)
        h_out = self.h_out(gate(h_pre))
        if self.residual:
            h_out = h_out + h
        return v_out, h_out


class GatedPixelCNN(AutoregressiveImageModel):
    """Gated PixelCNN, optionally conditioned on a vector h [B, cond_dim].

    Args:
        in_channels: image channels C; n_levels: K; hidden: channels (multiple of C);
        n_layers: gated layers (the first uses mask A); first_kernel, kernel: kernel sizes;
        cond_dim: 0 for unconditional, else the size of h.
    forward: x [B, C, H, W] in [-1, 1], cond [B, cond_dim] -> logits [B, K, C, H, W].
    """

    def __init__(self, in_channels: int = 1, n_levels: int = 256, hidden: int = 64, n_layers: int = 8,
                 first_kernel: int = 7, kernel: int = 3, cond_dim: int = 0):
        super().__init__()
        for name, v in [("in_channels", in_channels), ("n_levels", n_levels), ("hidden", hidden),
                        ("n_layers", n_layers), ("first_kernel", first_kernel), ("kernel", kernel)]:
            require_int(v, name, low=1)
        if hidden % in_channels:
            raise ValueError(f"hidden: expected a multiple of in_channels={in_channels}, got {hidden}")
        if isinstance(cond_dim, bool) or not isinstance(cond_dim, int) or cond_dim < 0:
            raise ValueError(f"cond_dim: expected an int >= 0, got {cond_dim!r}")
        self.in_channels, self.n_levels, self.cond_dim = in_channels, n_levels, cond_dim
        C = in_channels
        layers = [GatedLayer(C, hidden, first_kernel, "A", C, cond_dim, residual=False)]
        layers += [GatedLayer(hidden, hidden, kernel, "B", C, cond_dim) for _ in range(n_layers - 1)]
        self.layers = nn.ModuleList(layers)
        self.head = nn.Sequential(nn.ReLU(), MaskedConv2d(hidden, hidden, 1, "B", C), nn.ReLU(),
                                  MaskedConv2d(hidden, n_levels * C, 1, "B", C))

    def condition_vector(self, cond: Optional[torch.Tensor], batch: int) -> Optional[torch.Tensor]:
        """Validate ``cond`` and return float [B, cond_dim] (or None when unconditional)."""
        if self.cond_dim == 0:
            if cond is not None:
                raise ValueError("cond: model is unconditional (cond_dim=0), expected None")
            return None
        if cond is None:
            raise ValueError(f"cond: model is conditional, expected [B, {self.cond_dim}], got None")
        check_tensor("cond", cond, 2, "float")
        if cond.shape != (batch, self.cond_dim):
            raise ValueError(f"cond: expected shape ({batch}, {self.cond_dim}), got {tuple(cond.shape)}")
        return cond

    def logits(self, x: torch.Tensor, cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        B, C, H, W = x.shape
        hvec = self.condition_vector(cond, B)
        v, h = x, x
        for layer in self.layers:
            v, h = layer(v, h, hvec)
        return self.head(h).view(B, self.n_levels, C, H, W)


class ClassConditionalGatedPixelCNN(GatedPixelCNN):
    """Gated PixelCNN conditioned on a class label: h = one_hot(label).

    forward: x [B, C, H, W], cond int64 labels [B] in [0, n_classes) -> [B, K, C, H, W].
    """

    def __init__(self, n_classes: int = 10, **kwargs):
        require_int(n_classes, "n_classes", low=1)
        super().__init__(cond_dim=n_classes, **kwargs)
        self.n_classes = n_classes

    def condition_vector(self, cond: Optional[torch.Tensor], batch: int) -> Optional[torch.Tensor]:
        if cond is None:
            raise ValueError(f"cond: expected int labels [B] in [0, {self.n_classes}), got None")
        check_tensor("cond", cond, 1, "int")
        if cond.shape[0] != batch:
            raise ValueError(f"cond: expected {batch} labels, got {cond.shape[0]}")
        if cond.numel() and (int(cond.min()) < 0 or int(cond.max()) >= self.n_classes):
            raise ValueError(f"cond: expected labels in [0, {self.n_classes}), got range "
                             f"[{int(cond.min())}, {int(cond.max())}]")
        return F.one_hot(cond.long(), self.n_classes).float()

"""Common interface of the autoregressive image models (PixelCNN, Gated PixelCNN,
PixelRNN): exact log-likelihood in nats / bits per dim, and batched seeded sampling.

A model maps a normalised image ``x`` [B, C, H, W] (float, levels scaled to [-1, 1])
and an optional condition to logits [B, K, C, H, W]; the logits of sub-pixel (c, i, j)
depend only on sub-pixels before it in raster order with R -> G -> B inside a pixel.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._checks import check_levels, check_tensor
from sparse3d.utils.checks import require_int
from .layers import sample_categorical

LN2 = math.log(2.0)


class AutoregressiveImageModel(nn.Module):
    """Base class. Subclasses set ``in_channels``, ``n_levels`` and implement ``logits``."""

    in_channels: int
    n_levels: int

    def logits(self, x: torch.Tensor, cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x [B, C, H, W] float in [-1, 1] -> logits [B, K, C, H, W]."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        check_tensor("x", x, 4, "float")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"x: expected {self.in_channels} channels, got shape {tuple(x.shape)}")
        return self.logits(x, cond)

    def normalize(self, levels: torch.Tensor) -> torch.Tensor:
        """int levels [B, C, H, W] in [0, K-1] -> float in [-1, 1]."""
        return levels.float() * (2.0 / (self.n_levels - 1)) - 1.0

    def nll(self, levels: torch.Tensor, cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Exact negative log-likelihood in nats per image.

        levels: int [B, C, H, W] in [0, K-1]. Returns float [B].
        """
        check_tensor("levels", levels, 4, "int")
        check_levels("levels", levels, self.n_levels)
        logits = self(self.normalize(levels), cond)
        ce = F.cross_entropy(logits, levels.long(), reduction="none")  # [B, C, H, W]
        return ce.flatten(1).sum(1)

    def bits_per_dim(self, levels: torch.Tensor, cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        """NLL in bits per sub-pixel; levels int [B, C, H, W] -> float [B]."""
        dims = levels[0].numel()
        return self.nll(levels, cond) / (dims * LN2)

    @torch.no_grad()
    def sample(self, n: int, shape: Tuple[int, int], seed: int = 0,
               cond: Optional[torch.Tensor] = None, device: Optional[torch.device] = None) -> torch.Tensor:
        """Draw ``n`` images of size ``shape`` = (H, W) sub-pixel by sub-pixel.

        Seeded: the same seed (and weights) gives the same images. cond: [n] labels or
        [n, D] vectors when the model is conditional. Returns int64 [n, C, H, W].
        """
        require_int(n, "n", low=1)
        H, W = shape
        require_int(H, "shape[0]", low=1)
        require_int(W, "shape[1]", low=1)
        device = device or next(self.parameters()).device
        gen = torch.Generator(device="cpu").manual_seed(seed)
        levels = torch.zeros(n, self.in_channels, H, W, dtype=torch.long, device=device)
        was_training = self.training
        self.eval()
        for i in range(H):
            for j in range(W):
                for c in range(self.in_channels):
                    lg = self(self.normalize(levels), cond)[:, :, c, i, j]
                    u = torch.rand(n, generator=gen).to(device)
                    levels[:, c, i, j] = sample_categorical(lg.float(), u)
        self.train(was_training)
        return levels

"""WaveNet (van den Oord et al. 2016): dilated causal 1-D convolutions, gated residual
blocks with skip connections, a 256-level mu-law softmax output, optional global
conditioning, and cached ("fast WaveNet") generation that gives exactly the samples
of the naive full-forward loop.

Convention: ``logits(x)[:, :, t]`` is the distribution of ``x[:, t]`` given ``x[:, :t]``
(the input is shifted right by one inside the model, with the mu-law code of 0.0 as
the start symbol).
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._checks import check_levels, check_tensor
from sparse3d.utils.checks import require_int
from .layers import sample_categorical

LN2 = math.log(2.0)


def mu_law_encode(x: torch.Tensor, n_levels: int = 256) -> torch.Tensor:
    """float audio [...] in [-1, 1] -> int64 codes [...] in [0, n_levels-1]."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x: expected a floating-point tensor, got {type(x).__name__}")
    mu = n_levels - 1
    x = x.clamp(-1.0, 1.0)
    y = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)
    return ((y + 1) / 2 * mu + 0.5).floor().long().clamp(0, mu)


def mu_law_decode(q: torch.Tensor, n_levels: int = 256) -> torch.Tensor:
    """int codes [...] in [0, n_levels-1] -> float audio [...] in [-1, 1]."""
    mu = n_levels - 1
    y = q.double() * (2.0 / mu) - 1.0
    return (torch.sign(y) * ((1 + mu) ** y.abs() - 1) / mu).float()


class CausalConv1d(nn.Conv1d):
    """Causal dilated conv: output t sees inputs t - (k-1)d .. t. x [B, Cin, T] -> [B, Cout, T]."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 2, dilation: int = 1):
        super().__init__(in_ch, out_ch, kernel_size, dilation=dilation)
        self.receptive = (kernel_size - 1) * dilation + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.receptive - 1, 0)))

    def step(self, buf: torch.Tensor) -> torch.Tensor:
        """Cached path: buf [B, Cin, receptive] holds the last inputs -> [B, Cout, 1]."""
        return F.conv1d(buf, self.weight, self.bias, dilation=self.dilation)


class ResidualBlock(nn.Module):
    """Gated residual block: z = tanh(W_f x + V_f h) * sigmoid(W_g x + V_g h);
    returns (x + W_r z, W_s z)."""

    def __init__(self, res_ch: int, skip_ch: int, dilation: int, kernel_size: int = 2, cond_dim: int = 0):
        super().__init__()
        self.conv = CausalConv1d(res_ch, 2 * res_ch, kernel_size, dilation)
        self.cond = nn.Linear(cond_dim, 2 * res_ch, bias=False) if cond_dim else None
        self.res = nn.Conv1d(res_ch, res_ch, 1)
        self.skip = nn.Conv1d(res_ch, skip_ch, 1)

    def _out(self, pre: torch.Tensor, x: torch.Tensor, h: Optional[torch.Tensor]):
        if self.cond is not None:
            pre = pre + self.cond(h)[:, :, None]
        a, b = pre.chunk(2, dim=1)
        z = torch.tanh(a) * torch.sigmoid(b)
        return x + self.res(z), self.skip(z)

    def forward(self, x: torch.Tensor, h: Optional[torch.Tensor] = None):
        return self._out(self.conv(x), x, h)


class WaveNet(nn.Module):
    """WaveNet over mu-law codes.

    Args:
        n_levels: output classes (256 for 8-bit mu-law).
        res_ch, skip_ch: residual and skip channels.
        dilations: dilation of each residual block, e.g. [1, 2, 4, ..., 128] * stacks.
        kernel_size: causal kernel size.
        n_classes: 0 (unconditional) or the number of global-condition classes.
    forward: x int [B, T] codes, cond int [B] (if n_classes) -> logits [B, n_levels, T].
    """

    def __init__(self, n_levels: int = 256, res_ch: int = 32, skip_ch: int = 64,
                 dilations: Sequence[int] = (1, 2, 4, 8, 16, 32, 64, 1, 2, 4, 8, 16, 32, 64),
                 kernel_size: int = 2, n_classes: int = 0):
        super().__init__()
        require_int(n_levels, "n_levels", low=1)
        require_int(res_ch, "res_ch", low=1)
        require_int(skip_ch, "skip_ch", low=1)
        require_int(kernel_size, "kernel_size", low=1)
        if not dilations:
            raise ValueError("dilations: expected a non-empty list of positive ints, got []")
        for d in dilations:
            require_int(d, "dilations[i]", low=1)
        if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 0:
            raise ValueError(f"n_classes: expected an int >= 0, got {n_classes!r}")
        self.n_levels, self.n_classes = n_levels, n_classes
        self.start = n_levels // 2  # code of amplitude ~0
        self.embed = nn.Embedding(n_levels, res_ch)
        self.front = CausalConv1d(res_ch, res_ch, kernel_size, 1)
        self.blocks = nn.ModuleList(ResidualBlock(res_ch, skip_ch, d, kernel_size, n_classes)
                                    for d in dilations)
        self.out1 = nn.Conv1d(skip_ch, skip_ch, 1)
        self.out2 = nn.Conv1d(skip_ch, n_levels, 1)

    @property
    def receptive_field(self) -> int:
        """Number of past samples that can influence one output."""
        return self.front.receptive + sum(b.conv.receptive - 1 for b in self.blocks)

    def _cond(self, cond: Optional[torch.Tensor], batch: int) -> Optional[torch.Tensor]:
        if self.n_classes == 0:
            if cond is not None:
                raise ValueError("cond: model is unconditional (n_classes=0), expected None")
            return None
        if cond is None:
            raise ValueError(f"cond: expected int labels [B] in [0, {self.n_classes}), got None")
        check_tensor("cond", cond, 1, "int")
        if cond.shape[0] != batch:
            raise ValueError(f"cond: expected {batch} labels, got {cond.shape[0]}")
        check_levels("cond", cond, self.n_classes)
        return F.one_hot(cond.long(), self.n_classes).to(self.embed.weight.dtype)

    def _head(self, skip: torch.Tensor) -> torch.Tensor:
        return self.out2(torch.relu(self.out1(torch.relu(skip))))

    def forward(self, x: torch.Tensor, cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        check_tensor("x", x, 2, "int")
        check_levels("x", x, self.n_levels)
        h = self._cond(cond, x.shape[0])
        shifted = F.pad(x.long(), (1, 0), value=self.start)[:, :-1]
        z = self.front(self.embed(shifted).transpose(1, 2))
        skip = 0
        for blk in self.blocks:
            z, s = blk(z, h)
            skip = skip + s
        return self._head(skip)

    def nll(self, x: torch.Tensor, cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Negative log-likelihood in nats per sequence: x int [B, T] -> [B]."""
        return F.cross_entropy(self(x, cond), x.long(), reduction="none").sum(1)

    def bits_per_sample(self, x: torch.Tensor, cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x int [B, T] -> bits per sample [B]."""
        return self.nll(x, cond) / (x.shape[1] * LN2)

    @torch.no_grad()
    def generate(self, n: int, length: int, seed: int = 0, cond: Optional[torch.Tensor] = None,
                 cached: bool = True) -> torch.Tensor:
        """Sample ``n`` sequences of ``length`` codes; int64 [n, length].

        cached=True keeps, for every causal conv, a buffer of its last inputs and computes
        one output per step (O(layers) per sample); cached=False re-runs the full forward
        pass each step (O(T) per sample). Both draw the same uniforms from ``seed`` and
        give the same samples.
        """
        require_int(n, "n", low=1)
        require_int(length, "length", low=1)
        was_training = self.training
        self.eval()
        gen = torch.Generator(device="cpu").manual_seed(seed)
        dev = self.embed.weight.device
        out = torch.zeros(n, length, dtype=torch.long, device=dev)
        h = self._cond(cond, n)
        if not cached:
            for t in range(length):
                lg = self(out, cond)[:, :, t]
                out[:, t] = sample_categorical(lg, torch.rand(n, generator=gen).to(dev))
            self.train(was_training)
            return out
        convs: List[CausalConv1d] = [self.front] + [b.conv for b in self.blocks]
        res_ch = self.embed.embedding_dim
        dtype = self.embed.weight.dtype
        bufs = [torch.zeros(n, res_ch, c.receptive, dtype=dtype, device=dev) for c in convs]
        prev = torch.full((n,), self.start, dtype=torch.long, device=dev)
        for t in range(length):
            z = self.embed(prev)[:, :, None]  # [n, res, 1]
            bufs[0] = torch.cat([bufs[0][:, :, 1:], z], dim=2)
            z = self.front.step(bufs[0])
            skip = 0
            for k, blk in enumerate(self.blocks):
                bufs[k + 1] = torch.cat([bufs[k + 1][:, :, 1:], z], dim=2)
                z, s = blk._out(blk.conv.step(bufs[k + 1]), z, h)
                skip = skip + s
            lg = self._head(skip)[:, :, 0]
            prev = sample_categorical(lg, torch.rand(n, generator=gen).to(dev))
            out[:, t] = prev
        self.train(was_training)
        return out

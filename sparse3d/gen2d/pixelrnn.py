"""PixelRNN (van den Oord et al. 2016): Row LSTM and Diagonal BiLSTM layers.

Both keep the R -> G -> B sub-pixel ordering: their input-to-state convolutions are
mask-B masked convolutions and every gate has ``ch`` channels (ch % n_colors == 0), so
channel c of each gate stays in colour group c % n_colors.

* Row LSTM: processes the image row by row; input-to-state is a 1 x k mask-B conv over
  the current row, state-to-state a 1-D conv (width k) over the previous row's state
  (triangular receptive field).
* Diagonal BiLSTM: skews the map so that diagonals become columns, runs an LSTM column
  by column with a 2 x 1 state-to-state conv (state at (i, j) comes from (i-1, j) and
  (i, j-1)), once left-to-right and once right-to-left (on the mirrored map); the
  right-to-left output is shifted down by one row before it is added, so no future
  pixel leaks in.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from sparse3d.utils.checks import require_choice, require_int
from .autoregressive import AutoregressiveImageModel
from .layers import MaskedConv2d, shift_down


def _lstm_cell(gates: torch.Tensor, c: torch.Tensor):
    i, f, o, g = gates.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def skew(x: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> [B, C, H, W + H - 1]; row i is moved right by i."""
    B, C, H, W = x.shape
    out = x.new_zeros(B, C, H, W + H - 1)
    for i in range(H):
        out[:, :, i, i:i + W] = x[:, :, i]
    return out


def unskew(x: torch.Tensor, width: int) -> torch.Tensor:
    """Inverse of :func:`skew`: [B, C, H, W + H - 1] -> [B, C, H, W]."""
    H = x.shape[2]
    return torch.stack([x[:, :, i, i:i + width] for i in range(H)], dim=2)


class RowLSTM(nn.Module):
    """Row LSTM layer. forward: x [B, ch, H, W] -> x + h [B, ch, H, W]."""

    def __init__(self, ch: int, n_colors: int = 1, kernel: int = 3):
        super().__init__()
        self.ch = ch
        self.input_to_state = MaskedConv2d(ch, 4 * ch, (1, kernel), "B", n_colors, center=(0, kernel // 2))
        self.state_to_state = nn.Conv1d(ch, 4 * ch, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        xs = self.input_to_state(x)
        h = x.new_zeros(B, self.ch, W)
        c = x.new_zeros(B, self.ch, W)
        rows = []
        for i in range(H):
            h, c = _lstm_cell(xs[:, :, i] + self.state_to_state(h), c)
            rows.append(h)
        return x + torch.stack(rows, dim=2)


class DiagonalLSTM(nn.Module):
    """One direction (left-to-right) of the Diagonal BiLSTM. x [B, ch, H, W] -> [B, ch, H, W]."""

    def __init__(self, ch: int, n_colors: int = 1):
        super().__init__()
        self.ch = ch
        self.input_to_state = MaskedConv2d(ch, 4 * ch, 1, "B", n_colors)
        self.state_to_state = nn.Conv1d(ch, 4 * ch, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        xs = skew(self.input_to_state(x))  # [B, 4ch, H, W+H-1]
        h = x.new_zeros(B, self.ch, H)
        c = x.new_zeros(B, self.ch, H)
        cols = []
        for t in range(xs.shape[3]):
            h, c = _lstm_cell(xs[:, :, :, t] + self.state_to_state(F.pad(h, (1, 0))), c)
            cols.append(h)
        return unskew(torch.stack(cols, dim=3), W)


class DiagonalBiLSTM(nn.Module):
    """Diagonal BiLSTM layer. forward: x [B, ch, H, W] -> x + h [B, ch, H, W]."""

    def __init__(self, ch: int, n_colors: int = 1):
        super().__init__()
        self.fwd = DiagonalLSTM(ch, n_colors)
        self.bwd = DiagonalLSTM(ch, n_colors)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        right_to_left = self.bwd(x.flip(3)).flip(3)
        return x + self.fwd(x) + shift_down(right_to_left)


class PixelRNN(AutoregressiveImageModel):
    """PixelRNN with Row LSTM (``kind="row"``) or Diagonal BiLSTM (``kind="diagonal"``) layers.

    A 7x7 mask-A conv, ``n_layers`` residual LSTM layers, two mask-B 1x1 convs.
    forward: x [B, C, H, W] in [-1, 1] -> logits [B, K, C, H, W].
    """

    def __init__(self, in_channels: int = 1, n_levels: int = 256, hidden: int = 32, n_layers: int = 2,
                 kind: str = "row", first_kernel: int = 7):
        super().__init__()
        for name, v in [("in_channels", in_channels), ("n_levels", n_levels), ("hidden", hidden),
                        ("n_layers", n_layers), ("first_kernel", first_kernel)]:
            require_int(v, name, low=1)
        require_choice(kind, "kind", ("row", "diagonal"))
        if hidden % in_channels:
            raise ValueError(f"hidden: expected a multiple of in_channels={in_channels}, got {hidden}")
        self.in_channels, self.n_levels, self.kind = in_channels, n_levels, kind
        C = in_channels
        self.inp = MaskedConv2d(C, hidden, first_kernel, "A", C)
        make = (lambda: RowLSTM(hidden, C)) if kind == "row" else (lambda: DiagonalBiLSTM(hidden, C))
        self.body = nn.Sequential(*[make() for _ in range(n_layers)])
        self.head = nn.Sequential(nn.ReLU(), MaskedConv2d(hidden, hidden, 1, "B", C), nn.ReLU(),
                                  MaskedConv2d(hidden, n_levels * C, 1, "B", C))

    def logits(self, x: torch.Tensor, cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        if cond is not None:
            raise ValueError("cond: PixelRNN is unconditional, expected None, got a tensor")
        B, C, H, W = x.shape
        return self.head(self.body(self.inp(x))).view(B, self.n_levels, C, H, W)

"""The ScanNet paper's semantic voxel labelling baseline (Dai et al. 2017, sec. 6.2): a dense 3D CNN that
sees a 31 x 31 x 62 voxel neighbourhood and labels the 1 x 1 x 62 column at its centre.

    net = WindowNet(WindowModelConfig())
    logits = net(x)     # x float32 [B, 5, 31, 31, 62] -> float32 [B, 20, 62] (class, z of the centre column)

Input channels (sparse3d.tasks.segmentation.window_data.window_input): occupied (a near-surface voxel of the
sample), known (the paper's known / unknown space: a camera saw the cell, from the crop's visibility mask, or it is
occupied; 0 in the padding around the scene), and the voxel's fused colour r, g, b in [0, 1] (0 where empty), so
the baseline sees what the sparse U-Net sees, plus where the scan looked.

The net: strided 3D convolutions (BatchNorm, ReLU) shrink the window to a small volume, two fully connected
layers map it to 62 x 20 logits (the paper's layout: convolutions, then fully connected layers that emit
the whole column). It is kept small so that a sliding window over a whole room runs in about a minute on two
CPU threads.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List

import torch
from torch import nn

TASK = "segmentation-window"
WINDOW_XY = 31  # window edge in x and y, voxels (odd: the column is at its centre)
COLUMN_Z = 62  # window height = labelled column height, voxels
HALF_XY = WINDOW_XY // 2  # 15 voxels of context on each side of the column
IN_CHANNELS = 5  # occupied, known, r, g, b
NUM_CLASSES = 20


@dataclass
class WindowModelConfig:
    """widths: channels of the strided convolutions (each halves x, y and z; 3 of them take 31x31x62 to
    4x4x8); hidden: width of the fully connected layer; dropout before the last layer."""

    widths: List[int] = field(default_factory=lambda: [16, 32, 64])
    hidden: int = 256
    dropout: float = 0.2

    def __post_init__(self) -> None:
        self.widths = [int(w) for w in self.widths]
        if not self.widths or any(w < 1 for w in self.widths):
            raise ValueError(f"widths must be a non-empty list of integers >= 1, got {self.widths}")
        if len(self.widths) > 5:
            raise ValueError(f"widths may have at most 5 entries (each halves the 31x31x62 window), got {self.widths}")
        if int(self.hidden) < 1:
            raise ValueError(f"hidden must be >= 1, got {self.hidden}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def _halved(n: int, times: int) -> int:
    for _ in range(times):
        n = (n - 1) // 2 + 1  # kernel 3, stride 2, padding 1
    return n


class WindowNet(nn.Module):
    """forward(x float32 [B, 5, 31, 31, 62]) -> logits float32 [B, 20, 62]."""

    def __init__(self, cfg: WindowModelConfig) -> None:
        super().__init__()
        self.config = cfg
        layers: List[nn.Module] = []
        c = IN_CHANNELS
        for w in cfg.widths:
            layers += [nn.Conv3d(c, w, 3, stride=2, padding=1, bias=False), nn.BatchNorm3d(w), nn.ReLU(inplace=True)]
            c = w
        self.features = nn.Sequential(*layers)
        k = len(cfg.widths)
        flat = c * _halved(WINDOW_XY, k) ** 2 * _halved(COLUMN_Z, k)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(flat, cfg.hidden), nn.ReLU(inplace=True),
                                  nn.Dropout(cfg.dropout), nn.Linear(cfg.hidden, NUM_CLASSES * COLUMN_Z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or tuple(x.shape[1:]) != (IN_CHANNELS, WINDOW_XY, WINDOW_XY, COLUMN_Z):
            raise ValueError(f"x must be [B, {IN_CHANNELS}, {WINDOW_XY}, {WINDOW_XY}, {COLUMN_Z}], "
                             f"got {list(x.shape)}")
        return self.head(self.features(x)).view(-1, NUM_CLASSES, COLUMN_Z)

"""PNG output of gen2d: image grids and waveforms (matplotlib, Agg backend; atomic writes). The loss
curves are drawn by sparse3d.train.plots.plot_history."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from sparse3d.utils.atomic_io import atomic_savefig


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def image_grid(images: torch.Tensor, nrow: int, pad: int = 1) -> np.ndarray:
    """images float [N, C, H, W] in [0, 1] (C = 1 or 3) -> HWC (or HW) array grid, ``nrow`` per row."""
    N, C, H, W = images.shape
    ncol = nrow
    nr = (N + ncol - 1) // ncol
    grid = np.ones((nr * (H + pad) + pad, ncol * (W + pad) + pad, C))
    x = images.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
    for k in range(N):
        r, c = divmod(k, ncol)
        grid[pad + r * (H + pad): pad + r * (H + pad) + H, pad + c * (W + pad): pad + c * (W + pad) + W] = x[k]
    return grid[..., 0] if C == 1 else grid


def save_grid(images: torch.Tensor, nrow: int, path: str, title: str = "") -> None:
    """Save an image grid (see :func:`image_grid`) as PNG."""
    plt = _plt()
    g = image_grid(images, nrow)
    fig, ax = plt.subplots(figsize=(max(3, g.shape[1] / 20), max(3, g.shape[0] / 20)))
    ax.imshow(g, cmap="gray" if g.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    atomic_savefig(fig, path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def save_waveforms(waves: Sequence[np.ndarray], labels: Sequence[str], path: str, title: str = "") -> None:
    """Plot 1-D signals one under the other."""
    plt = _plt()
    fig, axes = plt.subplots(len(waves), 1, figsize=(8, 1.3 * len(waves)), squeeze=False)
    for ax, w, lab in zip(axes[:, 0], waves, labels):
        ax.plot(np.asarray(w), lw=0.7)
        ax.set_ylabel(lab, fontsize=7)
        ax.set_ylim(-1.05, 1.05)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=100, bbox_inches="tight")
    plt.close(fig)

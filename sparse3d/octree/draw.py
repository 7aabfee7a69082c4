"""Headless pictures of an octree's octants, one panel per depth (matplotlib, Agg).

    from sparse3d.octree.draw import draw_octree
    counts = draw_octree(octree, "octree.png", depths=[3, 4, 5])   # {depth: octants drawn}

Each panel draws the non-empty octants of one depth of one batch item as cube outlines (faces shaded by
their normal's direction, so the surface reads in 3D), in the octree's cell frame: depth d's cells are
``2^(D - d)`` leaf cells wide, so every panel shows the same extent. Empty nodes of the full octree are
not drawn (``show_empty=True`` draws them as light outlines).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from sparse3d.octree.structure import Octree
from sparse3d.utils.checks import require_int

__all__ = ["draw_octree", "MAX_OCTANTS"]

MAX_OCTANTS = 60_000  # per panel: beyond this, matplotlib's 3D drawing takes minutes

# the 6 faces of the unit cube as corner indices (corner c = (c >> 2 & 1, c >> 1 & 1, c & 1))
_FACES = np.array([[0, 1, 3, 2], [4, 5, 7, 6], [0, 1, 5, 4], [2, 3, 7, 6], [0, 2, 6, 4], [1, 3, 7, 5]])
_CORNERS = np.array([[c >> 2 & 1, c >> 1 & 1, c & 1] for c in range(8)], dtype=np.float64)
_SHADE = np.array([0.55, 0.55, 0.7, 0.7, 0.85, 0.85])  # by face axis


def _cubes(cells: np.ndarray, size: float) -> np.ndarray:
    """Quads ``[6 * N, 4, 3]`` of N cubes with min corners ``cells * size``."""
    corners = cells[:, None, :] * size + _CORNERS[None] * size  # [N, 8, 3]
    return corners[:, _FACES].reshape(-1, 4, 3)


def draw_octree(octree: Octree, path: Union[str, Path], depths: Optional[Sequence[int]] = None, batch: int = 0,
                width: int = 1400, height: int = 480, show_empty: bool = False) -> Dict[int, int]:
    """Draw the octants of ``depths`` (default: up to four depths ending at the leaves) of batch item
    ``batch`` into a PNG at ``path`` (written atomically). Returns ``{depth: octants drawn}``.

    ValueError when a depth is out of range or a panel would hold more than :data:`MAX_OCTANTS` octants."""
    # matplotlib's object API (no pyplot): the process-wide backend and figure list stay untouched
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection  # type: ignore[import-untyped]

    from sparse3d.utils.atomic_io import atomic_savefig

    if not isinstance(octree, Octree):
        raise TypeError(f"octree must be an Octree, got {type(octree).__name__}")
    batch = require_int(batch, "batch", 0, octree.batch_size - 1)
    width = require_int(width, "width", 64, 8192)
    height = require_int(height, "height", 64, 8192)
    if depths is None:
        depths = list(range(max(1, octree.depth - 3), octree.depth + 1))
    depths = [octree.check_depth(d, "depths[]") for d in depths]
    if not depths:
        raise ValueError("depths must name at least one depth, got an empty sequence")
    drawn: Dict[int, int] = {}
    fig = Figure(figsize=(width / 100, height / 100), dpi=100)
    FigureCanvasAgg(fig)
    leaf = float(1 << octree.depth)
    for j, d in enumerate(depths):
        mask = (octree.coords[d][:, 0] == batch) & octree.nonempty_mask(d)
        cells = octree.coords[d][mask][:, 1:].numpy().astype(np.float64)
        if len(cells) > MAX_OCTANTS:
            raise ValueError(f"depths: depth {d} has {len(cells)} non-empty octants in batch item {batch}, more than "
                             f"{MAX_OCTANTS} a panel draws; pick shallower depths")
        size = float(1 << (octree.depth - d))
        ax = fig.add_subplot(1, len(depths), j + 1, projection="3d")
        quads = _cubes(cells, size)
        shade = np.tile(_SHADE, len(cells))
        colors = np.stack([0.25 * shade, 0.5 * shade, 0.9 * shade, np.ones_like(shade)], 1)
        ax.add_collection3d(Poly3DCollection(quads, facecolors=colors, edgecolors=(0, 0, 0, 0.35), linewidths=0.2))
        if show_empty:
            empty = (octree.coords[d][:, 0] == batch) & ~octree.nonempty_mask(d)
            e = octree.coords[d][empty][:, 1:].numpy().astype(np.float64)[:MAX_OCTANTS]
            ax.add_collection3d(Poly3DCollection(_cubes(e, size), facecolors=(0, 0, 0, 0),
                                                 edgecolors=(0.6, 0.6, 0.6, 0.15), linewidths=0.2))
        for setter in (ax.set_xlim, ax.set_ylim, ax.set_zlim):
            setter(0, leaf)
        ax.set_box_aspect((1, 1, 1))
        n_b = int((octree.coords[d][:, 0] == batch).sum())
        ax.set_title(f"depth {d}: {len(cells)} of {n_b} octants non-empty", fontsize=8)
        ax.set_axis_off()
        drawn[d] = len(cells)
    fig.tight_layout()
    atomic_savefig(fig, Path(path), dpi=100)
    return drawn


def octant_counts(octree: Octree, batch: int = 0) -> List[int]:
    """Non-empty octants per depth of batch item ``batch`` (what :func:`draw_octree` draws per panel)."""
    batch = require_int(batch, "batch", 0, octree.batch_size - 1)
    return [int(((octree.coords[d][:, 0] == batch) & octree.nonempty_mask(d)).sum()) for d in range(octree.depth + 1)]

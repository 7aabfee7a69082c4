"""Building blocks of the synthetic furniture: boxes, pieces (one labelled object) and groups (what is
placed in a room as one unit, e.g. a table with its chairs, a kitchen run with its sink).

Local frame of a group: x = width, y = depth (+y = back, towards the wall), z = up, floor at z = 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np


@dataclass
class Box:
    """An axis-aligned box in the local frame: centre float [3], size float [3] (metres);
    slot: which of the piece's colours it takes (0 main, 1 secondary, >= 2 accents)."""

    center: Tuple[float, float, float]
    size: Tuple[float, float, float]
    slot: int = 0


@dataclass
class Piece:
    """One labelled object: raw ScanNet category, its boxes, colour key (default: the raw category) and an
    optional share tag (pieces of a group with the same tag get the same colours, e.g. a set of chairs)."""

    raw: str
    boxes: List[Box]
    color_key: Optional[str] = None
    share: Optional[str] = None


@dataclass
class Group:
    """Pieces placed together. back: local y of the wall surface for wall-mounted groups (parts with
    y > back are inside the wall), None for floor furniture (backed 2 cm off the wall when against one);
    keepout: boxes that must stay free (a door's swing) but are not meshed; corner_end: for "corner" items,
    which end (-1: local -x, +1: local +x, 0: either) goes to the wall's end."""

    pieces: List[Piece]
    back: Optional[float] = None
    keepout: List[Box] = field(default_factory=list)
    corner_end: int = 0

    def corners(self, with_keepout: bool = True) -> np.ndarray:
        """float [8B,3] corners of every box (and keepout box) in the local frame."""
        boxes = [b for p in self.pieces for b in p.boxes] + (self.keepout if with_keepout else [])
        c = np.array([b.center for b in boxes], float)
        s = np.array([b.size for b in boxes], float)
        signs = np.array([[x, y, z] for x in (-.5, .5) for y in (-.5, .5) for z in (-.5, .5)])
        return (c[:, None, :] + signs[None] * s[:, None, :]).reshape(-1, 3)

    def tall_corners(self, z_min: float) -> np.ndarray:
        """float [8B,3] corners of the meshed boxes whose top is above z_min."""
        tall = [b for p in self.pieces for b in p.boxes if b.center[2] + b.size[2] / 2 > z_min]
        if not tall:
            return np.zeros((0, 3))
        return Group([Piece("", tall)]).corners(False)


def U(rng: np.random.Generator, lo: float, hi: float) -> float:
    """A float uniform in [lo, hi)."""
    return float(rng.uniform(lo, hi))


def legs(w: float, d: float, h: float, t: float, z0: float = 0.0, inset: float = 0.0, slot: int = 1,
         cx: float = 0.0, cy: float = 0.0) -> List[Box]:
    """Four t x t legs of height h under a w x d footprint centred at (cx, cy), `inset` from its edges."""
    ox, oy = w / 2 - t / 2 - inset, d / 2 - t / 2 - inset
    return [Box((cx + sx * ox, cy + sy * oy, z0 + h / 2), (t, t, h), slot) for sx in (-1, 1) for sy in (-1, 1)]


def frame_bars(w: float, h: float, bar: float, depth: float, y: float, z0: float, slot: int = 1) -> List[Box]:
    """A rectangular frame in the x-z plane: outer size w x h, bars `bar` wide, `depth` deep centred at y."""
    return [Box((0, y, z0 + bar / 2), (w, depth, bar), slot), Box((0, y, z0 + h - bar / 2), (w, depth, bar), slot),
            Box((-w / 2 + bar / 2, y, z0 + h / 2), (bar, depth, h - 2 * bar), slot),
            Box((w / 2 - bar / 2, y, z0 + h / 2), (bar, depth, h - 2 * bar), slot)]


def pleats(rng: np.random.Generator, x0: float, x1: float, z0: float, z1: float, y_back: float,
           depth: float = 0.09) -> List[Box]:
    """A pleated curtain panel from x0 to x1, z0 to z1, hanging in front of y_back: strips 6-14 cm
    wide whose front alternates between y_back - depth and y_back - depth / 2."""
    n = max(2, int(round((x1 - x0) / U(rng, 0.06, 0.14))))
    xs = np.linspace(x0, x1, n + 1)
    out = []
    for k in range(n):
        dk = depth if k % 2 == 0 else depth / 2
        out.append(Box(((xs[k] + xs[k + 1]) / 2, y_back - dk / 2, (z0 + z1) / 2),
                       (xs[k + 1] - xs[k], dk, z1 - z0)))
    return out


def turn(boxes: Sequence[Box], quarter: int, offset: Sequence[float] = (0.0, 0.0, 0.0)) -> List[Box]:
    """Boxes rotated by quarter * 90 degrees about +z (counter-clockwise), then moved by offset [3]."""
    q = quarter % 4
    out = []
    for b in boxes:
        x, y, z = b.center
        sx, sy, sz = b.size
        for _ in range(q):
            x, y, sx, sy = -y, x, sy, sx
        out.append(Box((x + offset[0], y + offset[1], z + offset[2]), (sx, sy, sz), b.slot))
    return out


def boxes_to_mesh(boxes: List[Box], yaw: float, offset: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Triangulate boxes with their 8 corners only (2 triangles per face), rotated by `yaw` about +z and
    translated by `offset` float [3]. (Rooms use the dense `mesh_grid.box_grid_mesh` instead.)

    Returns vertices float64 [8B,3], faces int64 [12B,3] (outward, counter-clockwise) and the
    part index int64 [8B] of each vertex.
    """
    corners = np.array([[x, y, z] for x in (-.5, .5) for y in (-.5, .5) for z in (-.5, .5)])
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    tri = np.array([[q[0], q[1], q[2]] for q in quads] + [[q[0], q[2], q[3]] for q in quads])
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    vs, fs, part = [], [], []
    for k, b in enumerate(boxes):
        v = corners * np.asarray(b.size) + np.asarray(b.center)
        vs.append(v @ rot.T + offset)
        fs.append(tri + 8 * k)
        part.append(np.full(8, k))
    return np.concatenate(vs), np.concatenate(fs), np.concatenate(part)

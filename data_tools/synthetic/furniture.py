"""Furniture built from boxes, in a local frame: x = width, y = depth (+y = back), z = up, floor at z = 0,
footprint centred on the origin. Each builder returns a list of `Box` and the (width, depth) footprint."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple

import numpy as np


@dataclass
class Box:
    """An axis-aligned box in the object's local frame: centre float [3], size float [3]."""

    center: Tuple[float, float, float]
    size: Tuple[float, float, float]


def _legs(w: float, d: float, h: float, t: float = 0.05) -> List[Box]:
    ox, oy = w / 2 - t / 2, d / 2 - t / 2
    return [Box((sx * ox, sy * oy, h / 2), (t, t, h)) for sx in (-1, 1) for sy in (-1, 1)]


def table(s: float) -> Tuple[List[Box], Tuple[float, float]]:
    w, d, h = 1.2 * s, 0.8 * s, 0.75
    return [Box((0, 0, h - 0.02), (w, d, 0.04))] + _legs(w, d, h - 0.04), (w, d)


def coffee_table(s: float):
    w, d, h = 1.0 * s, 0.6 * s, 0.45
    return [Box((0, 0, h - 0.02), (w, d, 0.04))] + _legs(w, d, h - 0.04, 0.04), (w, d)


def chair(s: float):
    w = d = 0.46 * s
    seat = 0.45
    parts = [Box((0, 0, seat - 0.025), (w, d, 0.05)), Box((0, d / 2 - 0.025, seat + 0.25), (w, 0.05, 0.45))]
    return parts + _legs(w, d, seat - 0.05, 0.04), (w, d)


def bed(s: float):
    w, d = 1.5 * s, 2.0 * s
    return [Box((0, 0, 0.15), (w, d, 0.3)), Box((0, -0.025, 0.4), (w - 0.05, d - 0.1, 0.2)),
            Box((0, d / 2 - 0.04, 0.45), (w, 0.08, 0.9)), Box((0, d / 2 - 0.35, 0.55), (0.6 * w, 0.35, 0.1))], (w, d)


def couch(s: float):
    w, d = 2.0 * s, 0.9
    return [Box((0, 0, 0.2), (w, d, 0.4)), Box((0, d / 2 - 0.1, 0.6), (w, 0.2, 0.4)),
            Box((-w / 2 + 0.1, 0, 0.525), (0.2, d, 0.25)), Box((w / 2 - 0.1, 0, 0.525), (0.2, d, 0.25))], (w, d)


def cabinet(s: float):
    w, d, h = 0.8 * s, 0.5, 0.9 * s
    return [Box((0, 0, h / 2), (w, d, h)), Box((0, -d / 2 - 0.01, h / 2), (w - 0.06, 0.02, h - 0.06))], (w, d + 0.02)


def desk(s: float):
    w, d, h = 1.4 * s, 0.7, 0.74
    return [Box((0, 0, h - 0.02), (w, d, 0.04)), Box((-w / 2 + 0.02, 0, (h - 0.04) / 2), (0.04, d, h - 0.04)),
            Box((w / 2 - 0.02, 0, (h - 0.04) / 2), (0.04, d, h - 0.04)),
            Box((0, d / 2 - 0.02, 0.45), (w - 0.08, 0.02, 0.5))], (w, d)


def bookshelf(s: float):
    w, d, h = 0.9 * s, 0.35, 1.8 * s
    parts = [Box((-w / 2 + 0.015, 0, h / 2), (0.03, d, h)), Box((w / 2 - 0.015, 0, h / 2), (0.03, d, h)),
             Box((0, d / 2 - 0.01, h / 2), (w, 0.02, h))]
    for k in range(5):
        z = 0.02 + k * (h - 0.04) / 4
        parts.append(Box((0, 0, z), (w - 0.06, d, 0.03)))
    return parts, (w, d)


def nightstand(s: float):
    w, d, h = 0.45 * s, 0.4, 0.55
    return [Box((0, 0, h / 2), (w, d, h))], (w, d)


# name -> (builder, ScanNet raw category, backs onto a wall, colour RGB)
FURNITURE: Dict[str, Tuple[Callable, str, bool, Tuple[int, int, int]]] = {
    "table": (table, "table", False, (150, 105, 60)),
    "coffee table": (coffee_table, "coffee table", False, (120, 80, 50)),
    "chair": (chair, "chair", False, (60, 90, 160)),
    "bed": (bed, "bed", True, (200, 190, 170)),
    "couch": (couch, "couch", True, (140, 50, 50)),
    "cabinet": (cabinet, "cabinet", True, (180, 170, 140)),
    "desk": (desk, "desk", True, (110, 110, 115)),
    "bookshelf": (bookshelf, "bookshelf", True, (130, 90, 40)),
    "nightstand": (nightstand, "nightstand", True, (160, 120, 80)),
}


def boxes_to_mesh(boxes: List[Box], yaw: float, offset: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Triangulate boxes rotated by `yaw` about +z and translated by `offset` float [3].

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

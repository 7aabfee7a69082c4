"""Seeded random rooms: floor, four walls, a door, a window and furniture, as one labelled mesh.

Coordinates: metres, +Z up, the floor is z = 0 and the room interior is [0, W] x [0, D].
Every object carries a real ScanNet raw category (`wall`, `floor`, `door`, `window`,
`table`, `chair`, ...) which `scannetv2-labels.combined.tsv` maps to nyu40.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Tuple

import numpy as np

from .furniture import FURNITURE, Box, boxes_to_mesh

# nyu40 ids of the raw categories used here, as in the real scannetv2-labels.combined.tsv
# (checked against it by the tests); lets generation work without the tsv at hand.
RAW_TO_NYU40 = {"wall": 1, "floor": 2, "cabinet": 3, "bed": 4, "chair": 5, "couch": 6, "table": 7, "door": 8,
                "window": 9, "bookshelf": 10, "desk": 14, "coffee table": 7, "nightstand": 32}


@dataclass
class RoomObject:
    raw_category: str
    vertices: np.ndarray  # float64 [V,3]
    faces: np.ndarray  # int64 [F,3], local to this object
    part: np.ndarray  # int64 [V] part index (one segment per part)
    color: Tuple[int, int, int]


@dataclass
class Room:
    """size = (W, D, H) metres; objects in a fixed order (walls/floor first)."""

    size: Tuple[float, float, float]
    objects: List[RoomObject] = field(default_factory=list)

    def mesh(self):
        """(vertices float32 [N,3], faces int32 [M,3], colors uint8 [N,3], object index int32 [N],
        segment id int32 [N]) of the whole room."""
        vs, fs, cs, obj, seg = [], [], [], [], []
        nv = nseg = 0
        for k, o in enumerate(self.objects):
            vs.append(o.vertices)
            fs.append(o.faces + nv)
            cs.append(np.tile(np.asarray(o.color, np.uint8), (len(o.vertices), 1)))
            obj.append(np.full(len(o.vertices), k, np.int32))
            seg.append(o.part + nseg)
            nv += len(o.vertices)
            nseg += int(o.part.max()) + 1
        return (np.concatenate(vs).astype(np.float32), np.concatenate(fs).astype(np.int32),
                np.concatenate(cs), np.concatenate(obj), np.concatenate(seg).astype(np.int32))


def _overlaps(a: np.ndarray, b: np.ndarray, gap: float) -> bool:
    return not (a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1])


def make_room(seed: int, n_furniture: Tuple[int, int] = (4, 8)) -> Room:
    """A random room from `seed` (int). n_furniture: inclusive range of the furniture count."""
    if not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed: expected int, got {type(seed).__name__}")
    rng = np.random.default_rng(int(seed))
    W, D, H = rng.uniform(3.5, 5.5), rng.uniform(3.0, 4.5), rng.uniform(2.4, 2.8)
    room = Room((W, D, H))
    t = 0.1

    def add(raw, boxes, yaw=0.0, offset=(0, 0, 0), color=(200, 200, 200)):
        v, f, p = boxes_to_mesh(boxes, yaw, np.asarray(offset, float))
        jitter = rng.integers(-12, 13, 3)
        col = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(color, jitter))
        room.objects.append(RoomObject(raw, v, f, p, col))

    add("floor", [Box((W / 2, D / 2, -0.025), (W + 2 * t, D + 2 * t, 0.05))], color=(165, 150, 130))
    walls = [Box((W / 2, -t / 2, H / 2), (W + 2 * t, t, H)), Box((W / 2, D + t / 2, H / 2), (W + 2 * t, t, H)),
             Box((-t / 2, D / 2, H / 2), (t, D, H)), Box((W + t / 2, D / 2, H / 2), (t, D, H))]
    for w in walls:
        add("wall", [w], color=(215, 212, 205))
    # door on wall 0 (y = 0) or 2 (x = 0); window on the opposite one
    door_x = rng.uniform(0.6, W - 1.5)
    add("door", [Box((door_x + 0.45, 0.01, 1.0), (0.9, 0.04, 2.0))], color=(120, 80, 45))
    win_x = rng.uniform(0.8, W - 2.0)
    add("window", [Box((win_x + 0.6, D - 0.01, 1.45), (1.2, 0.04, 1.0))], color=(170, 200, 230))
    taken = [np.array([door_x - 0.1, 0.0, door_x + 1.0, 1.0])]  # keep the door swing free

    names = list(FURNITURE)
    n = int(rng.integers(n_furniture[0], n_furniture[1] + 1))
    for _ in range(n):
        name = names[int(rng.integers(len(names)))]
        builder, raw, backs, color = FURNITURE[name]
        boxes, (fw, fd) = builder(float(rng.uniform(0.85, 1.15)))
        for _try in range(40):
            if backs:  # back (+y local) against a wall
                wall = int(rng.integers(4))
                yaw = [np.pi, 0.0, np.pi / 2, -np.pi / 2][wall]
                ex, ey = (fw, fd) if wall < 2 else (fd, fw)
                if wall < 2:
                    cx = rng.uniform(ex / 2 + 0.05, W - ex / 2 - 0.05)
                    cy = ey / 2 + 0.02 if wall == 0 else D - ey / 2 - 0.02
                else:
                    cy = rng.uniform(ey / 2 + 0.05, D - ey / 2 - 0.05)
                    cx = ex / 2 + 0.02 if wall == 2 else W - ex / 2 - 0.02
            else:
                yaw = float(rng.integers(4)) * np.pi / 2
                ex, ey = (fw, fd) if int(round(yaw / (np.pi / 2))) % 2 == 0 else (fd, fw)
                cx, cy = rng.uniform(ex / 2 + 0.3, W - ex / 2 - 0.3), rng.uniform(ey / 2 + 0.3, D - ey / 2 - 0.3)
            fp = np.array([cx - ex / 2, cy - ey / 2, cx + ex / 2, cy + ey / 2])
            if fp[0] < 0 or fp[1] < 0 or fp[2] > W or fp[3] > D:
                continue
            if any(_overlaps(fp, o, 0.1) for o in taken):
                continue
            taken.append(fp)
            add(raw, boxes, yaw, (cx, cy, 0.0), color)
            break
    return room

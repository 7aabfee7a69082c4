"""Seeded random rooms of five types (`room_types`), as one labelled, densely triangulated mesh.

Coordinates: metres, +Z up, the floor is z = 0 and the room interior is [0, W] x [0, D].
Every object carries a real ScanNet raw category (`wall`, `floor`, `kitchen counter`, `office chair`,
`shower curtain`, ...) that `scannetv2-labels.combined.tsv` maps to nyu40 (`RAW_TO_NYU40`).

Placement: each item of the room type is drawn (count, shape, colours), then tried at up to 40 random
poses: against a wall (its back 2 cm off it, or flush for wall-mounted slabs), at a wall's end
("corner") or free on the floor; a pose is kept when the group's 3D bounding box (with a door's swing
area) stays inside the room, clear of every placed group by 6 cm (2 cm in height), and its parts above
1 m stay 30 cm away from the camera loop of `render.room_trajectory`. An item that fits nowhere (3 shapes
x 40 poses) is left out.

content "cluttered" (`make_room(content=...)`) adds, after the basic room and from a random stream of its
own (so the basic objects stay exactly as they are), the room type's `CLUTTER_ITEMS` (open shelves, floor
lamps, coat racks, things on the floor), placed the same way, and small things (books, boxes, bottles,
cups, paper, table lamps) on the tops of tables, desks, counters, nightstands and low cabinets: each kept
where it rests inside the top (4 cm from its edges), clear of every other object's bounding box by 1 cm,
and, when it reaches above 1 m, 30 cm from the camera loop.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from .colors import draw_colors, vertex_noise
from .mesh_grid import box_grid_mesh
from .parts import Box, Group
from .room_types import CLUTTER_ITEMS, RAW_TO_NYU40, ROOM_SPECS, ROOM_TYPES, Item
from .storage import tabletop_item

__all__ = ["CONTENTS", "MAX_EDGE", "RAW_TO_NYU40", "Room", "RoomObject", "make_room"]

CONTENTS = ("basic", "cluttered")
_CLUTTER_STREAM = 0xC1A7  # last word of the clutter seed: a stream apart from the basic room's
# raw categories whose top can hold small things (tv stands hold a tv; wall cabinets hang too high)
_SURFACES = ("table", "coffee table", "dining table", "end table", "side table", "desk", "nightstand", "cabinet",
             "kitchen counter", "bathroom counter", "counter", "file cabinet", "file cabinets")

MAX_EDGE = 0.1  # metres: no mesh edge is longer (see mesh_grid)
_GAP, _GAP_Z, _CAM_CLEAR, _WALL_T = 0.06, 0.02, 0.3, 0.1


@dataclass
class RoomObject:
    """One labelled object: vertices float64 [V,3], faces int64 [F,3] (local to the object), part int64 [V]
    (one segment per box), colors uint8 [V,3]; group: index into Room.boxes of the group it was placed with
    (-1 for the floor and walls); color_key: the key of colors.CLASS_MATERIALS its colours came from
    (None: the raw category)."""

    raw_category: str
    vertices: np.ndarray
    faces: np.ndarray
    part: np.ndarray
    colors: np.ndarray
    group: int = -1
    color_key: Optional[str] = None


@dataclass
class Room:
    """size = (W, D, H) metres; room_type one of ROOM_TYPES; objects in a fixed order (floor, walls first);
    boxes: the world bounding box float [2,3] (min, max) of every placed group (with its keep-out area)."""

    size: Tuple[float, float, float]
    objects: List[RoomObject] = field(default_factory=list)
    room_type: str = "bedroom"
    boxes: List[np.ndarray] = field(default_factory=list)

    def mesh(self):
        """(vertices float32 [N,3], faces int32 [M,3], colors uint8 [N,3], object index int32 [N],
        segment id int32 [N]) of the whole room."""
        vs, fs, cs, obj, seg = [], [], [], [], []
        nv = nseg = 0
        for k, o in enumerate(self.objects):
            vs.append(o.vertices)
            fs.append(o.faces + nv)
            cs.append(o.colors)
            obj.append(np.full(len(o.vertices), k, np.int32))
            seg.append(o.part + nseg)
            nv += len(o.vertices)
            nseg += int(o.part.max()) + 1
        return (np.concatenate(vs).astype(np.float32), np.concatenate(fs).astype(np.int32),
                np.concatenate(cs).astype(np.uint8), np.concatenate(obj), np.concatenate(seg).astype(np.int32))


def _rot(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _walls(W: float, D: float):
    """Per wall: (yaw, origin xy of u = 0, along-wall direction xy, length); local +x runs along the wall,
    local +y into it."""
    return [(np.pi, (W, 0.0), (-1.0, 0.0), W), (0.0, (0.0, D), (1.0, 0.0), W),
            (np.pi / 2, (0.0, 0.0), (0.0, 1.0), D), (-np.pi / 2, (W, D), (0.0, -1.0), D)]


def _draw_pose(rng: np.random.Generator, g: Group, item: Item, W: float, D: float
               ) -> Optional[Tuple[float, np.ndarray]]:
    """A random (yaw, offset [3]) for group g, or None when it cannot fit the drawn wall."""
    lo, hi = g.corners().min(0), g.corners().max(0)
    if item.mount == "free":
        yaw = float(rng.integers(4)) * np.pi / 2 + (rng.normal(0, item.jitter) if item.jitter else 0.0)
        c = g.corners() @ _rot(yaw).T
        clo, chi = c.min(0), c.max(0)
        m = 0.25
        if chi[0] - clo[0] > W - 2 * m or chi[1] - clo[1] > D - 2 * m:
            return None
        x = rng.uniform(m - clo[0], W - m - chi[0])
        y = rng.uniform(m - clo[1], D - m - chi[1])
        return yaw, np.array([x, y, 0.0])
    yaw, origin, along, L = _walls(W, D)[int(rng.integers(4))]
    back = g.back if g.back is not None else hi[1] + 0.02
    u0, u1 = 0.05 - lo[0], L - 0.05 - hi[0]
    if u1 < u0:
        return None
    if item.mount == "corner":
        end = g.corner_end or (-1 if rng.random() < 0.5 else 1)
        u = u0 if end < 0 else u1
    else:
        u = rng.uniform(u0, u1)
    xy = np.asarray(origin) + np.asarray(along) * u - (_rot(yaw) @ np.array([0.0, back, 0.0]))[:2]
    return yaw, np.array([xy[0], xy[1], 0.0])


def _camera_loop(W: float, D: float) -> np.ndarray:
    """float [72,2]: the ellipse `render.room_trajectory` walks (without its 2 cm jitter)."""
    th = np.linspace(0, 2 * np.pi, 72, endpoint=False)
    return np.stack([W / 2 + 0.3 * W * np.cos(th), D / 2 + 0.3 * D * np.sin(th)], 1)


def _fits(g: Group, yaw: float, off: np.ndarray, W: float, D: float, placed: List[np.ndarray]) -> Optional[np.ndarray]:
    """The world bounding box [2,3] of g at (yaw, off) when it is free, else None."""
    R = _rot(yaw)
    c = g.corners() @ R.T + off
    box = np.stack([c.min(0), c.max(0)])
    if box[0, 0] < -0.06 or box[0, 1] < -0.06 or box[1, 0] > W + 0.06 or box[1, 1] > D + 0.06:
        return None
    gap = np.array([_GAP, _GAP, _GAP_Z])
    for p in placed:
        if np.all(box[0] < p[1] + gap) and np.all(p[0] < box[1] + gap):
            return None
    tall = g.tall_corners(1.0)
    if len(tall):
        t = tall @ R.T + off
        lo, hi = t.min(0)[:2], t.max(0)[:2]
        cam = _camera_loop(W, D)
        dist = np.linalg.norm(np.maximum(0, np.maximum(lo - cam, cam - hi)), axis=1)
        if dist.min() < _CAM_CLEAR:
            return None
    return box


def _mesh_group(rng: np.random.Generator, g: Group, yaw: float, off: np.ndarray, max_edge: float,
                group: int) -> List[RoomObject]:
    R = _rot(yaw)
    out, shared = [], {}
    for p in g.pieces:
        n_acc = max(0, max(b.slot for b in p.boxes) - 1)
        if p.share is not None and p.share in shared and len(shared[p.share]) >= 2 + n_acc:
            cols = shared[p.share]
        else:
            cols = draw_colors(rng, p.color_key or p.raw, n_acc)
            if p.share is not None:
                shared[p.share] = cols
        out.append(_object(rng, p.raw, p.boxes, cols, R, off, max_edge))
        out[-1].group = group
        out[-1].color_key = p.color_key or p.raw
    return out


def _object(rng, raw: str, boxes: List[Box], cols: np.ndarray, R: np.ndarray, off: np.ndarray,
            max_edge: float) -> RoomObject:
    v, f, part = box_grid_mesh([b.center for b in boxes], [b.size for b in boxes], max_edge)
    slots = np.array([b.slot for b in boxes])
    return RoomObject(raw, v @ R.T + off, f, part, vertex_noise(rng, cols[slots[part]]))


def _near_camera(lo: np.ndarray, hi: np.ndarray, W: float, D: float) -> bool:
    """True when the xy box [lo, hi] is closer than _CAM_CLEAR to the camera loop."""
    cam = _camera_loop(W, D)
    dist = np.linalg.norm(np.maximum(0, np.maximum(lo - cam, cam - hi)), axis=1)
    return bool(dist.min() < _CAM_CLEAR)


def _place_items(rng: np.random.Generator, room: Room, items, max_edge: float) -> None:
    """Draw and place `items` (Item sequence) in `room` (module docstring), appending to its objects / boxes."""
    W, D, H = room.size
    placed = room.boxes
    for item in items:
        if rng.random() >= item.prob:
            continue
        for _ in range(int(rng.integers(item.count[0], item.count[1] + 1))):
            for _shape in range(3):
                g = item.builder(rng, H)
                pose = None
                for _try in range(40):
                    pose = _draw_pose(rng, g, item, W, D)
                    box = _fits(g, pose[0], pose[1], W, D, placed) if pose is not None else None
                    if box is not None:
                        break
                    pose = None
                if pose is not None:
                    placed.append(box)
                    room.objects += _mesh_group(rng, g, pose[0], pose[1], max_edge, len(placed) - 1)
                    break


def _surface_clutter(rng: np.random.Generator, room: Room, max_edge: float) -> None:
    """Put 1-3 small things on 75 % of the surfaces (module docstring)."""
    W, D, _ = room.size
    aabbs = [np.stack([o.vertices.min(0), o.vertices.max(0)]) for o in room.objects]
    for k in range(len(room.objects)):
        o = room.objects[k]
        if o.raw_category not in _SURFACES or rng.random() >= 0.75:
            continue
        zt = float(o.vertices[:, 2].max())
        top = o.vertices[o.vertices[:, 2] > zt - 0.005, :2]
        lo, hi = top.min(0) + 0.04, top.max(0) - 0.04
        if zt > 1.3 or np.any(hi - lo < 0.15):
            continue
        for _ in range(int(rng.integers(1, 4))):
            piece = tabletop_item(rng)
            g = Group([piece])
            for _try in range(10):
                R = _rot(float(rng.integers(4)) * np.pi / 2 + rng.normal(0, 0.2))
                c = g.corners(False) @ R.T
                clo, chi = c.min(0), c.max(0)
                if np.any(chi[:2] - clo[:2] > hi - lo):
                    break
                off = np.array([rng.uniform(lo[0] - clo[0], hi[0] - chi[0]), rng.uniform(lo[1] - clo[1], hi[1] - chi[1]),
                                zt])
                box = np.stack([clo + off, chi + off])
                clear = all(j == k or not (np.all(box[0] < a[1] + 0.01) and np.all(a[0] < box[1] + 0.01))
                            for j, a in enumerate(aabbs))
                if clear and (box[1, 2] <= 1.0 or not _near_camera(box[0, :2], box[1, :2], W, D)):
                    n_acc = max(0, max(b.slot for b in piece.boxes) - 1)
                    obj = _object(rng, piece.raw, piece.boxes, draw_colors(rng, piece.color_key, n_acc), R, off,
                                  max_edge)
                    obj.group, obj.color_key = o.group, piece.color_key
                    room.objects.append(obj)
                    aabbs.append(box)
                    break


def make_room(seed: int, room_type: Optional[str] = None, max_edge: float = MAX_EDGE, content: str = "basic") -> Room:
    """A random room from `seed` (int) of `room_type` (one of ROOM_TYPES; None: drawn from the seed);
    max_edge: longest mesh edge (metres); content: "basic" or "cluttered" (module docstring).
    Deterministic in (seed, room_type, max_edge, content)."""
    if content not in CONTENTS:
        raise ValueError(f"content: expected one of {list(CONTENTS)}, got {content!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if room_type is not None and room_type not in ROOM_SPECS:
        raise ValueError(f"room_type must be one of {list(ROOM_TYPES)} or None, got {room_type!r}")
    if room_type is None:
        room_type = ROOM_TYPES[int(np.random.default_rng(int(seed)).integers(len(ROOM_TYPES)))]
    rng = np.random.default_rng([int(seed), ROOM_TYPES.index(room_type)])
    spec = ROOM_SPECS[room_type]
    W, D, H = (float(rng.uniform(*r)) for r in (spec.W, spec.D, spec.H))
    room = Room((W, D, H), room_type=room_type)
    t, eye = _WALL_T, np.eye(3)
    shell = [("floor", Box((W / 2, D / 2, -0.025), (W + 2 * t, D + 2 * t, 0.05)))]
    shell += [("wall", b) for b in (Box((W / 2, -t / 2, H / 2), (W + 2 * t, t, H)),
                                    Box((W / 2, D + t / 2, H / 2), (W + 2 * t, t, H)),
                                    Box((-t / 2, D / 2, H / 2), (t, D, H)), Box((W + t / 2, D / 2, H / 2), (t, D, H)))]
    wall_cols = draw_colors(rng, "wall")
    floor_cols = draw_colors(rng, "floor")
    for raw, b in shell:
        room.objects.append(_object(rng, raw, [b], floor_cols if raw == "floor" else wall_cols, eye, np.zeros(3),
                                    max_edge))
    _place_items(rng, room, spec.items, max_edge)
    if content == "cluttered":
        crng = np.random.default_rng([int(seed), ROOM_TYPES.index(room_type), _CLUTTER_STREAM])
        _place_items(crng, room, CLUTTER_ITEMS[room_type], max_edge)
        _surface_clutter(crng, room, max_edge)
    return room

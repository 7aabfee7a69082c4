"""The five room types and their furniture mixes; together they hold all 20 ScanNet benchmark classes.

    bedroom      bed, nightstands, wardrobe / cabinet, sometimes a desk set or an armchair, curtains, pictures
    living room  sofa(s), coffee table, armchairs, end tables, tv stand + tv, bookshelves, ottoman, curtains
    office       desk + office chair (+ monitor), bookshelves, file cabinets, meeting table, trash can, whiteboard
    kitchen      kitchen cabinets + counter + sink (+ wall cabinets), refrigerator, dining table + chairs
    bathroom     toilet, bathtub + shower curtain, vanity (cabinet, counter, sink) or pedestal sink + mirror

Every room has walls, a floor, one door and (bathroom: usually) windows. Items are placed in the listed
order (`data_tools.synthetic.room.make_room`); mount: "wall" = backed against a wall (or hung on it),
"corner" = against a wall at one of its ends, "free" = anywhere on the floor.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Dict, Tuple

from . import fixtures as fx
from . import furniture as fu
from . import storage as st

ROOM_TYPES: Tuple[str, ...] = ("bedroom", "living room", "office", "kitchen", "bathroom")

# ScanNet's own `sceneType` names (written to <scene>.txt)
SCANNET_SCENE_TYPES: Dict[str, str] = {"bedroom": "Bedroom / Hotel", "living room": "Living room / Lounge",
                                       "office": "Office", "kitchen": "Kitchen", "bathroom": "Bathroom"}


@dataclass(frozen=True)
class Item:
    """builder(rng, H) -> Group; mount "wall" | "corner" | "free"; count (lo, hi) inclusive, drawn when a
    uniform draw is below prob; jitter: std-dev (radians) of the yaw of a free item around its quarter turn."""

    builder: Callable
    mount: str
    count: Tuple[int, int] = (1, 1)
    prob: float = 1.0
    jitter: float = 0.0


@dataclass(frozen=True)
class RoomSpec:
    """Ranges (lo, hi) of the room width W (x), depth D (y) and height H (metres), and the items in order."""

    W: Tuple[float, float]
    D: Tuple[float, float]
    H: Tuple[float, float]
    items: Tuple[Item, ...] = field(default_factory=tuple)


def _windows(curtain_prob: float, count=(1, 2), prob: float = 1.0, small: bool = False) -> Item:
    return Item(partial(fx.window, curtain_prob=curtain_prob, small=small), "wall", count, prob)


ROOM_SPECS: Dict[str, RoomSpec] = {
    "bedroom": RoomSpec((3.2, 4.8), (3.0, 4.4), (2.4, 2.8), (
        Item(fx.door, "wall"), _windows(0.85), Item(fu.bed, "wall"), Item(fu.nightstand, "wall", (0, 2), 0.8),
        Item(st.wardrobe, "wall", (1, 1), 0.5), Item(st.cabinet, "wall", (1, 1), 0.5),
        Item(partial(fu.desk, with_chair=True), "wall", (1, 1), 0.35), Item(fu.armchair, "free", (1, 1), 0.3, 0.3),
        Item(fx.picture, "wall", (1, 3)), Item(fx.mirror, "wall", (1, 1), 0.2),
        Item(st.trash_can, "wall", (1, 1), 0.2))),
    "living room": RoomSpec((4.0, 6.0), (3.5, 5.0), (2.4, 2.9), (
        Item(fx.door, "wall"), _windows(0.85, (1, 3)), Item(fu.couch, "wall"), Item(fu.couch, "wall", (1, 1), 0.3),
        Item(st.tv_stand, "wall", (1, 1), 0.8), Item(fu.coffee_table, "free", (1, 1), 0.9, 0.1),
        Item(fu.armchair, "free", (1, 2), 0.7, 0.35), Item(fu.end_table, "wall", (1, 2), 0.6),
        Item(st.bookshelf, "wall", (1, 2), 0.6), Item(st.ottoman, "free", (1, 1), 0.4, 0.3),
        Item(st.cabinet, "wall", (1, 1), 0.3), Item(fx.picture, "wall", (1, 3)))),
    "office": RoomSpec((3.5, 5.5), (3.0, 4.5), (2.4, 2.9), (
        Item(fx.door, "wall"), _windows(0.4), Item(fu.desk, "wall", (1, 2)), Item(st.bookshelf, "wall", (1, 2)),
        Item(st.file_cabinet, "wall", (1, 2), 0.7), Item(fu.dining_set, "free", (1, 1), 0.3, 0.0),
        Item(st.trash_can, "free", (1, 1), 0.7), Item(fx.picture, "wall", (1, 2), 0.8),
        Item(fx.whiteboard, "wall", (1, 1), 0.3), Item(partial(st.refrigerator, mini=True), "wall", (1, 1), 0.2),
        Item(fu.couch, "wall", (1, 1), 0.15), Item(fu.chair, "free", (1, 1), 0.3, 0.4))),
    "kitchen": RoomSpec((3.5, 5.0), (3.0, 4.2), (2.4, 2.8), (
        Item(fx.door, "wall"), _windows(0.3, (1, 1)), Item(fx.kitchen_run, "corner"), Item(st.refrigerator, "corner"),
        Item(fu.dining_set, "free", (1, 1), 0.8, 0.0), Item(st.trash_can, "wall", (1, 1), 0.6),
        Item(partial(st.cabinet, raw="kitchen cabinet"), "wall", (1, 1), 0.3), Item(fx.picture, "wall", (1, 1), 0.3))),
    "bathroom": RoomSpec((2.4, 3.4), (2.1, 2.8), (2.3, 2.7), (
        Item(partial(fx.door, narrow=True), "wall"), _windows(0.1, (1, 1), 0.7, small=True),
        Item(fx.bathtub, "corner"), Item(fx.toilet, "wall"), Item(fx.vanity, "wall"),
        Item(st.trash_can, "wall", (1, 1), 0.4), Item(fx.picture, "wall", (1, 1), 0.2))),
}

# content "cluttered" (room.make_room): items placed after the basic ones, from their own random stream
_SHELF = Item(st.open_shelf, "wall", (1, 2), 0.8)
_FLOOR = Item(st.floor_clutter, "free", (1, 3), 0.9, 0.4)
CLUTTER_ITEMS: Dict[str, Tuple[Item, ...]] = {
    "bedroom": (_SHELF, Item(fu.floor_lamp, "corner", (1, 1), 0.5), Item(fu.coat_rack, "corner", (1, 1), 0.4),
                Item(st.floor_clutter, "wall", (1, 2), 0.8), _FLOOR),
    "living room": (_SHELF, Item(fu.floor_lamp, "corner", (1, 2), 0.8), _FLOOR),
    "office": (Item(st.open_shelf, "wall", (1, 3), 0.9), Item(fu.coat_rack, "corner", (1, 1), 0.5),
               Item(fu.floor_lamp, "corner", (1, 1), 0.3), Item(st.floor_clutter, "wall", (1, 3), 0.9), _FLOOR),
    "kitchen": (Item(st.open_shelf, "wall", (1, 1), 0.6), Item(st.floor_clutter, "wall", (1, 2), 0.6)),
    "bathroom": (Item(st.open_shelf, "wall", (1, 1), 0.5), Item(st.floor_clutter, "wall", (1, 1), 0.5)),
}

# nyu40 ids of every raw category the rooms use, as in the real scannetv2-labels.combined.tsv (checked
# against it by tests/test_synthetic_rooms.py); lets generation run without the tsv at hand.
RAW_TO_NYU40: Dict[str, int] = {
    "wall": 1, "floor": 2, "cabinet": 3, "kitchen cabinet": 3, "kitchen cabinets": 3, "bathroom cabinet": 3,
    "bathroom vanity": 3, "file cabinet": 3, "file cabinets": 3, "bed": 4, "chair": 5, "office chair": 5,
    "armchair": 5, "couch": 6, "sofa": 6, "table": 7, "coffee table": 7, "dining table": 7, "end table": 7,
    "side table": 7, "door": 8, "doors": 8, "window": 9, "bookshelf": 10, "bookshelves": 10, "picture": 11,
    "pictures": 11, "painting": 11, "poster": 11, "kitchen counter": 12, "counter": 12, "bathroom counter": 12,
    "desk": 14, "curtain": 16, "curtains": 16, "mirror": 19, "refrigerator": 24, "mini fridge": 24, "tv": 25,
    "shower curtain": 28, "whiteboard": 30, "nightstand": 32, "toilet": 33, "sink": 34, "bathtub": 36,
    "wardrobe": 39, "wardrobe closet": 39, "tv stand": 39, "ottoman": 39, "footstool": 39, "bench": 39,
    "trash can": 39, "trash bin": 39, "recycling bin": 39, "monitor": 40,
    # content "cluttered"
    "shelf": 15, "books": 23, "box": 29, "bag": 37, "lamp": 35, "clothes": 21, "paper": 26, "laundry basket": 40,
    "shoes": 40, "bottle": 40, "cup": 40, "coat rack": 40,
}

"""Per-pixel label images of the rendered frames, as ScanNet's `<scene>_2d-label-filt.zip`
(`data_tools.scannet.label_images`): each pixel holds the ScanNet label id (the `id` column of
`scannetv2-labels.combined.tsv`) of the object whose triangle it sees, 0 where it sees nothing."""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

# ScanNet label id (tsv column `id`) of every raw category the rooms use, as in the real
# scannetv2-labels.combined.tsv (checked against it by tests/test_threedmv_data.py).
RAW_TO_SCANNET_ID: Dict[str, int] = {
    "wall": 1, "floor": 3, "cabinet": 7, "kitchen cabinet": 29, "kitchen cabinets": 29, "bathroom cabinet": 1173,
    "bathroom vanity": 1164, "file cabinet": 75, "file cabinets": 75, "bed": 11, "chair": 2, "office chair": 10,
    "armchair": 23, "couch": 6, "sofa": 1313, "table": 4, "coffee table": 24, "dining table": 45, "end table": 44,
    "side table": 222, "door": 5, "doors": 5, "window": 16, "bookshelf": 18, "bookshelves": 18, "picture": 15,
    "pictures": 15, "painting": 1218, "poster": 1188, "kitchen counter": 159, "counter": 35,
    "bathroom counter": 1156, "desk": 9, "curtain": 21, "curtains": 21, "mirror": 71, "refrigerator": 27,
    "mini fridge": 165, "tv": 33, "shower curtain": 55, "whiteboard": 52, "nightstand": 34, "toilet": 17,
    "sink": 14, "bathtub": 42, "wardrobe": 99, "wardrobe closet": 99, "tv stand": 51, "ottoman": 67,
    "footstool": 85, "bench": 68, "trash can": 56, "trash bin": 1169, "recycling bin": 97, "monitor": 19,
    # content "cluttered"
    "shelf": 8, "books": 22, "box": 26, "bag": 47, "lamp": 28, "clothes": 32, "paper": 79, "laundry basket": 106,
    "shoes": 63, "bottle": 65, "cup": 130, "coat rack": 1182,
}


def object_label_ids(raw_categories: Sequence[str]) -> np.ndarray:
    """uint16 [O]: the ScanNet label id of each object's raw category."""
    bad = sorted({r for r in raw_categories if r not in RAW_TO_SCANNET_ID})
    if bad:
        raise ValueError(f"raw categories without a ScanNet label id: {bad}")
    return np.array([RAW_TO_SCANNET_ID[r] for r in raw_categories], np.uint16)


def label_frame(tri: np.ndarray, face_label: np.ndarray) -> np.ndarray:
    """uint16 [H,W]: face_label uint16 [M] of the triangle tri int [H,W] (-1 = no hit -> 0) of each pixel."""
    t = np.asarray(tri, np.int64)
    out = np.zeros(t.shape, np.uint16)
    hit = t >= 0
    out[hit] = np.asarray(face_label, np.uint16)[t[hit]]
    return out


def builtin_label_lut() -> np.ndarray:
    """uint8 [65536]: nyu40 id of every ScanNet label id the synthetic rooms write (0 elsewhere), from the
    built-in tables (RAW_TO_SCANNET_ID, room_types.RAW_TO_NYU40); the same as
    `data_tools.scannet.label_images.label_id_lut(tsv)` on those ids with the real tsv (tested)."""
    from .room_types import RAW_TO_NYU40
    lut = np.zeros(65536, np.uint8)
    for raw, sid in RAW_TO_SCANNET_ID.items():
        lut[sid] = RAW_TO_NYU40[raw]
    return lut

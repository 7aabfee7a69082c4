"""ScanNet labels: `scannetv2-labels.combined.tsv`, aggregation/segs json -> per-vertex labels.

* `LabelMap.from_tsv(path)` keys on `raw_category` (the string annotators typed, which is
  what `*.aggregation.json` stores) and gives the nyu40 id and the ScanNet-20 benchmark
  class index (0..19, `IGNORE` = 255 for everything else, including unannotated).
* `read_segs(path)` -> int64 [N_vertices] segment ids (`segIndices`).
* `read_aggregation(path)` -> list of (object_id, raw label, segment ids).
* `vertex_instances_and_labels(...)` -> per-vertex instance id (object_id + 1, 0 = none)
  and raw category string index.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np

PathLike = Union[str, os.PathLike]

IGNORE = 255
# The 20 ScanNet benchmark classes as nyu40 ids, in benchmark order.
SCANNET20_NYU40_IDS: Tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)
SCANNET20_NAMES: Tuple[str, ...] = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "picture",
    "counter", "desk", "curtain", "refrigerator", "shower curtain", "toilet", "sink", "bathtub", "otherfurniture")
# The colours the ScanNet benchmark uses for those classes (its visualisation palette), uint8 RGB, same order.
SCANNET20_COLORS: np.ndarray = np.array([
    (174, 199, 232), (152, 223, 138), (31, 119, 180), (255, 187, 120), (188, 189, 34), (140, 86, 75),
    (255, 152, 150), (214, 39, 40), (197, 176, 213), (148, 103, 189), (196, 156, 148), (23, 190, 207),
    (247, 182, 210), (219, 219, 141), (255, 127, 14), (158, 218, 229), (44, 160, 44), (112, 128, 144),
    (227, 119, 194), (82, 84, 163)], np.uint8)
SCANNET20_COLORS.setflags(write=False)


def nyu40_to_scannet20(nyu40: np.ndarray) -> np.ndarray:
    """uint8 [...] ScanNet-20 index (0..19) for nyu40 ids [...]; IGNORE (255) for the rest."""
    lut = np.full(256, IGNORE, np.uint8)
    for k, nid in enumerate(SCANNET20_NYU40_IDS):
        lut[nid] = k
    a = np.asarray(nyu40).astype(np.int64)
    if a.size and (a.min() < 0 or a.max() > 255):
        raise ValueError(f"nyu40: expected ids in [0, 255], got range [{a.min()}, {a.max()}]")
    return lut[a]


@dataclass
class LabelMap:
    """raw_category -> row of the combined tsv (nyu40id, nyu40class, category, ...)."""

    rows: Dict[str, Dict[str, str]] = field(default_factory=dict)

    @classmethod
    def from_tsv(cls, path: PathLike) -> "LabelMap":
        path = os.fspath(path)
        try:
            with open(path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f, delimiter="\t")
                if (reader.fieldnames is None or "raw_category" not in reader.fieldnames
                        or "nyu40id" not in reader.fieldnames):
                    raise ValueError(f"{path}: expected a tsv with columns raw_category and nyu40id, "
                                     f"got {reader.fieldnames}")
                rows = {r["raw_category"]: r for r in reader}
        except (UnicodeDecodeError, csv.Error) as e:  # binary garbage, NUL bytes, a runaway quoted field
            raise ValueError(f"{path}: not a readable label tsv: {e}") from e
        for line, r in enumerate(rows.values(), 2):  # checked once here, not at every lookup
            for col in ("nyu40id", "count"):
                v = r.get(col)
                if v and not (v.strip().isdigit() and (col != "nyu40id" or int(v.strip()) <= 255)):
                    raise ValueError(f"{path}: row {line}: {col} must be a non-negative integer"
                                     f"{' <= 255' if col == 'nyu40id' else ''}, got {v[:40]!r}")
                if v:
                    r[col] = v.strip()  # the lookups call int() on it (int() strips fewer characters)
        return cls(rows)

    def nyu40(self, raw_category: str) -> int:
        """nyu40 id of a raw category; 0 if unknown."""
        r = self.rows.get(raw_category)
        if r is None or not r.get("nyu40id"):
            return 0
        return int(r["nyu40id"])

    def nyu40class(self, raw_category: str) -> str:
        r = self.rows.get(raw_category)
        return r["nyu40class"] if r is not None else "unannotated"

    def scannet20(self, raw_category: str) -> int:
        return int(nyu40_to_scannet20(np.array([self.nyu40(raw_category)]))[0])

    def raw_categories_for_nyu40(self, nyu40: int) -> List[str]:
        """Raw categories mapping to a nyu40 id, most frequent first (by the tsv `count`)."""
        rs = [r for r in self.rows.values() if r.get("nyu40id") == str(nyu40)]
        rs.sort(key=lambda r: -int(r.get("count") or 0))
        return [r["raw_category"] for r in rs]


def read_segs(path: PathLike) -> np.ndarray:
    """int64 [N_vertices] over-segmentation ids from `*_vh_clean_2.0.010000.segs.json`."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        segs = np.asarray(d["segIndices"], np.int64)
    except (KeyError, TypeError, ValueError, OverflowError, RecursionError) as e:  # ValueError: also bad json
        raise ValueError(f"{path}: not a ScanNet segs json (needs 'segIndices'): {e}") from e
    if segs.ndim != 1:
        raise ValueError(f"{path}: segIndices must be a flat list of ints, got shape {list(segs.shape)}")
    return segs


def read_aggregation(path: PathLike) -> List[Tuple[int, str, List[int]]]:
    """[(object_id, raw label, segment ids)] from `*.aggregation.json` (`segGroups`)."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        return [(int(g["objectId"]), str(g["label"]), [int(s) for s in g["segments"]]) for g in d["segGroups"]]
    except (KeyError, TypeError, ValueError, OverflowError, RecursionError) as e:  # ValueError: also bad json
        raise ValueError(f"{path}: not a ScanNet aggregation json (needs segGroups with "
                         f"objectId/label/segments): {e}") from e


def vertex_instances_and_labels(segs: np.ndarray, groups: Sequence[Tuple[int, str, List[int]]],
                                label_map: LabelMap) -> Tuple[np.ndarray, np.ndarray, List[str]]:
    """Per-vertex (instance int32 [N] = object_id + 1 or 0, nyu40 uint16 [N], raw label per instance).

    segs: int64 [N] segment id per vertex; groups: from `read_aggregation`.
    """
    segs = np.asarray(segs)
    inst = np.zeros(len(segs), np.int32)
    nyu = np.zeros(len(segs), np.uint16)
    if len(segs) == 0:
        return inst, nyu, []
    seg_ids, inverse = np.unique(segs, return_inverse=True)
    seg_inst = np.zeros(len(seg_ids), np.int32)
    seg_nyu = np.zeros(len(seg_ids), np.uint16)
    names = []
    for obj, label, seglist in groups:
        idx = np.searchsorted(seg_ids, seglist)
        ok = (idx < len(seg_ids)) & (seg_ids[np.minimum(idx, len(seg_ids) - 1)] == np.asarray(seglist))
        seg_inst[idx[ok]] = obj + 1
        seg_nyu[idx[ok]] = label_map.nyu40(label)
        names.append(label)
    return seg_inst[inverse], seg_nyu[inverse], names

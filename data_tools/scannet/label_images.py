"""ScanNet's per-frame 2D label images: `<scene>_2d-label-filt.zip` holding `label-filt/<frame>.png`.

Each PNG is a 16-bit grey image (the colour frame's size in our data) of ScanNet label ids: the `id`
column of `scannetv2-labels.combined.tsv` (not nyu40), 0 = unannotated; `<frame>` is the `.sens` frame
index (`0.png`, `1.png`, ...). `label_id_lut` maps the ids to nyu40 through the tsv.

    with LabelImages(zip_path) as li:
        li.frames()                    # sorted frame indices
        li.read(5)                     # uint16 [H,W] label ids of frame 5
    nyu40 = label_id_lut(tsv)[li.read(5)]
"""
from __future__ import annotations

import csv
import io
import os
import re
import zipfile
from typing import Dict, List, Mapping, Union

import numpy as np
from PIL import Image

from sparse3d.utils.atomic_io import atomic_open

PathLike = Union[str, os.PathLike]
_NAME = re.compile(r"^label-filt/(\d+)\.png$")


def label_zip_name(scene_id: str) -> str:
    """The file name ScanNet gives a scene's filtered 2D labels."""
    return f"{scene_id}_2d-label-filt.zip"


def encode_label_png(labels: np.ndarray) -> bytes:
    """16-bit grey PNG bytes of label ids int [H,W] (0..65535)."""
    a = np.asarray(labels)
    if a.ndim != 2:
        raise ValueError(f"labels: expected a 2D [H,W] image, got shape {list(a.shape)}")
    if a.size and (a.min() < 0 or a.max() > 65535):
        raise ValueError(f"labels: expected ids in [0, 65535], got range [{a.min()}, {a.max()}]")
    buf = io.BytesIO()
    Image.fromarray(a.astype(np.uint16)).save(buf, format="PNG")
    return buf.getvalue()


def write_label_images(path: PathLike, frames: Mapping[int, np.ndarray]) -> None:
    """Write `<scene>_2d-label-filt.zip` at path (atomically): frames maps frame index -> label ids [H,W]."""
    with atomic_open(path, "wb") as f:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:  # PNGs are already deflated, as ScanNet's zips
            for k in sorted(frames):
                z.writestr(f"label-filt/{int(k)}.png", encode_label_png(frames[k]))


class LabelImages:
    """Reader of a `<scene>_2d-label-filt.zip` (see the module docstring)."""

    def __init__(self, path: PathLike):
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"label images: no file {self.path}")
        try:
            self._zip = zipfile.ZipFile(self.path)
        except zipfile.BadZipFile as e:
            raise ValueError(f"{self.path}: not a zip file ({e})") from None
        self._names: Dict[int, str] = {}
        for n in self._zip.namelist():
            m = _NAME.match(n)
            if m:
                self._names[int(m.group(1))] = n
        if not self._names:
            raise ValueError(f"{self.path}: expected label-filt/<frame>.png entries, found none")

    def frames(self) -> List[int]:
        """Sorted frame indices that have a label image."""
        return sorted(self._names)

    def read(self, frame: int) -> np.ndarray:
        """uint16 [H,W] ScanNet label ids of frame `frame`."""
        if frame not in self._names:
            raise KeyError(f"{self.path}: no label image for frame {frame} (has {len(self._names)} frames)")
        with Image.open(io.BytesIO(self._zip.read(self._names[frame]))) as im:
            a = np.asarray(im)
        if a.ndim != 2:
            raise ValueError(f"{self.path}: {self._names[frame]}: expected a grey image, got shape {list(a.shape)}")
        return a.astype(np.uint16)

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> "LabelImages":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def label_id_lut(tsv: PathLike) -> np.ndarray:
    """uint8 [65536]: nyu40 id of every ScanNet label id of `scannetv2-labels.combined.tsv` (0 elsewhere)."""
    tsv = os.fspath(tsv)
    lut = np.zeros(65536, np.uint8)
    with open(tsv, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t")
        if reader.fieldnames is None or "id" not in reader.fieldnames or "nyu40id" not in reader.fieldnames:
            raise ValueError(f"{tsv}: expected the columns 'id' and 'nyu40id', got {reader.fieldnames}")
        for row in reader:
            if row["id"].strip() and row["nyu40id"].strip():
                lut[int(row["id"])] = int(row["nyu40id"])
    return lut

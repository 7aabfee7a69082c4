"""Label colouring: per-voxel or per-vertex class labels -> colours of a given palette, and the legend.

The palette and the class names are arguments (vis knows no dataset; the ScanNet-20 ones live in
data_tools/scannet/labels.py and the command line passes them)::

    pal = Palette(SCANNET20_COLORS, SCANNET20_NAMES, ignore=255)
    verts, faces, vlabels = voxel_mesh(coords, labels)           # cubes, exposed faces only
    panel = LabelPanel("prediction", verts, faces, vlabels)
    legend(pal, [panel])                                         # [(class, name, rgb, counts)], present only

Labels are class indices 0..K-1 of the palette, or ``ignore`` (drawn in ``Palette.ignore_color``,
legend entry ``Palette.ignore_name``). Anything else is an error naming the argument.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

IGNORE_COLOR = (200, 200, 200)  # uint8 RGB of ignore-labelled voxels / vertices


@dataclass(frozen=True)
class Palette:
    """colors uint8 [K, 3] (RGB), names K strings; ``ignore``: the label drawn grey (not a class)."""
    colors: np.ndarray
    names: Tuple[str, ...]
    ignore: int = 255
    ignore_name: str = "unlabelled"
    ignore_color: Tuple[int, int, int] = IGNORE_COLOR
    class_ids: Optional[Tuple[int, ...]] = field(default=None)  # file id of each class (e.g. nyu40), see from_ids

    def __post_init__(self):
        c = np.asarray(self.colors)
        if c.ndim != 2 or c.shape[1] != 3 or len(c) == 0:
            raise ValueError(f"palette colors must be uint8 [K, 3] with K >= 1, got shape {c.shape}")
        if not np.issubdtype(c.dtype, np.integer) or c.min() < 0 or c.max() > 255:
            raise ValueError(f"palette colors must be integers in [0, 255] (uint8 RGB), got dtype {c.dtype} "
                             f"range [{c.min()}, {c.max()}]")
        names = tuple(str(n) for n in self.names)
        if len(names) != len(c):
            raise ValueError(f"names must give one name per palette colour ({len(c)}), got {len(names)}")
        if 0 <= self.ignore < len(c):
            raise ValueError(f"ignore must not be a class index (0..{len(c) - 1}), got {self.ignore}")
        if self.class_ids is not None and len(self.class_ids) != len(c):
            raise ValueError(f"class_ids must give one id per palette colour ({len(c)}), got {len(self.class_ids)}")
        object.__setattr__(self, "colors", c.astype(np.uint8))
        object.__setattr__(self, "names", names)

    def __len__(self) -> int:
        return len(self.colors)

    def lookup(self) -> np.ndarray:
        """uint8 [max(K, ignore + 1), 3]: row k = colour of label k (the ignore row grey)."""
        lut = np.zeros((max(len(self), self.ignore + 1), 3), np.uint8)
        lut[:len(self)] = self.colors
        lut[self.ignore] = self.ignore_color
        return lut

    def from_ids(self, ids: np.ndarray, name: str = "ids") -> np.ndarray:
        """Class indices (uint8 [N], ignore for ids of no class) of file ids (e.g. nyu40 ids of a ScanNet
        submission): needs ``class_ids``. Negative ids are an error naming ``name``."""
        if self.class_ids is None:
            raise ValueError("this palette has no class_ids: pass Palette(..., class_ids=...) to read file ids")
        a = np.asarray(ids)
        if a.size and (not np.issubdtype(a.dtype, np.integer) or a.min() < 0):
            raise ValueError(f"{name} must be non-negative integer ids, got dtype {a.dtype} min {a.min()}")
        lut = np.full(max(max(self.class_ids), int(a.max()) if a.size else 0) + 1, self.ignore, np.int64)
        lut[list(self.class_ids)] = np.arange(len(self))
        return lut[a].astype(np.uint8 if self.ignore < 256 else np.int64)


def check_labels(labels, palette: Palette, name: str = "labels", n: Optional[int] = None,
                 of: str = "voxel") -> np.ndarray:
    """``labels`` as int64 [N] after checking: 1-D integers, each a class index 0..K-1 or palette.ignore,
    ``n`` of them when given (one per ``of``). Errors name ``name``."""
    a = np.asarray(labels)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array [N] of class indices, got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must be integer class indices, got dtype {a.dtype}")
    if n is not None and len(a) != n:
        raise ValueError(f"{name} must have one label per {of} ({n}), got {len(a)}")
    a = a.astype(np.int64)
    bad = (a < 0) | ((a >= len(palette)) & (a != palette.ignore))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{name} must be class indices in [0, {len(palette)}) (the palette's {len(palette)} "
                         f"colours) or {palette.ignore} (ignore), got {a[i]} at index {i} "
                         f"({int(bad.sum())} such labels)")
    return a


def label_colors(labels, palette: Palette, name: str = "labels") -> np.ndarray:
    """uint8 [N, 3] colour of each label (checked by :func:`check_labels`)."""
    return palette.lookup()[check_labels(labels, palette, name)]


def check_coords(coords, name: str = "coords") -> np.ndarray:
    """int64 [N, 3] voxel coordinates (integers; duplicates are an error)."""
    c = np.asarray(coords)
    if c.ndim != 2 or c.shape[1] != 3:
        raise ValueError(f"{name} must be integer voxel coordinates [N, 3], got shape {c.shape}")
    if c.size and not np.issubdtype(c.dtype, np.integer):
        raise ValueError(f"{name} must be integer voxel coordinates, got dtype {c.dtype}")
    c = c.astype(np.int64)
    n_unique = len(np.unique(c, axis=0))
    if n_unique != len(c):
        raise ValueError(f"{name} must not repeat a voxel, got {len(c) - n_unique} duplicates")
    return c


# the six faces of a unit cube: (axis, +1/-1); corners in an order whose normal points outwards
_E = np.eye(3, dtype=np.int64)


def _face_corners(axis: int, sign: int) -> np.ndarray:
    b, c = _E[(axis + 1) % 3], _E[(axis + 2) % 3]
    base = _E[axis] if sign > 0 else np.zeros(3, np.int64)
    quad = np.stack([base, base + b, base + b + c, base + c])
    return quad if sign > 0 else quad[::-1].copy()


def voxel_mesh(coords, labels, voxel_size: float = 1.0, origin: Sequence[float] = (0.0, 0.0, 0.0),
               name: str = "labels") -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cubes of the voxels, only the faces not shared with another voxel; each face has its own 4
    vertices carrying its voxel's label.

    coords int [N, 3] (voxel indices; world = origin + voxel_size * coords), labels int [N].
    Returns (verts float64 [4 F, 3], faces int32 [2 F, 3], vertex labels int64 [4 F])."""
    c = check_coords(coords)
    lab = np.asarray(labels)
    if lab.ndim != 1 or len(lab) != len(c):
        raise ValueError(f"{name} must have one label per voxel of coords ({len(c)}), got shape {lab.shape}")
    lab = lab.astype(np.int64)
    if len(c) == 0:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int32), np.zeros(0, np.int64)
    lo = c.min(0) - 1
    dims = c.max(0) - lo + 2

    def key(x: np.ndarray) -> np.ndarray:  # a voxel's (or its neighbour's) index in the padded box
        return ((x[:, 0] - lo[0]) * dims[1] + (x[:, 1] - lo[1])) * dims[2] + (x[:, 2] - lo[2])
    keys = np.sort(key(c))
    verts, vlab = [], []
    for axis in range(3):
        for sign in (1, -1):
            nb = key(c + sign * _E[axis])
            pos = np.clip(np.searchsorted(keys, nb), 0, len(keys) - 1)
            exposed = keys[pos] != nb
            if exposed.any():
                verts.append((c[exposed][:, None, :] + _face_corners(axis, sign)[None]).reshape(-1, 3))
                vlab.append(np.repeat(lab[exposed], 4))
    v = np.concatenate(verts).astype(np.float64) * float(voxel_size) + np.asarray(origin, np.float64)
    q = np.arange(len(v) // 4, dtype=np.int32)[:, None] * 4
    faces = np.concatenate([q + [0, 1, 2], q + [0, 2, 3]], 1).reshape(-1, 3)
    return v, faces, np.concatenate(vlab)


@dataclass(frozen=True)
class LabelPanel:
    """One panel of a labelled view: a mesh whose vertices carry class labels.
    verts float [V, 3], faces int [F, 3], labels int [V] (class index or the palette's ignore)."""
    title: str
    verts: np.ndarray
    faces: np.ndarray
    labels: np.ndarray


def voxel_panel(title: str, coords, labels, palette: Palette, voxel_size: float = 1.0,
                origin: Sequence[float] = (0.0, 0.0, 0.0), name: str = "labels",
                hide_ignored: bool = False) -> LabelPanel:
    """A panel of voxels (coords int [N, 3], labels [N], checked against ``palette``); hide_ignored
    drops the voxels labelled ``palette.ignore`` (e.g. a ceiling no class covers)."""
    c = np.asarray(coords)
    lab = check_labels(labels, palette, name, n=len(c) if c.ndim == 2 else None)
    if hide_ignored:
        keep = lab != palette.ignore
        c, lab = c[keep], lab[keep]
    v, f, vl = voxel_mesh(c, lab, voxel_size, origin, name)
    return LabelPanel(title, v, f, vl)


def mesh_panel(title: str, verts, faces, labels, palette: Palette, name: str = "labels",
               hide_ignored: bool = False) -> LabelPanel:
    """A panel of a mesh whose vertices carry labels (verts [V, 3], faces [F, 3], labels [V]);
    hide_ignored drops the faces with an ignore-labelled vertex."""
    v = np.asarray(verts, np.float64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"verts must be float [V, 3], got shape {v.shape}")
    f = np.asarray(faces).astype(np.int64).reshape(-1, 3)
    lab = check_labels(labels, palette, name, n=len(v), of="vertex")
    if hide_ignored and len(f):
        f = f[(lab[f] != palette.ignore).all(1)]
    return LabelPanel(title, v, f.astype(np.int32), lab)


def legend(palette: Palette, panels: Sequence[LabelPanel]) -> List[Tuple[int, str, Tuple[int, int, int], List[int]]]:
    """The classes present in any panel, in palette order, then ignore when present:
    (label, name, rgb, [faces of that label in each panel]) (see :func:`panel_counts`)."""
    counts = [panel_counts(p) for p in panels]
    present = sorted({k for c in counts for k in c})
    out = []
    for k in [k for k in present if k != palette.ignore] + ([palette.ignore] if palette.ignore in present else []):
        name = palette.ignore_name if k == palette.ignore else palette.names[k]
        rgb = tuple(int(x) for x in palette.lookup()[k])
        out.append((k, name, rgb, [c.get(k, 0) for c in counts]))
    return out


def panel_counts(panel: LabelPanel) -> dict:
    """{label: number of faces} of the panel's visible geometry (a face counts for the label of its
    first vertex)."""
    if len(panel.faces) == 0:
        return {}
    lab = np.asarray(panel.labels)[np.asarray(panel.faces)[:, 0]]
    ks, ns = np.unique(lab, return_counts=True)
    return {int(k): int(n) for k, n in zip(ks, ns)}


def legend_text(palette: Palette, panels: Sequence[LabelPanel]) -> str:
    """The legend as text lines: ``  wall           #aec7e8  faces: prediction 120, ground truth 118``."""
    rows = legend(palette, panels)
    if not rows:
        return "legend: (no labelled geometry)"
    width = max(len(r[1]) for r in rows)
    titles = [p.title for p in panels]
    lines = ["legend (classes present; faces per panel):"]
    for k, name, rgb, counts in rows:
        per = ", ".join(f"{t} {n}" for t, n in zip(titles, counts))
        lines.append(f"  {name:<{width}}  #{rgb[0]:02x}{rgb[1]:02x}{rgb[2]:02x}  {per}")
    return "\n".join(lines)


def read_id_file(path: str, n: Optional[int] = None, what: str = "vertices") -> np.ndarray:
    """int64 [N] ids of a one-id-per-line text file (a ScanNet benchmark submission ``<scene>.txt``);
    ``n``: the number of lines expected (one per vertex of the mesh). Errors name the file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"label file {path!r} does not exist")
    with open(path) as f:
        lines = f.read().split()
    try:
        ids = np.array([int(s) for s in lines], np.int64)
    except ValueError:
        bad = next(i for i, s in enumerate(lines) if not s.lstrip("-").isdigit())
        raise ValueError(f"{path}: line {bad + 1} must be an integer id, got {lines[bad]!r}") from None
    if n is not None and len(ids) != n:
        raise ValueError(f"{path}: expected one id per line for each of the {n} {what}, got {len(ids)} lines")
    if ids.size and ids.min() < 0:
        raise ValueError(f"{path}: ids must be >= 0, got {int(ids.min())} on line {int(np.argmin(ids)) + 1}")
    return ids

"""Binary PLY meshes as ScanNet writes them (`*_vh_clean_2.ply`, `*_vh_clean_2.labels.ply`).

ScanNet layout (binary_little_endian 1.0, +Z up, metres)::

    element vertex N
    property float x / y / z
    property uchar red / green / blue / alpha
    [property ushort label]                      (labels.ply only: nyu40 id, 0 = unannotated)
    element face M
    property list uchar int vertex_indices        (triangles)

`read_ply` reads any binary little/big endian PLY whose vertex properties are scalars and
whose face element is one list property; `write_ply` (`sparse3d.utils.mesh`, re-exported) writes
the ScanNet layout.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Optional, Union

import numpy as np

from sparse3d.utils.mesh import write_ply  # noqa: F401 - the one PLY writer, re-exported here

__all__ = ["PlyFormatError", "PlyMesh", "read_ply", "write_ply"]

PathLike = Union[str, os.PathLike]

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}


class PlyFormatError(ValueError):
    """A PLY file is corrupt, truncated or not in a supported layout; names the file."""


@dataclass
class PlyMesh:
    """vertices float32 [N,3]; faces int32 [M,3]; colors uint8 [N,4] (RGBA) or None;
    labels uint16 [N] or None; extra: other per-vertex properties by name."""

    vertices: np.ndarray
    faces: np.ndarray
    colors: Optional[np.ndarray] = None
    labels: Optional[np.ndarray] = None
    extra: Optional[Dict[str, np.ndarray]] = None


def _ply_type(name: str, path: str, lineno: int) -> str:
    if name not in _PLY_TYPES:
        raise PlyFormatError(f"{path}: header line {lineno}: unknown property type {name!r}")
    return _PLY_TYPES[name]


def _parse_header(header, path: str):
    """(format, [(element name, count, [(prop, dtype) or ('list', count_t, item_t, name)])]) of the header
    lines; PlyFormatError naming the file and line for anything malformed."""
    fmt = None
    elements: list = []
    for lineno, line in enumerate(header, 1):
        tok = line.split()
        if not tok or tok[0] in ("ply", "comment", "obj_info"):
            continue
        bad = PlyFormatError(f"{path}: header line {lineno} is malformed: {line[:80]!r}")
        if tok[0] == "format":
            if len(tok) < 2:
                raise bad
            fmt = tok[1]
        elif tok[0] == "element":
            if len(tok) != 3 or not tok[2].isdigit():
                raise bad
            elements.append((tok[1], int(tok[2]), []))
        elif tok[0] == "property":
            if not elements:
                raise PlyFormatError(f"{path}: property before any element")
            if len(tok) >= 2 and tok[1] == "list":
                if len(tok) != 5:
                    raise bad
                ct, it = _ply_type(tok[2], path, lineno), _ply_type(tok[3], path, lineno)
                if ct[0] == "f":
                    raise PlyFormatError(f"{path}: header line {lineno}: list count type {tok[2]!r} is not an integer")
                elements[-1][2].append(("list", ct, it, tok[4]))
            else:
                if len(tok) != 3:
                    raise bad
                elements[-1][2].append((tok[2], _ply_type(tok[1], path, lineno)))
    return fmt, elements


def read_ply(path: PathLike) -> PlyMesh:
    """Read a binary PLY mesh (ScanNet layout or compatible)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise PlyFormatError(f"{path}: not a PLY file (missing 'ply' magic or 'end_header')")
    nl = data.find(b"\n", end)
    if nl < 0:
        raise PlyFormatError(f"{path}: no line break after 'end_header'")
    header = data[:end].decode("ascii", errors="replace").splitlines()
    body = memoryview(data)[nl + 1:]
    fmt, elements = _parse_header(header, path)
    if fmt not in ("binary_little_endian", "binary_big_endian"):
        raise PlyFormatError(f"{path}: expected a binary PLY, got format {fmt!r} (use trimesh for ascii)")
    bo = "<" if fmt == "binary_little_endian" else ">"
    pos = 0
    out: Dict[str, np.ndarray] = {}
    faces = np.zeros((0, 3), np.int32)
    for name, count, props in elements:
        if any(p[0] == "list" for p in props):
            if len(props) != 1:
                raise PlyFormatError(f"{path}: element {name!r}: only a single list property is supported")
            _, ct, it, _pname = props[0]
            ct_size, it_size = np.dtype(ct).itemsize, np.dtype(it).itemsize
            # fast path: every list has 3 entries
            rec = np.dtype([("n", bo + ct), ("v", bo + it, (3,))])
            need = count * rec.itemsize
            if len(body) - pos >= need and count > 0:
                arr = np.frombuffer(body[pos:pos + need], rec)
                if np.all(arr["n"] == 3):
                    if name == "face":
                        faces = arr["v"].astype(np.int32)
                    pos += need
                    continue
            lists = []
            for k in range(count):
                if pos + ct_size > len(body):
                    raise PlyFormatError(f"{path}: truncated in element {name!r} item {k}")
                n = int(np.frombuffer(body[pos:pos + ct_size], bo + ct)[0])
                pos += ct_size
                if n < 0:
                    raise PlyFormatError(f"{path}: element {name!r} item {k}: negative list length {n}")
                if pos + n * it_size > len(body):
                    raise PlyFormatError(f"{path}: truncated in element {name!r} item {k}")
                lists.append(np.frombuffer(body[pos:pos + n * it_size], bo + it))
                pos += n * it_size
            if name == "face":
                tris = []
                for l in lists:  # fan-triangulate polygons
                    for j in range(1, len(l) - 1):
                        tris.append((l[0], l[j], l[j + 1]))
                faces = np.asarray(tris, np.float64).reshape(-1, 3)  # any index type, range-checked below
                if faces.size and not (np.all(faces >= 0) and np.all(faces < 2**31)):
                    raise PlyFormatError(f"{path}: face indices out of range")
                faces = faces.astype(np.int32)
        else:
            try:
                dt = np.dtype([(p[0], bo + p[1]) for p in props])
            except (ValueError, TypeError) as e:  # e.g. a property name given twice
                raise PlyFormatError(f"{path}: element {name!r}: bad properties: {e}") from e
            if dt.itemsize == 0:  # no properties: the element takes no bytes
                continue
            need = count * dt.itemsize
            if len(body) - pos < need:
                raise PlyFormatError(f"{path}: truncated in element {name!r}: expected {need} bytes, "
                                     f"got {len(body) - pos}")
            arr = np.frombuffer(body[pos:pos + need], dt)
            pos += need
            if name == "vertex":
                for p in props:
                    out[p[0]] = arr[p[0]].astype(np.dtype(p[1]).newbyteorder("="))
    for k in ("x", "y", "z"):
        if k not in out:
            raise PlyFormatError(f"{path}: vertex element lacks property {k!r}")
    verts = np.stack([out.pop("x"), out.pop("y"), out.pop("z")], 1).astype(np.float32)
    colors = None
    if all(k in out for k in ("red", "green", "blue")):
        a = out.pop("alpha") if "alpha" in out else np.full(len(verts), 255, np.uint8)
        colors = np.stack([out.pop("red"), out.pop("green"), out.pop("blue"), a], 1).astype(np.uint8)
    labels = out.pop("label").astype(np.uint16) if "label" in out else None
    if faces.size and (faces.min() < 0 or faces.max() >= len(verts)):
        raise PlyFormatError(f"{path}: face indices out of range [0, {len(verts)})")
    return PlyMesh(verts, faces, colors, labels, out or None)

"""Dense triangle meshes of boxes: every box face is a regular grid, so that no edge is longer than
`max_edge` (real ScanNet `_vh_clean_2.ply` meshes are dense; per-vertex evaluation needs vertices
spread over every surface, not 8 corners per box).

Each face of size a x b becomes ceil(a / h) x ceil(b / h) cells of two triangles, h = max_edge / sqrt(2),
so the cell diagonals stay <= max_edge too. Vertices on a box's edges are shared by its faces (one
welded, closed surface per box); boxes never share vertices, so every vertex belongs to one part.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

# (normal axis, sign, in-plane axis a, in-plane axis b) with e_a x e_b = sign * e_axis (outward, CCW)
_FACES = ((0, 1, 1, 2), (0, -1, 2, 1), (1, 1, 2, 0), (1, -1, 0, 2), (2, 1, 0, 1), (2, -1, 1, 0))


def _face_grid(center: np.ndarray, size: np.ndarray, axis: int, sign: int, a: int, b: int, h: float
               ) -> Tuple[np.ndarray, np.ndarray]:
    na, nb = max(1, int(np.ceil(size[a] / h - 1e-9))), max(1, int(np.ceil(size[b] / h - 1e-9)))
    ua = np.linspace(-size[a] / 2, size[a] / 2, na + 1)
    vb = np.linspace(-size[b] / 2, size[b] / 2, nb + 1)
    pts = np.zeros(((na + 1) * (nb + 1), 3))
    pts[:, a] = np.repeat(ua, nb + 1)
    pts[:, b] = np.tile(vb, na + 1)
    pts[:, axis] = sign * size[axis] / 2
    i, j = np.meshgrid(np.arange(na), np.arange(nb), indexing="ij")
    p00 = (i * (nb + 1) + j).ravel()
    p10, p01 = p00 + nb + 1, p00 + 1
    p11 = p10 + 1
    tri = np.concatenate([np.stack([p00, p10, p11], 1), np.stack([p00, p11, p01], 1)])
    return pts + center, tri


def box_grid_mesh(centers: Sequence, sizes: Sequence, max_edge: float
                  ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closed grid meshes of axis-aligned boxes.

    centers, sizes: float [B,3] (sizes > 0); max_edge: metres (> 0).
    Returns vertices float64 [V,3], faces int64 [F,3] (outward, counter-clockwise), box index int64 [V].
    """
    if not max_edge > 0:
        raise ValueError(f"max_edge must be > 0, got {max_edge}")
    centers, sizes = np.asarray(centers, float).reshape(-1, 3), np.asarray(sizes, float).reshape(-1, 3)
    if centers.shape != sizes.shape:
        raise ValueError(f"centers/sizes must have the same shape [B,3], got {list(centers.shape)}, "
                         f"{list(sizes.shape)}")
    if (sizes <= 0).any():
        raise ValueError(f"sizes must be > 0, got a box of size {sizes[(sizes <= 0).any(1)][0].tolist()}")
    h = max_edge / np.sqrt(2.0)
    vs: List[np.ndarray] = []
    fs: List[np.ndarray] = []
    part: List[np.ndarray] = []
    nv = 0
    for k, (c, s) in enumerate(zip(centers, sizes)):
        bv, bf = [], []
        off = 0
        for axis, sign, a, b in _FACES:
            p, t = _face_grid(c, s, axis, sign, a, b, h)
            bv.append(p)
            bf.append(t + off)
            off += len(p)
        v, f = np.concatenate(bv), np.concatenate(bf)
        # weld the face grids' shared edges: quantise relative to the box (1e-7 of its size)
        q = np.round((v - c) / (s.max() * 1e-7)).astype(np.int64)
        uq, first, inv = np.unique(q, axis=0, return_index=True, return_inverse=True)
        inv = inv.reshape(-1)
        vs.append(v[first])
        fs.append(inv[f] + nv)
        part.append(np.full(len(uq), k, np.int64))
        nv += len(uq)
    return np.concatenate(vs), np.concatenate(fs), np.concatenate(part)


def edge_lengths(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """float [3F] lengths of the three edges of every triangle (vertices [V,3], faces int [F,3])."""
    v = np.asarray(vertices, float)
    f = np.asarray(faces, np.int64)
    e = np.concatenate([v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 1]], v[f[:, 0]] - v[f[:, 2]]])
    return np.linalg.norm(e, axis=1)

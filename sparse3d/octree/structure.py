"""The octree: O-CNN's full octree as a frozen, typed structure (build in csrc/octree).

Depths run from 0 (one root per batch item) to ``depth`` (the leaves). At depth d a node is a cell of the
``2^d`` grid over the octree's cube, with integer coordinates (b, x, y, z), ``0 <= x, y, z < 2^d``, and a
shuffled (Morton) key ``(b << 48) | morton(x, y, z)`` (x the most significant bit of each 3-bit group,
csrc/octree/octree_key.h). Per depth, nodes are sorted by key: by batch item, then along the Z curve.

The full-octree convention of O-CNN:

* every depth ``d <= full_depth`` holds all ``batch_size * 8^d`` nodes;
* deeper, every *non-empty* node of depth d - 1 has all 8 children at depth d, empty ones included, so
  ``N_d = 8 * (non-empty nodes of depth d - 1)`` and the children of the j-th non-empty node are rows
  ``8j .. 8j + 7`` of depth d, child position ``c = (x & 1) << 2 | (y & 1) << 1 | (z & 1)`` (the offset order
  of a 2x2x2 kernel, :mod:`sparse3d.kernel`);
* ``children[d][i]`` = the ordinal j of node i among the non-empty nodes of depth d, or -1 when empty. A node
  is non-empty when it holds an input point (or cell) -- and every node above ``full_depth`` is non-empty.

Features per depth are the means of the input features over the points inside each node (0 in empty ones),
``counts[d]`` the number of points. :meth:`Octree.to_sparse` / :meth:`Octree.from_sparse` move any depth to
and from a :class:`~sparse3d.tensor.SparseTensor` at stride ``leaf_stride * 2^(depth - d)``; the octree's
neighbour tables become :class:`~sparse3d.kernel_map.KernelMap` s (:mod:`sparse3d.octree.tables`) that every
conv backend runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, Hashable, List, Optional, Sequence, Tuple, Type, Union

import torch

from sparse3d import _ext
from sparse3d.tensor import SparseTensor, require_sparse_tensor
from sparse3d.utils.checks import require_int, require_tensor

if TYPE_CHECKING:  # pragma: no cover
    from sparse3d import _C  # noqa: F401 - the stub's types, for annotations
    from sparse3d.kernel_map import KernelMap

__all__ = ["Octree", "octree_ext"]


def octree_ext() -> Type["_C.octree"]:
    """``sparse3d._C.octree`` (csrc/octree): points_to_cells, build, neighbors, MAX_DEPTH."""
    return _ext.octree()


def _cube(origin: Union[float, Sequence[float]], size: float) -> Tuple[List[float], float]:
    if isinstance(origin, bool):
        raise TypeError("origin must be a number or 3 numbers (x, y, z), got a bool")
    if isinstance(origin, (int, float)):
        o = [float(origin)] * 3
    else:
        o = [float(v) for v in origin]
        if len(o) != 3:
            raise ValueError(f"origin must be a number or 3 numbers (x, y, z), got {list(origin)}")
    if isinstance(size, bool) or not isinstance(size, (int, float)):
        raise TypeError(f"size must be a number (the cube's edge length), got {type(size).__name__}")
    return o, float(size)


class _Cache:
    """Lazily built tables of one octree (neighbour tables, non-empty rows, kernel maps); private to it."""

    def __init__(self) -> None:
        self.items: Dict[Hashable, Any] = {}

    def get(self, key: Hashable, build: Any) -> Any:
        if key not in self.items:
            self.items[key] = build()
        return self.items[key]


@dataclass(frozen=True, eq=False)
class Octree:
    """A batch of full octrees (see the module doc).

    depth:       the leaf depth D (1..15); full_depth: depths <= full_depth are full grids (0..D)
    batch_size:  B, batch items (octrees) in this batch
    leaf_stride: the SparseTensor stride of depth D (1 unless built from a coarser SparseTensor)
    keys:        per depth d = 0..D, int64 ``[N_d]`` shuffled keys, ascending
    children:    per depth, int32 ``[N_d]``: ordinal among the non-empty nodes of that depth, or -1
    coords:      per depth, int32 ``[N_d, 4]`` (b, x, y, z) cells of that depth
    features:    per depth, float ``[N_d, C]``: mean input feature of the points in each node (C may be 0)
    counts:      per depth, int64 ``[N_d]``: input points (cells) in each node
    """

    depth: int
    full_depth: int
    batch_size: int
    leaf_stride: int
    keys: Tuple[torch.Tensor, ...] = field(repr=False)
    children: Tuple[torch.Tensor, ...] = field(repr=False)
    coords: Tuple[torch.Tensor, ...] = field(repr=False)
    features: Tuple[torch.Tensor, ...] = field(repr=False)
    counts: Tuple[torch.Tensor, ...] = field(repr=False)
    _cache: _Cache = field(default_factory=_Cache, repr=False, compare=False)

    # ---- building ----------------------------------------------------------------------
    @classmethod
    def from_cells(cls, cells: torch.Tensor, depth: int, features: Optional[torch.Tensor] = None,
                   full_depth: int = 2, batch_size: Optional[int] = None, leaf_stride: int = 1
                   ) -> Tuple["Octree", torch.Tensor]:
        """From leaf cells int32 ``[P, 4]`` (b, x, y, z), ``0 <= x, y, z < 2^depth`` (repeats allowed: points
        of one cell). ``features`` float ``[P, C]`` (default none: C = 0) are averaged per node.

        Returns ``(octree, leaf_rows)``, leaf_rows int64 ``[P]`` the row at depth ``depth`` of each cell."""
        depth = require_int(depth, "depth", 1, int(octree_ext().MAX_DEPTH))
        full_depth = require_int(full_depth, "full_depth", 0, depth)
        leaf_stride = require_int(leaf_stride, "leaf_stride", 1)
        require_tensor(cells, "cells", "int32 [P, 4]")
        p = int(cells.shape[0]) if cells.dim() == 2 else -1
        if features is None:
            features = torch.zeros((max(p, 0), 0), dtype=torch.float32, device=cells.device)
        require_tensor(features, "features", "float [P, C]")
        if features.dim() != 2 or features.shape[0] != p:
            raise ValueError(f"features must have shape [P={p}, C], got {tuple(features.shape)}")
        if not features.is_floating_point():
            raise TypeError(f"features must be a floating-point tensor, got dtype {features.dtype}")
        if batch_size is None:
            batch_size = int(cells[:, 0].max()) + 1 if cells.dim() == 2 and p > 0 else 1
        batch_size = require_int(batch_size, "batch_size", 1)
        lv = octree_ext().build(cells, depth, full_depth, batch_size)
        leaf_rows = lv.leaf_of_input.to(cells.device)
        keys = tuple(k.to(cells.device) for k in lv.keys)
        children = tuple(c.to(cells.device) for c in lv.children)
        coords = tuple(c.to(cells.device) for c in lv.coords)
        feats, counts = _level_means(features, leaf_rows, children, depth)
        return cls(depth, full_depth, batch_size, leaf_stride, keys, children, coords, feats, counts), leaf_rows

    @classmethod
    def from_points(cls, points: torch.Tensor, depth: int, features: Optional[torch.Tensor] = None,
                    normals: Optional[torch.Tensor] = None, batch: Optional[torch.Tensor] = None,
                    batch_size: Optional[int] = None, origin: Union[float, Sequence[float]] = -1.0,
                    size: float = 2.0, full_depth: int = 2) -> Tuple["Octree", torch.Tensor]:
        """From points float ``[P, 3]`` inside the cube ``[origin, origin + size]^3`` (default [-1, 1]^3, as
        O-CNN): leaf cell ``floor((p - origin) * (2^depth / size))``, computed in the points' dtype as O-CNN
        does (so float32 points fall into the same cells); a point on the cube's max face belongs to the last cell. Node features are the means of
        ``[normals | features]`` (``[P, 3]`` and ``[P, C]``, either optional) over each node's points.
        ``batch`` int ``[P]``: the batch item of each point (default 0). ValueError names non-finite points
        and points outside the cube.

        Returns ``(octree, leaf_rows)``: leaf_rows int64 ``[P]``, each point's row at depth ``depth``."""
        require_tensor(points, "points", "float [P, 3]")
        depth = require_int(depth, "depth", 1, int(octree_ext().MAX_DEPTH))
        o, s = _cube(origin, size)
        cells = octree_ext().points_to_cells(points, o, s, depth)
        p = cells.shape[0]
        parts = []
        for name, t, c in (("normals", normals, 3), ("features", features, None)):
            if t is None:
                continue
            require_tensor(t, name, f"float [P, {c or 'C'}]")
            if t.dim() != 2 or t.shape[0] != p or (c is not None and t.shape[1] != c):
                raise ValueError(f"{name} must have shape [P={p}, {c or 'C'}], got {tuple(t.shape)}")
            if not t.is_floating_point():
                raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
            parts.append(t.to(points.device))
        if len({t.dtype for t in parts}) > 1:
            raise TypeError(f"normals and features must share one dtype, got {[t.dtype for t in parts]}")
        feats = (torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]) if parts else None
        if batch is None:
            b = torch.zeros((p, 1), dtype=torch.int32, device=points.device)
        else:
            require_tensor(batch, "batch", "int [P]")
            if batch.is_floating_point() or batch.dtype == torch.bool or batch.shape != (p,):
                raise ValueError(f"batch must be an integer tensor of shape [P={p}], got {batch.dtype} "
                                 f"{tuple(batch.shape)}")
            b = batch.to(device=points.device, dtype=torch.int32)[:, None]
        return cls.from_cells(torch.cat([b, cells], dim=1), depth, feats, full_depth, batch_size)

    @classmethod
    def from_sparse(cls, x: SparseTensor, depth: int, full_depth: int = 2) -> Tuple["Octree", torch.Tensor]:
        """From a SparseTensor whose voxels are the leaf cells: coords in ``[0, 2^depth)``, features
        ``x.feats`` at depth ``depth`` (averaged up the tree); the octree's ``leaf_stride`` is ``x.stride``,
        so ``to_sparse(d)`` is at stride ``x.stride * 2^(depth - d)``.

        Returns ``(octree, rows)``: rows int64 ``[N]``, the row at depth ``depth`` of each of x's voxels, so
        ``octree.to_sparse(depth, nempty=True)`` holds x's voxels and ``features[depth][rows] == x.feats``."""
        require_sparse_tensor(x, "x")
        c = x.coords
        if c.shape[0] and (int(c[:, 1:].min()) < 0 or int(c[:, 1:].max()) >= 1 << depth):
            raise ValueError(f"x.coords[:, 1:4] must be in [0, 2^depth={1 << depth}) to be cells of an octree of "
                             f"depth {depth}, got range [{int(c[:, 1:].min())}, {int(c[:, 1:].max())}]")
        return cls.from_cells(c, depth, x.feats, full_depth, max(x.batch_size, 1), x.stride)

    @classmethod
    def from_mesh(cls, mesh: Any, depth: int, num_points: int = 100_000, seed: int = 0,
                  origin: Optional[Union[float, Sequence[float]]] = None, size: Optional[float] = None,
                  full_depth: int = 2) -> "Octree":
        """From a ``trimesh.Trimesh``: ``num_points`` points sampled on its surface (area-weighted, ``seed``),
        with their face normals as the 3 feature channels. The cube is ``origin``/``size`` when given, else
        the mesh's bounding cube (its largest extent, centred on its bounding box, grown by 2 %)."""
        import trimesh

        if not isinstance(mesh, trimesh.Trimesh):
            raise TypeError(f"mesh must be a trimesh.Trimesh, got {type(mesh).__name__}")
        num_points = require_int(num_points, "num_points", 1)
        if (origin is None) != (size is None):
            raise ValueError("origin and size must be given together (or neither, for the mesh's bounding cube)")
        pts, face = trimesh.sample.sample_surface(mesh, num_points, seed=seed)
        points = torch.as_tensor(pts, dtype=torch.float64)
        normals = torch.as_tensor(mesh.face_normals[face], dtype=torch.float32)
        if origin is None or size is None:
            lo, hi = points.min(0).values, points.max(0).values
            size = float((hi - lo).max()) * 1.02
            origin = ((lo + hi) / 2 - size / 2).tolist()
        octree, _ = cls.from_points(points, depth, normals=normals, origin=origin, size=size, full_depth=full_depth)
        return octree

    @staticmethod
    def merge(octrees: Sequence["Octree"]) -> "Octree":
        """One batch of several octrees (same depth, full_depth, leaf_stride, feature channels and device):
        octree j's batch items follow those of octree j - 1."""
        if len(octrees) == 0:
            raise ValueError("octrees must hold at least one Octree, got an empty sequence")
        for i, t in enumerate(octrees):
            if not isinstance(t, Octree):
                raise TypeError(f"octrees[{i}] must be an Octree, got {type(t).__name__}")
        first = octrees[0]
        for i, t in enumerate(octrees[1:], start=1):
            for attr in ("depth", "full_depth", "leaf_stride"):
                if getattr(t, attr) != getattr(first, attr):
                    raise ValueError(f"octrees must share {attr}, got octrees[0].{attr}={getattr(first, attr)} and "
                                     f"octrees[{i}].{attr}={getattr(t, attr)}")
            if t.features[0].shape[1] != first.features[0].shape[1] or t.features[0].dtype != first.features[0].dtype:
                raise ValueError(f"octrees must share feature channels and dtype, got octrees[0] "
                                 f"{first.features[0].dtype} x {first.features[0].shape[1]} and octrees[{i}] "
                                 f"{t.features[0].dtype} x {t.features[0].shape[1]}")
            if t.keys[0].device != first.keys[0].device:
                raise ValueError(f"octrees must be on one device, got {first.keys[0].device} and {t.keys[0].device}")
        keys, children, coords, feats, counts = [], [], [], [], []
        for d in range(first.depth + 1):
            k, ch, c = [], [], []
            base_b = 0
            base_ne = 0
            for t in octrees:
                k.append(t.keys[d] + (base_b << 48))
                cc = t.coords[d].clone()
                cc[:, 0] += base_b
                c.append(cc)
                tc = t.children[d]
                ch.append(torch.where(tc >= 0, tc + base_ne, tc))
                base_b += t.batch_size
                base_ne += t.num_nodes(d, nempty=True)
            keys.append(torch.cat(k))
            children.append(torch.cat(ch))
            coords.append(torch.cat(c))
            feats.append(torch.cat([t.features[d] for t in octrees]))
            counts.append(torch.cat([t.counts[d] for t in octrees]))
        return Octree(first.depth, first.full_depth, sum(t.batch_size for t in octrees), first.leaf_stride,
                      tuple(keys), tuple(children), tuple(coords), tuple(feats), tuple(counts))

    def grow(self, split: torch.Tensor) -> "Octree":
        """Octree generation (OGN, O-CNN's decoder): one more depth, holding the 8 children of each leaf that
        ``split`` marks. split: bool ``[N_D]`` over the leaves (depth D = ``self.depth``).

        The result has depth D + 1; depths < D are unchanged, ``children[D]`` is the split leaves' ordinals (a
        leaf not split is empty), the new leaves follow the full-octree convention (rows ``8j .. 8j + 7`` are
        the children of the j-th split leaf) and are all empty until the next ``grow`` decides them, with zero
        features and counts. The new leaves take half the old ``leaf_stride`` (an octree whose leaves were at
        stride 1 keeps leaf stride 1, so every depth's :meth:`stride` doubles). Tables are rebuilt lazily."""
        require_tensor(split, "split", f"bool [N={self.num_nodes(self.depth)}]")
        n_leaf = self.num_nodes(self.depth)
        if split.dtype != torch.bool or split.shape != (n_leaf,):
            raise ValueError(f"split must be bool [N={n_leaf}] (one flag per leaf at depth {self.depth}), got "
                             f"{split.dtype} {tuple(split.shape)}")
        if split.device != self.device:
            raise ValueError(f"split must be on the octree's device {self.device}, got {split.device}")
        if self.depth >= int(octree_ext().MAX_DEPTH):
            raise ValueError(f"cannot grow an octree of depth {self.depth}: the deepest is {int(octree_ext().MAX_DEPTH)}")
        if self.leaf_stride > 1 and self.leaf_stride % 2:
            raise ValueError(f"cannot grow an octree with odd leaf_stride {self.leaf_stride}: the children's stride "
                             "would not be an integer")
        d = self.depth
        rows = split.nonzero().squeeze(1)
        ordinal = torch.full((n_leaf,), -1, dtype=torch.int32, device=self.device)
        ordinal[rows] = torch.arange(rows.shape[0], dtype=torch.int32, device=self.device)
        pos = torch.arange(8, dtype=torch.int64, device=self.device)
        key = self.keys[d][rows]
        high = (key >> 48) << 48
        child_keys = (high + ((key - high) << 3))[:, None] + pos  # [M, 8]: (b << 48) | morton << 3 | c
        bits = torch.stack([(pos >> 2) & 1, (pos >> 1) & 1, pos & 1], 1).to(torch.int32)  # [8, 3]
        parent = self.coords[d][rows]
        child_coords = torch.cat([parent[:, None, :1].expand(-1, 8, 1), 2 * parent[:, None, 1:] + bits], 2)
        m = 8 * int(rows.shape[0])
        feats = self.features[d]
        return Octree(d + 1, self.full_depth, self.batch_size, max(self.leaf_stride // 2, 1),
                      self.keys + (child_keys.reshape(m),),
                      self.children[:d] + (ordinal, torch.full((m,), -1, dtype=torch.int32, device=self.device)),
                      self.coords + (child_coords.reshape(m, 4).contiguous(),),
                      self.features + (feats.new_zeros((m, feats.shape[1])),),
                      self.counts + (self.counts[d].new_zeros(m),))

    # ---- what it holds -----------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.keys[0].device

    def to(self, device: Union[str, torch.device]) -> "Octree":
        """The same octree on ``device`` (``self`` when it is there already); derived tables are rebuilt there
        on first use."""
        device = torch.device(device)
        if device == self.device or (device.index is None and device.type == self.device.type):
            return self

        def move(ts: Tuple[torch.Tensor, ...]) -> Tuple[torch.Tensor, ...]:
            return tuple(t.to(device) for t in ts)

        return Octree(self.depth, self.full_depth, self.batch_size, self.leaf_stride, move(self.keys),
                      move(self.children), move(self.coords), move(self.features), move(self.counts))

    def check_depth(self, depth: Any, name: str = "depth", low: int = 0, high: Optional[int] = None) -> int:
        """``depth`` as an int in ``[low, high]`` (default ``[0, self.depth]``), else an error naming ``name``."""
        return require_int(depth, name, low, self.depth if high is None else high)

    def num_nodes(self, depth: int, nempty: bool = False) -> int:
        """Nodes at ``depth`` (``nempty``: non-empty ones only)."""
        depth = self.check_depth(depth)
        if nempty:
            return int(self.nonempty_rows(depth).shape[0])
        return int(self.keys[depth].shape[0])

    def nonempty_mask(self, depth: int) -> torch.Tensor:
        """bool ``[N_d]``: the non-empty nodes of ``depth``."""
        return self.children[self.check_depth(depth)] >= 0

    def nonempty_rows(self, depth: int) -> torch.Tensor:
        """int64 ``[M_d]``: rows of the non-empty nodes of ``depth``, ascending (j-th = ordinal j)."""
        depth = self.check_depth(depth)
        out: torch.Tensor = self._cache.get(("nonempty", depth),
                                            lambda: self.nonempty_mask(depth).nonzero().squeeze(1))
        return out

    def parent_rows(self, depth: int) -> torch.Tensor:
        """int64 ``[N_d]``: the row at ``depth - 1`` of each node's parent (depth >= 1)."""
        depth = self.check_depth(depth, low=1)
        out: torch.Tensor = self._cache.get(("parent", depth),
                                            lambda: self.nonempty_rows(depth - 1).repeat_interleave(8))
        return out

    def stride(self, depth: int) -> int:
        """The SparseTensor stride of ``depth``: ``leaf_stride * 2^(self.depth - depth)``."""
        return self.leaf_stride << (self.depth - self.check_depth(depth))

    def __repr__(self) -> str:
        nodes = [self.num_nodes(d) for d in range(self.depth + 1)]
        return (f"Octree(depth={self.depth}, full_depth={self.full_depth}, batch_size={self.batch_size}, "
                f"nodes per depth={nodes}, C={self.features[0].shape[1]})")

    # ---- SparseTensor ------------------------------------------------------------------
    def to_sparse(self, depth: int, feats: Optional[torch.Tensor] = None, nempty: bool = False) -> SparseTensor:
        """Depth ``depth`` as a SparseTensor at stride :meth:`stride` (rows in the octree's order): all nodes,
        or the non-empty ones (``nempty``). ``feats`` float ``[N, C]`` for those rows (default: the octree's
        features of that depth)."""
        depth = self.check_depth(depth)
        rows = self.nonempty_rows(depth) if nempty else None
        n = self.num_nodes(depth, nempty)
        if feats is None:
            feats = self.features[depth] if rows is None else self.features[depth][rows]
        require_tensor(feats, "feats", f"float [N={n}, C]")
        if feats.dim() != 2 or feats.shape[0] != n:
            raise ValueError(f"feats must have shape [N={n}, C] (nodes at depth {depth}, nempty={nempty}), got "
                             f"{tuple(feats.shape)}")
        coords = self.coords[depth] if rows is None else self.coords[depth][rows]
        return SparseTensor(coords, feats, stride=self.stride(depth), batch_size=self.batch_size)

    # ---- neighbour tables and kernel maps (sparse3d/octree/tables.py) --------------------
    def neighbors(self, depth: int, nempty: bool = False) -> torch.Tensor:
        """int32 ``[N, 27]``: the 3x3x3 neighbours at ``depth`` (offset order of :mod:`sparse3d.kernel`)."""
        from sparse3d.octree.tables import neighbor_table

        return neighbor_table(self, depth, nempty)

    def kernel_map(self, depth: int, kernel_size: int = 3, stride: int = 1, nempty: bool = False) -> "KernelMap":
        """The conv :class:`~sparse3d.kernel_map.KernelMap` from ``depth`` to ``depth`` (stride 1, kernel 3)
        or to ``depth - 1`` (stride 2, kernel 2 or 3); cached, so every layer shares it and its plans."""
        from sparse3d.octree.tables import kernel_map

        return kernel_map(self, depth, kernel_size, stride, nempty)

    def cached(self, key: Hashable, build: Any) -> Any:
        """The octree's private cache of derived tables (used by :mod:`sparse3d.octree.tables`)."""
        return self._cache.get(key, build)


def _level_means(features: torch.Tensor, leaf_rows: torch.Tensor, children: Tuple[torch.Tensor, ...], depth: int
                 ) -> Tuple[Tuple[torch.Tensor, ...], Tuple[torch.Tensor, ...]]:
    """Per depth: mean features ``[N_d, C]`` and point counts int64 ``[N_d]`` of the nodes."""
    n_leaf = int(children[depth].shape[0])
    c = features.shape[1]
    sums = features.new_zeros((n_leaf, c)).index_add_(0, leaf_rows, features)
    counts = torch.bincount(leaf_rows, minlength=n_leaf)
    all_sums, all_counts = [sums], [counts]
    for d in range(depth - 1, -1, -1):
        n = int(children[d].shape[0])
        rows = (children[d] >= 0).nonzero().squeeze(1)
        s = sums.new_zeros((n, c))
        s[rows] = sums.view(rows.shape[0], 8, c).sum(1)
        k = counts.new_zeros(n)
        k[rows] = counts.view(rows.shape[0], 8).sum(1)
        sums, counts = s, k
        all_sums.append(s)
        all_counts.append(k)
    all_sums.reverse()
    all_counts.reverse()
    means = tuple(s / k.clamp_min(1).to(s.dtype)[:, None] for s, k in zip(all_sums, all_counts))
    return means, tuple(all_counts)

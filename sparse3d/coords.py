"""Coordinate manager: coordinate sets, their hash tables, and cached kernel maps.

A :class:`CoordinateManager` is owned by the tensors that share it (never global). It
stores coordinate sets under integer keys; every set knows its stride (how coarse its
lattice is). Down-sampled and generated (up-sampled) sets, and the kernel maps between
sets, are computed once per ``(key(s), kernel_size, stride, dilation)`` and then shared by
every layer that asks for them.

Coordinates are int32 ``[N, 4]`` = (batch, x, y, z), voxel indices on the set's own lattice,
within the limits of the C++ extension (``_C.limits``, read here, never restated):
``COORD_MIN <= x, y, z <= COORD_MAX`` (-32768 and 32767), ``0 <= batch <= BATCH_MAX`` (2047), and for
a kernel map ``|x * stride| < SCALED_COORD_BOUND`` (64512). ``sparse3d.coords.COORD_MIN`` etc. give
them.

Kernel-map semantics (``o`` output row, ``i`` input row, ``off[k]`` from
:func:`sparse3d.kernel.kernel_offsets`, ``s`` = conv stride):

* strided / submanifold conv (input stride t, output stride t*s):
  output ``o`` reads input ``i`` through offset k iff ``coords_in[i] = coords_out[o] * s + off[k]``;
* transposed and generative transposed conv (coarse -> fine) use the same pairs with the
  roles of input and output swapped, so ``ConvTranspose3d`` exactly undoes the geometry of
  the ``Conv3d`` that produced the coarse set.

The maps themselves (:class:`~sparse3d.kernel_map.KernelMap`: which pairs) are geometry only; how
a backend multiplies over them is its own plan (see :mod:`sparse3d.backends`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, Optional, Tuple

import torch

from sparse3d import _ext
from sparse3d.kernel import kernel_offsets
from sparse3d.kernel_map import KernelMap, NeighborTables, PlanCache

if TYPE_CHECKING:  # pragma: no cover
    from sparse3d import _C

__all__ = ["CoordinateManager", "KernelMap", "NeighborTables", "PlanCache", "pack", "unpack", "check_range",
           "COORD_MIN", "COORD_MAX", "BATCH_MAX", "SCALED_COORD_BOUND"]

LIMIT_NAMES = ("COORD_MIN", "COORD_MAX", "BATCH_MAX", "SCALED_COORD_BOUND")


def __getattr__(name: str) -> int:
    """``COORD_MIN``, ``COORD_MAX``, ``BATCH_MAX``, ``SCALED_COORD_BOUND``: read from ``_C.limits``
    (csrc/common/coord_pack.h), the one place they are stated; the extension loads on first use."""
    if name in LIMIT_NAMES:
        return int(getattr(_ext.limits(), name))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def pack(coords: torch.Tensor) -> torch.Tensor:
    """Pack int32 ``[N, 4]`` (b, x, y, z) into sortable int64 keys ``[N]`` (b, x, y, z order), as
    csrc/common/coord_pack.h does: 16 bits per axis stored with an offset of ``-COORD_MIN``."""
    lo = _ext.limits().COORD_MIN
    c = coords.long()
    return (c[:, 0] << 48) | ((c[:, 1] - lo) << 32) | ((c[:, 2] - lo) << 16) | (c[:, 3] - lo)


def unpack(keys: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack`: int64 ``[N]`` -> int32 ``[N, 4]``."""
    lo = _ext.limits().COORD_MIN
    b = keys >> 48
    x = ((keys >> 32) & 0xFFFF) + lo
    y = ((keys >> 16) & 0xFFFF) + lo
    z = (keys & 0xFFFF) + lo
    return torch.stack([b, x, y, z], dim=1).int()


def check_range(coords: torch.Tensor, name: str = "coords") -> None:
    """Raise ValueError if coords int ``[N, 4]`` leave the limits (``_C.limits``: batch in
    ``[0, BATCH_MAX]``, x, y, z in ``[COORD_MIN, COORD_MAX]``)."""
    if coords.numel() == 0:
        return
    lim = _ext.limits()
    lo = coords.min(dim=0).values.tolist()
    hi = coords.max(dim=0).values.tolist()
    if lo[0] < 0 or hi[0] > lim.BATCH_MAX:
        raise ValueError(f"{name}[:, 0] (batch index) must be in [0, {lim.BATCH_MAX}], got range [{lo[0]}, {hi[0]}]")
    if min(lo[1:]) < lim.COORD_MIN or max(hi[1:]) > lim.COORD_MAX:
        raise ValueError(
            f"{name}[:, 1:4] (x, y, z) must be in [{lim.COORD_MIN}, {lim.COORD_MAX}], got range "
            f"[{min(lo[1:])}, {max(hi[1:])}]"
        )


@dataclass
class _CoordSet:
    coords: torch.Tensor  # int32 [N, 4]
    stride: int
    table: Optional["_C.hash.CoordHashTable"] = None  # built lazily (for lookups)
    sorted: Dict[int, "_C.kmap.SortedCoords"] = field(default_factory=dict)  # mul -> sorted keys


class CoordinateManager:
    """Coordinate sets of one device and the kernel maps between them (see module doc)."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        # number of batch items of the tensors sharing this manager, when declared (SparseTensor(...,
        # batch_size=), collate); else tensors count their largest batch index + 1
        self.batch_size: Optional[int] = None
        self._sets: Dict[int, _CoordSet] = {}
        self._parents: Dict[int, int] = {}
        self._derived: Dict[Tuple, int] = {}
        # kernel maps by (in_key, out_key, kernel_size, stride, dilation, kind); each carries the
        # backends' plans of its geometry (KernelMap.plans), so they live and die with this manager
        self._kmaps: Dict[Tuple[int, int, int, int, int, str], KernelMap] = {}

    # ---- coordinate sets -------------------------------------------------------------
    def insert(self, coords: torch.Tensor, stride: int, check_unique: bool = False,
               parent: Optional[int] = None) -> int:
        """Store a coordinate set (int32 ``[N, 4]``, in range); return its key.

        ``check_unique`` raises ValueError naming a duplicate row (sorting the set once, which the
        kernel maps reuse). ``parent``: the finer set this one stands for as a down-sampling of (a
        subset or union of down-sampled sets keeps their parent, so a transposed conv finds its way back)."""
        key = len(self._sets)
        self._sets[key] = _CoordSet(coords.to(self.device), int(stride))
        if parent is not None:
            if parent not in self._sets or self._sets[parent].stride >= int(stride):
                del self._sets[key]
                raise ValueError(f"parent must be the key of a finer set of this manager, got {parent}")
            self._parents[key] = parent
        if check_unique:
            s = self.sorted(key)
            if s.has_duplicates:
                k = s.keys
                j = int((k[1:] == k[:-1]).nonzero()[0, 0])
                rows = sorted(s.order[j:j + 2].tolist())
                del self._sets[key]
                raise ValueError(f"coords has duplicate rows: row {rows[1]} = {tuple(coords[rows[1]].tolist())} "
                                 f"repeats row {rows[0]}; merge them first (SparseTensor.from_points averages "
                                 "points per voxel)")
        return key

    def sorted(self, key: int, mul: int = 1) -> "_C.kmap.SortedCoords":
        """The set's coordinates times ``mul`` as sorted keys, cached."""
        s = self._sets[key]
        if mul not in s.sorted:
            s.sorted[mul] = _ext.kmap().sort_coords(s.coords, mul)
        return s.sorted[mul]

    def coords(self, key: int) -> torch.Tensor:
        """Coordinates int32 ``[N, 4]`` of a set."""
        return self._sets[key].coords

    def stride(self, key: int) -> int:
        return self._sets[key].stride

    def size(self, key: int) -> int:
        return int(self._sets[key].coords.shape[0])

    def table(self, key: int) -> "_C.hash.CoordHashTable":
        """The hash table of a set (built on first use)."""
        s = self._sets[key]
        if s.table is None:
            s.table = _ext.hash().build(s.coords)
        return s.table

    def parent(self, key: int) -> Optional[int]:
        """Key of the finer set that ``key`` was down-sampled from (None if none)."""
        return self._parents.get(key)

    # ---- derived sets ----------------------------------------------------------------
    def downsample(self, key: int, kernel_size: int, stride: int, dilation: int = 1) -> int:
        """Key of the output set of a strided conv: every coarse voxel that some kernel offset
        of some input voxel lands on, ``o = (i - off[k]) / stride`` when exact."""
        if stride == 1:
            return key
        cache = ("down", key, kernel_size, stride, dilation)
        if cache not in self._derived:
            c = self.coords(key)
            off = kernel_offsets(kernel_size, dilation, c.device)
            xyz = c[:, None, 1:] - off[None]  # [N, K, 3]
            ok = (torch.remainder(xyz, stride) == 0).all(dim=2)
            xyz = torch.div(xyz, stride, rounding_mode="floor")
            b = c[:, None, :1].expand(-1, off.shape[0], 1)
            cand = torch.cat([b, xyz], dim=2)[ok]
            out = unpack(torch.unique(pack(cand))) if cand.numel() else c.new_zeros((0, 4))
            new = self.insert(out, self.stride(key) * stride)
            self._parents[new] = key
            self._derived[cache] = new
        return self._derived[cache]

    def generate(self, key: int, kernel_size: int, stride: int, dilation: int = 1) -> int:
        """Key of the output set of a generative transposed conv: every ``i * stride + off[k]``."""
        if self.stride(key) % stride != 0:
            raise ValueError(
                f"stride={stride} does not divide the tensor stride {self.stride(key)}: cannot up-sample below stride 1"
            )
        cache = ("gen", key, kernel_size, stride, dilation)
        if cache not in self._derived:
            c = self.coords(key)
            off = kernel_offsets(kernel_size, dilation, c.device)
            xyz = c[:, None, 1:] * stride + off[None]
            b = c[:, None, :1].expand(-1, off.shape[0], 1)
            cand = torch.cat([b, xyz], dim=2).reshape(-1, 4)
            check_range(cand, "generated coordinates")
            out = unpack(torch.unique(pack(cand))) if cand.numel() else c.new_zeros((0, 4))
            self._derived[cache] = self.insert(out, self.stride(key) // stride)
        return self._derived[cache]

    # ---- kernel maps -----------------------------------------------------------------
    def kernel_map(self, in_key: int, out_key: int, kernel_size: int, stride: int, dilation: int = 1,
                   transposed: bool = False) -> KernelMap:
        """Kernel map from set ``in_key`` to set ``out_key`` (cached: the same object every call).

        ``transposed=False``: a (strided or submanifold) conv map, ``stride(out) == stride(in) * stride``;
        ``transposed=True``: the transposed map (coarse -> fine, ``stride(in) == stride(out) * stride``):
        the pairs of the conv ``out_key -> in_key`` with roles swapped, so input ``i`` feeds output
        ``i * stride + off[k]`` through offset k. At stride 1 this is *not* the submanifold map: its
        offsets point the other way (a transposed conv equals a conv with the kernel flipped). Its kind
        is "generative_conv_transpose" when ``out_key`` is the set :meth:`generate` made from ``in_key``
        with these arguments, else "conv_transpose".
        """
        s_in, s_out = self.stride(in_key), self.stride(out_key)
        if not transposed:
            if s_out != s_in * stride:
                raise ValueError(f"no conv kernel map with stride={stride} from a set of tensor stride {s_in} "
                                 f"to one of tensor stride {s_out} (expected {s_in * stride})")
            return self._conv_map(in_key, out_key, kernel_size, stride, dilation)
        if s_in != s_out * stride:
            raise ValueError(f"no transposed kernel map with stride={stride} from a set of tensor stride {s_in} "
                             f"to one of tensor stride {s_out} (expected {s_in // max(stride, 1)})")
        generated = self._derived.get(("gen", in_key, kernel_size, stride, dilation)) == out_key
        kind = "generative_conv_transpose" if generated else "conv_transpose"
        cache = (in_key, out_key, kernel_size, stride, dilation, kind)
        if cache not in self._kmaps:
            self._kmaps[cache] = self._conv_map(out_key, in_key, kernel_size, stride, dilation).transpose(kind)
        return self._kmaps[cache]

    def _conv_map(self, in_key: int, out_key: int, kernel_size: int, stride: int, dilation: int) -> KernelMap:
        cache = (in_key, out_key, kernel_size, stride, dilation, "conv")
        if cache not in self._kmaps:
            def build_out() -> torch.Tensor:
                off = kernel_offsets(kernel_size, dilation)
                return _ext.kmap().neighbor_table(self.sorted(out_key, stride), self.sorted(in_key), off)

            symmetric = in_key == out_key and stride == 1 and kernel_size % 2 == 1  # odd kernels: point-symmetric
            tables = NeighborTables(build_out, self.size(in_key), symmetric)
            self._kmaps[cache] = KernelMap("conv", in_key, out_key, kernel_size, stride, dilation,
                                           self.coords(in_key), self.coords(out_key), tables)
        return self._kmaps[cache]

    def to(self, device: torch.device | str) -> "CoordinateManager":
        """A manager on another device with the same sets (maps are rebuilt there on demand)."""
        new = CoordinateManager(device)
        new.batch_size = self.batch_size
        for key, s in self._sets.items():
            new._sets[key] = _CoordSet(s.coords.to(device), s.stride)
        new._parents = dict(self._parents)
        new._derived = dict(self._derived)
        return new

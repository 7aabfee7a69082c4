"""Coordinate manager: coordinate sets, their hash tables, and cached kernel maps.

A :class:`CoordinateManager` is owned by the tensors that share it (never global). It
stores coordinate sets under integer keys; every set knows its stride (how coarse its
lattice is). Down-sampled and generated (up-sampled) sets, and the kernel maps between
sets, are computed once per ``(key(s), kernel_size, stride, dilation)`` and then shared by
every layer that asks for them.

Coordinates are int32 ``[N, 4]`` = (batch, x, y, z), voxel indices on the set's own lattice.

Kernel-map semantics (``o`` output row, ``i`` input row, ``off[k]`` from
:func:`sparse3d.kernel.kernel_offsets`, ``s`` = conv stride):

* strided / submanifold conv (input stride t, output stride t*s):
  output ``o`` reads input ``i`` through offset k iff ``coords_in[i] = coords_out[o] * s + off[k]``;
* transposed and generative transposed conv (coarse -> fine) use the same pairs with the
  roles of input and output swapped, so ``ConvTranspose3d`` exactly undoes the geometry of
  the ``Conv3d`` that produced the coarse set.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Tuple

import torch

from sparse3d import _ext
from sparse3d.kernel import kernel_offsets

COORD_MIN, COORD_MAX, BATCH_MAX = -32768, 32767, 2047


def pack(coords: torch.Tensor) -> torch.Tensor:
    """Pack int32 ``[N, 4]`` (b, x, y, z) into sortable int64 keys ``[N]`` (b, x, y, z order)."""
    c = coords.long()
    return (c[:, 0] << 48) | ((c[:, 1] - COORD_MIN) << 32) | ((c[:, 2] - COORD_MIN) << 16) | (c[:, 3] - COORD_MIN)


def unpack(keys: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack`: int64 ``[N]`` -> int32 ``[N, 4]``."""
    b = keys >> 48
    x = ((keys >> 32) & 0xFFFF) + COORD_MIN
    y = ((keys >> 16) & 0xFFFF) + COORD_MIN
    z = (keys & 0xFFFF) + COORD_MIN
    return torch.stack([b, x, y, z], dim=1).int()


def check_range(coords: torch.Tensor, name: str = "coords") -> None:
    """Raise ValueError if coords int ``[N, 4]`` leave the packable range."""
    if coords.numel() == 0:
        return
    lo = coords.min(dim=0).values.tolist()
    hi = coords.max(dim=0).values.tolist()
    if lo[0] < 0 or hi[0] > BATCH_MAX:
        raise ValueError(f"{name}[:, 0] (batch index) must be in [0, {BATCH_MAX}], got range [{lo[0]}, {hi[0]}]")
    if min(lo[1:]) < COORD_MIN or max(hi[1:]) > COORD_MAX:
        raise ValueError(
            f"{name}[:, 1:4] (x, y, z) must be in [{COORD_MIN}, {COORD_MAX}], got range "
            f"[{min(lo[1:])}, {max(hi[1:])}]"
        )


class _PairTables:
    """The index structures of one conv geometry, each built on first use and shared by a map and
    its transpose: the two neighbor tables (the CPU kernels' form) and the compacted pair list (the
    CUDA kernels' form, built from the output-side table). Backends with their own index structures
    (spconv) never ask for them, so they pay nothing.

    ``build_out() -> nbr_out`` int32 ``[N_out, K]``; ``n_in``: rows of the conv's input set;
    ``symmetric``: the map is its own transpose with the offsets reversed (odd submanifold kernels),
    so ``nbr_in`` is ``nbr_out`` with its columns flipped instead of an inversion."""

    def __init__(self, build_out: Callable[[], torch.Tensor], n_in: int, symmetric: bool) -> None:
        self._build_out: Optional[Callable[[], torch.Tensor]] = build_out
        self.n_in = n_in
        self.symmetric = symmetric
        self._out: Optional[torch.Tensor] = None
        self._in: Optional[torch.Tensor] = None
        self._pairs: Optional[object] = None
        self._implicit: Dict[str, object] = {}

    def out(self) -> torch.Tensor:
        if self._out is None:
            assert self._build_out is not None
            self._out = self._build_out()
            self._build_out = None
        return self._out

    def get(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """(nbr_out, nbr_in) of the conv direction."""
        if self._in is None:
            nbr_out = self.out()
            if self.symmetric:
                self._in = nbr_out.flip(1).contiguous()
            else:
                self._in = _ext.load().kmap.invert(nbr_out, self.n_in)
        return self.out(), self._in

    def pairs(self):
        """``_C.conv.ConvPairs`` of the conv direction (src = input rows, dst = output rows)."""
        if self._pairs is None:
            self._pairs = _ext.load().conv.pairs(self.out(), self.n_in)
        return self._pairs

    def implicit(self, side: str):
        """``_C.conv.ImplicitTable`` of the conv direction's ``side`` ("out": nbr_out, "in": nbr_in),
        checked against its input rows and with its rows sorted by active offsets (the
        implicit-GEMM kernels' form, csrc/conv/implicit_gemm.h); each side built on first use."""
        if side not in self._implicit:
            nbr_out, nbr_in = (self.out(), None) if side == "out" else self.get()
            C = _ext.load()
            self._implicit[side] = (C.conv.implicit_table(nbr_out, self.n_in) if side == "out"
                                    else C.conv.implicit_table(nbr_in, nbr_out.shape[0]))
        return self._implicit[side]


@dataclass(frozen=True)
class KernelMap:
    """Pairs (input row, output row, offset index) of one convolution, as two tables.

    nbr_out: int32 ``[N_out, K]``, input row feeding output row o through offset k, or -1.
    nbr_in:  int32 ``[N_in, K]``, output row fed by input row i through offset k, or -1.
    pairs:   the same pairs as lists per offset (what the CUDA kernels run on).
    implicit_out / implicit_in: the two tables checked and row-sorted for the implicit-GEMM kernels.
    Each is built on first access (see :class:`_PairTables`).
    """

    tables: _PairTables  # index structures of the conv (non-transposed) direction
    in_key: int
    out_key: int
    kernel_size: int
    stride: int
    dilation: int
    transposed: bool

    @property
    def nbr_out(self) -> torch.Tensor:
        t = self.tables.get()
        return t[1] if self.transposed else t[0]

    @property
    def nbr_in(self) -> torch.Tensor:
        t = self.tables.get()
        return t[0] if self.transposed else t[1]

    @property
    def pairs(self):
        """The active pairs as ``_C.conv.ConvPairs`` (src: input rows, dst: output rows, grouped by
        offset; see csrc/conv/conv_pairs.h), built on first access."""
        p = self.tables.pairs()
        return p.swapped() if self.transposed else p

    @property
    def implicit_out(self):
        """``_C.conv.ImplicitTable`` over nbr_out (the forward pass of the implicit-GEMM kernels)."""
        return self.tables.implicit("in" if self.transposed else "out")

    @property
    def implicit_in(self):
        """``_C.conv.ImplicitTable`` over nbr_in (their input gradient)."""
        return self.tables.implicit("out" if self.transposed else "in")

    def transpose(self) -> "KernelMap":
        """The same pairs with inputs and outputs swapped (for the transposed conv)."""
        return KernelMap(self.tables, self.out_key, self.in_key, self.kernel_size, self.stride, self.dilation,
                         not self.transposed)

    @property
    def num_pairs(self) -> int:
        return int((self.nbr_out >= 0).sum())


@dataclass
class _CoordSet:
    coords: torch.Tensor  # int32 [N, 4]
    stride: int
    table: Optional[object] = None  # _C.hash.CoordHashTable, built lazily (for lookups)
    sorted: Dict[int, object] = field(default_factory=dict)  # mul -> _C.kmap.SortedCoords


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
        self._kmaps: Dict[Tuple, KernelMap] = {}
        # Index structures a backend builds from these coordinates (spconv's index pairs), keyed by
        # (backend name, ...geometry); owned by this manager like the kernel maps, never global.
        self.backend_cache: Dict[Tuple, object] = {}

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

    def sorted(self, key: int, mul: int = 1):
        """The set's coordinates times ``mul`` as sorted keys (``_C.kmap.SortedCoords``), cached."""
        s = self._sets[key]
        if mul not in s.sorted:
            s.sorted[mul] = _ext.load().kmap.sort_coords(s.coords, mul)
        return s.sorted[mul]

    def coords(self, key: int) -> torch.Tensor:
        """Coordinates int32 ``[N, 4]`` of a set."""
        return self._sets[key].coords

    def stride(self, key: int) -> int:
        return self._sets[key].stride

    def size(self, key: int) -> int:
        return int(self._sets[key].coords.shape[0])

    def table(self, key: int):
        """The hash table of a set (built on first use)."""
        s = self._sets[key]
        if s.table is None:
            s.table = _ext.load().hash.build(s.coords)
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
        """Kernel map from set ``in_key`` to set ``out_key``.

        ``transposed=False``: a (strided or submanifold) conv map, ``stride(out) == stride(in) * stride``;
        ``transposed=True``: the transposed map (coarse -> fine, ``stride(in) == stride(out) * stride``):
        the pairs of the conv ``out_key -> in_key`` with roles swapped, so input ``i`` feeds output
        ``i * stride + off[k]`` through offset k. At stride 1 this is *not* the submanifold map: its
        offsets point the other way (a transposed conv equals a conv with the kernel flipped).
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
        return self._conv_map(out_key, in_key, kernel_size, stride, dilation).transpose()

    def _conv_map(self, in_key: int, out_key: int, kernel_size: int, stride: int, dilation: int) -> KernelMap:
        cache = (in_key, out_key, kernel_size, stride, dilation)
        if cache not in self._kmaps:
            def build_out() -> torch.Tensor:
                off = kernel_offsets(kernel_size, dilation)
                return _ext.load().kmap.neighbor_table(self.sorted(out_key, stride), self.sorted(in_key), off)

            symmetric = in_key == out_key and stride == 1 and kernel_size % 2 == 1  # odd kernels: point-symmetric
            tables = _PairTables(build_out, self.size(in_key), symmetric)
            self._kmaps[cache] = KernelMap(tables, in_key, out_key, kernel_size, stride, dilation, False)
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

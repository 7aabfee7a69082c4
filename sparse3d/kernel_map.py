"""Kernel maps: *which* (input row, output row, offset) pairs a convolution connects, nothing about
*how* a backend multiplies over them.

A :class:`KernelMap` is geometry only: its kind, kernel size / stride / dilation, the coordinates of
its input and output sets, and the pairs as two neighbor tables (:class:`NeighborTables`, built on
first use and shared by a map and its transpose). Each backend turns a map into its own typed,
frozen *plan* (``NativePlan``: pair lists and implicit-GEMM tables; ``SpconvPlan``: spconv's index
pairs, which runs itself; see :mod:`sparse3d.backends`) and caches it in the map's
:class:`PlanCache`, keyed by backend name: owned by the map (so by the coordinate manager that
caches the map), never global.

Any geometry provider can make kernel maps that every backend runs: the coordinate manager
(:meth:`sparse3d.coords.CoordinateManager.kernel_map`) for lattices of strided sets, and e.g. an
octree for its per-depth neighbourhoods, through :meth:`KernelMap.from_neighbor_table`. The contract
(``off[k]`` from :func:`sparse3d.kernel.kernel_offsets`, ``s`` the stride) for kind ``"conv"``:
``nbr_out[o, k] = i`` iff ``in_coords[i] = out_coords[o] * s + off[k]`` (same batch index); the
transposed kinds are the same pairs with input and output exchanged.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Dict, Hashable, List, Optional, Tuple, Type, TypeVar, Union

import torch

from sparse3d import _ext
from sparse3d.utils.checks import require_choice, require_tensor

if TYPE_CHECKING:  # pragma: no cover
    from sparse3d import _C  # noqa: F401 - the stub's types, for annotations

__all__ = ["KernelMap", "NeighborTables", "PlanCache", "MAP_KINDS"]

# "conv": strided or submanifold conv (fine -> coarse, or stride 1); "conv_transpose": coarse -> a known
# finer set; "generative_conv_transpose": coarse -> every child voxel it generates (the set made by
# CoordinateManager.generate). Both transposed kinds have the pairs of a "conv" map, swapped.
MAP_KINDS = ("conv", "conv_transpose", "generative_conv_transpose")

P = TypeVar("P")


class NeighborTables:
    """The pairs of one conv geometry in its conv (non-transposed) direction, as two tables, each
    built on first use and shared by a map and its transpose.

    ``out()``: nbr_out int32 ``[N_out, K]``, the input row feeding output row o through offset k, or -1;
    ``get()``: ``(nbr_out, nbr_in)`` with nbr_in int32 ``[N_in, K]``, the output row fed by input row i
    through offset k, or -1. ``source``: nbr_out itself, or a call that builds it (called once, then
    dropped, so a builder that holds its coordinate manager does not keep it alive). ``n_in``: rows of
    the conv's input set. ``symmetric``: the map is its own transpose with the offsets reversed (odd
    submanifold kernels), so nbr_in is nbr_out with its columns flipped instead of an inversion.
    """

    def __init__(self, source: Union[torch.Tensor, Callable[[], torch.Tensor]], n_in: int, symmetric: bool) -> None:
        self._build_out: Optional[Callable[[], torch.Tensor]] = None
        self._out: Optional[torch.Tensor] = None
        if isinstance(source, torch.Tensor):
            self._out = source
        else:
            self._build_out = source
        self.n_in = int(n_in)
        self.symmetric = bool(symmetric)
        self._in: Optional[torch.Tensor] = None

    def out(self) -> torch.Tensor:
        """nbr_out int32 ``[N_out, K]`` of the conv direction."""
        if self._out is None:
            assert self._build_out is not None
            self._out = self._build_out()
            self._build_out = None
        return self._out

    def get(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(nbr_out [N_out, K], nbr_in [N_in, K])`` of the conv direction."""
        nbr_out = self.out()
        if self._in is None:
            if self.symmetric:
                self._in = nbr_out.flip(1).contiguous()
            else:
                self._in = _ext.kmap().invert(nbr_out, self.n_in)
        return nbr_out, self._in

    @property
    def built_in(self) -> bool:
        """Whether nbr_in has been built (forms that need only nbr_out never build it)."""
        return self._in is not None


class PlanCache:
    """The backends' plans of one kernel geometry, one typed slot per ``(backend name, key)``.

    Owned by a kernel map and its transpose (never global): ``key`` tells the plans of one backend
    apart (e.g. the direction, an algorithm). :meth:`get` builds a plan on first use and checks its
    type on the way in and out, so a slot always holds the plan type its backend expects.
    """

    def __init__(self) -> None:
        self._plans: Dict[Tuple[str, Hashable], object] = {}

    def get(self, backend: str, key: Hashable, plan_type: Type[P], build: Callable[[], P]) -> P:
        """The plan of ``backend`` under ``key``, built by ``build()`` on first use; TypeError when the
        slot holds (or ``build`` returns) something that is not a ``plan_type``."""
        slot = (backend, key)
        plan = self._plans.get(slot)
        if plan is None:
            plan = build()
            self._plans[slot] = plan
        if not isinstance(plan, plan_type):
            raise TypeError(f"plan cache slot {slot!r} must hold a {plan_type.__name__}, got {type(plan).__name__}")
        return plan

    def keys(self, backend: Optional[str] = None) -> List[Hashable]:
        """The keys of the cached plans of ``backend`` (of every backend, as ``(backend, key)``, when None)."""
        if backend is None:
            return list(self._plans)
        return [key for name, key in self._plans if name == backend]

    def __len__(self) -> int:
        return len(self._plans)


@dataclass(frozen=True, eq=False)
class KernelMap:
    """The pairs (input row, output row, offset index) of one convolution: geometry only.

    kind:        one of :data:`MAP_KINDS` ("conv", "conv_transpose", "generative_conv_transpose")
    in_key, out_key: keys of the input and output coordinate sets in their provider (the coordinate
                 manager); equal keys mean the same set
    kernel_size, stride, dilation: ints, as in :func:`sparse3d.kernel.kernel_offsets`
    in_coords:   int32 ``[N_in, 4]``, out_coords: int32 ``[N_out, 4]`` (batch, x, y, z) on their lattices
    nbr_out:     int32 ``[N_out, K]``, input row feeding output row o through offset k, or -1
    nbr_in:      int32 ``[N_in, K]``, output row fed by input row i through offset k, or -1
    plans:       the backends' plans of this geometry (:class:`PlanCache`, shared with the transpose)
    """

    kind: str
    in_key: int
    out_key: int
    kernel_size: int
    stride: int
    dilation: int
    in_coords: torch.Tensor = field(repr=False)
    out_coords: torch.Tensor = field(repr=False)
    tables: NeighborTables = field(repr=False)  # of the conv (non-transposed) direction
    plans: PlanCache = field(default_factory=PlanCache, repr=False)

    def __post_init__(self) -> None:
        require_choice(self.kind, "kind", MAP_KINDS)

    @classmethod
    def from_neighbor_table(cls, nbr_out: torch.Tensor, in_coords: torch.Tensor, out_coords: torch.Tensor,
                            kernel_size: int, stride: int = 1, dilation: int = 1, in_key: int = 0,
                            out_key: int = 1) -> "KernelMap":
        """A "conv" map from a provider's own table (an octree's, say), satisfying the module's contract.

        nbr_out int32 ``[N_out, K**3]`` indexing the rows of in_coords int32 ``[N_in, 4]``; out_coords
        int32 ``[N_out, 4]``. ``in_key == out_key`` declares a submanifold map (one set). Use
        :meth:`transpose` for the transposed direction."""
        require_tensor(nbr_out, "nbr_out", "int32 [N_out, K**3]")
        k3 = kernel_size**3
        if nbr_out.dtype != torch.int32 or nbr_out.dim() != 2 or nbr_out.shape[1] != k3:
            raise ValueError(f"nbr_out must be int32 [N_out, K**3={k3}], got {nbr_out.dtype} {tuple(nbr_out.shape)}")
        for name, c, n in (("in_coords", in_coords, None), ("out_coords", out_coords, nbr_out.shape[0])):
            require_tensor(c, name, "int32 [N, 4]")
            if c.dtype != torch.int32 or c.dim() != 2 or c.shape[1] != 4 or (n is not None and c.shape[0] != n):
                want = "[N, 4]" if n is None else f"[N_out={n}, 4]"
                raise ValueError(f"{name} must be int32 {want}, got {c.dtype} {tuple(c.shape)}")
        symmetric = in_key == out_key and stride == 1 and kernel_size % 2 == 1
        tables = NeighborTables(nbr_out.contiguous(), in_coords.shape[0], symmetric)
        return cls("conv", in_key, out_key, kernel_size, stride, dilation, in_coords, out_coords, tables)

    # ---- what the map is -------------------------------------------------------------
    @property
    def transposed(self) -> bool:
        """True for both transposed kinds (coarse -> fine): the pairs of a conv map, swapped."""
        return self.kind != "conv"

    @property
    def generative(self) -> bool:
        """True when the output set is every child voxel of the input (generative transposed conv)."""
        return self.kind == "generative_conv_transpose"

    @property
    def submanifold(self) -> bool:
        """A stride-1 conv from a set onto itself (output coordinates = input coordinates)."""
        return self.kind == "conv" and self.stride == 1 and self.in_key == self.out_key

    @property
    def op(self) -> str:
        """The sparse op this map serves, as errors name it: "subm_conv", "conv", "conv_transpose" or
        "generative_conv_transpose"."""
        return "subm_conv" if self.kind == "conv" and self.stride == 1 else self.kind

    @property
    def num_in(self) -> int:
        return int(self.in_coords.shape[0])

    @property
    def num_out(self) -> int:
        return int(self.out_coords.shape[0])

    @property
    def num_offsets(self) -> int:
        return self.kernel_size**3

    # ---- the pairs -------------------------------------------------------------------
    @property
    def nbr_out(self) -> torch.Tensor:
        """int32 ``[N_out, K]`` (see the class doc)."""
        return self.tables.get()[1] if self.transposed else self.tables.out()

    @property
    def nbr_in(self) -> torch.Tensor:
        """int32 ``[N_in, K]`` (see the class doc)."""
        t = self.tables.get()
        return t[0] if self.transposed else t[1]

    @property
    def num_pairs(self) -> int:
        return int((self.tables.out() >= 0).sum())

    def transpose(self, kind: Optional[str] = None) -> "KernelMap":
        """The same pairs with inputs and outputs swapped, sharing tables and plans. A conv map becomes
        ``kind`` (default "conv_transpose"; "generative_conv_transpose" when its input set is every
        child voxel of its output set); a transposed map becomes the conv map."""
        if self.transposed:
            new_kind = "conv"
            if kind not in (None, "conv"):
                raise ValueError(f"kind must be 'conv' (or None) to transpose a {self.kind!r} map, got {kind!r}")
        else:
            new_kind = require_choice("conv_transpose" if kind is None else kind, "kind", MAP_KINDS[1:])
        return KernelMap(new_kind, self.out_key, self.in_key, self.kernel_size, self.stride, self.dilation,
                         self.out_coords, self.in_coords, self.tables, self.plans)

"""Types of the compiled extension sparse3d._C (csrc/bindings.cpp and each area's init_* function).

One file cannot declare submodules, so each submodule (``_C.hash``, ``_C.kmap``, ``_C.conv``,
``_C.fusion``, ``_C.project``, ``_C.limits``) is written as a class of static functions with its bound classes
nested inside: ``_C.conv.pairs(...)`` and the annotation ``_C.conv.ConvPairs`` read as at run time.
Keep in step with the bindings (tests/test_typecheck.py compares the names with the built module).
"""
from typing import Final, Tuple

import torch

with_cuda: bool

class limits:
    """Coordinate limits of every op (csrc/common/coord_pack.h, csrc/kmap/wide_key.h)."""

    COORD_MIN: Final[int]  # -32768: x, y, z >= COORD_MIN
    COORD_MAX: Final[int]  # 32767: x, y, z <= COORD_MAX
    BATCH_MAX: Final[int]  # 2047: batch index in [0, BATCH_MAX]
    SCALED_COORD_BOUND: Final[int]  # 64512: kernel maps need |coordinate * stride| < this

class hash:
    """Hash tables over packed (b, x, y, z) coordinates (csrc/hash)."""

    class CoordHashTable:
        @property
        def keys(self) -> torch.Tensor: ...  # int64 [capacity], -1 = empty slot
        @property
        def values(self) -> torch.Tensor: ...  # int32 [capacity]
        @property
        def size(self) -> int: ...  # number of stored coordinates
        def lookup(self, coords: torch.Tensor) -> torch.Tensor:
            """coords int32 [M, 4] -> int32 [M] row index, -1 where absent."""

    @staticmethod
    def build(coords: torch.Tensor) -> "hash.CoordHashTable":
        """Hash table over coords int32 [N, 4]; ValueError on duplicates or out-of-range values."""

class kmap:
    """Kernel maps as neighbor tables, built by merging sorted coordinate keys (csrc/kmap)."""

    class SortedCoords:
        @property
        def keys(self) -> torch.Tensor: ...  # int64 [N], ascending wide keys
        @property
        def order(self) -> torch.Tensor: ...  # int32 [N], row of coords holding keys[j]
        @property
        def mul(self) -> int: ...
        @property
        def has_duplicates(self) -> bool: ...

    @staticmethod
    def sort_coords(coords: torch.Tensor, mul: int = 1) -> "kmap.SortedCoords":
        """coords int32 [N, 4] -> ascending keys of (b, x*mul, y*mul, z*mul) and their rows."""
    @staticmethod
    def neighbor_table(query: "kmap.SortedCoords", table: "kmap.SortedCoords", offsets: torch.Tensor) -> torch.Tensor:
        """query (mul = stride), table (mul = 1), offsets int32 [K, 3] -> int32 [M, K]: row in table of
        query * mul + offset, -1 where absent."""
    @staticmethod
    def invert(nbr_out: torch.Tensor, n_in: int) -> torch.Tensor:
        """int32 [N_out, K] -> int32 [n_in, K]: nbr_in[i, k] = o where nbr_out[o, k] = i, else -1."""

class conv:
    """Gather-GEMM-scatter sparse convolution (csrc/conv): table, pair-list and implicit-GEMM forms."""

    class ConvPairs:
        """Active (input row, output row) pairs per kernel offset; made by conv.pairs(nbr, n_in)."""

        @property
        def src(self) -> torch.Tensor: ...  # int64 [P], input rows
        @property
        def dst(self) -> torch.Tensor: ...  # int64 [P], output rows
        @property
        def begin(self) -> torch.Tensor: ...  # int64 [K + 1] on the CPU: offset k is [begin[k], begin[k + 1])
        @property
        def n_in(self) -> int: ...
        @property
        def n_out(self) -> int: ...
        def swapped(self) -> "conv.ConvPairs":
            """The same pairs with inputs and outputs exchanged."""

    class ImplicitTable:
        """A checked neighbor table and its row order; made by conv.implicit_table."""

        @property
        def nbr(self) -> torch.Tensor: ...  # int32 [N_out, K]
        @property
        def order(self) -> torch.Tensor | None: ...  # int64 [N_out], or None: rows in table order
        @property
        def n_in(self) -> int: ...

    @staticmethod
    def forward(feats: torch.Tensor, weight: torch.Tensor, nbr: torch.Tensor, tile: int = 2048,
                simd: str = "auto") -> torch.Tensor:
        """feats [N_in, C_in], weight [K, C_in, C_out], nbr int32 [N_out, K] -> [N_out, C_out]. simd: the widest
        CPU instruction set of the direct kernels ("auto", "avx512", "avx2", "none"; CUDA tensors: "auto")."""
    @staticmethod
    def weight_grad(feats: torch.Tensor, grad_out: torch.Tensor, nbr: torch.Tensor, tile: int = 2048,
                    simd: str = "auto") -> torch.Tensor:
        """feats [N_in, C_in], grad_out [N_out, C_out], nbr int32 [N_out, K] -> [K, C_in, C_out]; simd as forward."""
    @staticmethod
    def direct_kernels(feats: torch.Tensor, c_in: int, c_out: int, simd: str = "auto") -> tuple[str, str]:
        """(forward, weight_grad): the kernels CPU tensors like feats with C_in -> C_out channels take under simd:
        "avx512" or "avx2" (the direct kernels of csrc/conv/conv_cpu_direct.cpp) or "gemm" (the tiled path)."""
    @staticmethod
    def pairs(nbr: torch.Tensor, n_in: int) -> "conv.ConvPairs":
        """nbr int32 [N_out, K] -> ConvPairs (src, dst int64 [P] grouped by offset, begin int64 [K + 1])."""
    @staticmethod
    def forward_pairs(feats: torch.Tensor, weight: torch.Tensor, pairs: "conv.ConvPairs") -> torch.Tensor:
        """feats [N_in, C_in], weight [K, C_in, C_out], ConvPairs -> [N_out, C_out]."""
    @staticmethod
    def weight_grad_pairs(feats: torch.Tensor, grad_out: torch.Tensor, pairs: "conv.ConvPairs") -> torch.Tensor:
        """feats [N_in, C_in], grad_out [N_out, C_out], ConvPairs -> [K, C_in, C_out]."""
    @staticmethod
    def implicit_table(nbr: torch.Tensor, n_in: int, sort_rows: bool = True) -> "conv.ImplicitTable":
        """nbr int32 [N_out, K] indexing n_in rows -> ImplicitTable (rows sorted by their active offsets)."""
    @staticmethod
    def implicit_chunks(pairs: "conv.ConvPairs", chunk: int, c_in: int, c_out: int) -> torch.Tensor:
        """The weight gradient's work list: int64 [n_chunks, 3] of (offset, first pair, pairs)."""
    @staticmethod
    def forward_implicit(feats: torch.Tensor, weight: torch.Tensor, table: "conv.ImplicitTable") -> torch.Tensor:
        """CUDA implicit GEMM: feats [N_in, C_in], weight [K, C_in, C_out], ImplicitTable -> [N_out, C_out]."""
    @staticmethod
    def weight_grad_implicit(feats: torch.Tensor, grad_out: torch.Tensor, pairs: "conv.ConvPairs",
                             chunk: int = 0) -> torch.Tensor:
        """CUDA implicit GEMM: feats [N_in, C_in], grad_out [N_out, C_out], ConvPairs -> [K, C_in, C_out]."""
    @staticmethod
    def forward_implicit_emulated(feats: torch.Tensor, weight: torch.Tensor,
                                  table: "conv.ImplicitTable") -> torch.Tensor:
        """forward_implicit's kernel source run on the CPU, one thread per CUDA thread (tests; slow)."""
    @staticmethod
    def weight_grad_implicit_emulated(feats: torch.Tensor, grad_out: torch.Tensor, pairs: "conv.ConvPairs",
                                      chunk: int = 0) -> torch.Tensor:
        """weight_grad_implicit's kernel source run on the CPU (tests; slow)."""

class fusion:
    """TSDF fusion of RGB-D frames into sparse voxel blocks (csrc/fusion)."""

    class TSDFVolume:
        """Sparse block-grid TSDF volume (see csrc/fusion/fusion.h)."""

        def __init__(self, voxel_size: float, trunc_voxels: float, block_res: int = 8,
                     with_color: bool = True) -> None: ...
        def integrate(self, depth: torch.Tensor, color: torch.Tensor, intrinsic: torch.Tensor,
                      camera_to_world: torch.Tensor, depth_max: float, touch_stride: int = 4,
                      threads: int = 0) -> int:
            """depth float32 [H, W] metres, color uint8 [H, W, 3] or empty, intrinsic float64 [3, 3],
            camera_to_world float64 [4, 4] -> number of blocks touched by this frame."""
        def extract(self, min_weight: float = 0.0,
                    max_abs_tsdf: float = 1.0) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
            """(coords int32 [N, 3], tsdf float32 [N] in [-1, 1], weight float32 [N], color float32 [N, 3])."""
        @property
        def num_blocks(self) -> int: ...
        @property
        def voxel_size(self) -> float: ...
        @property
        def trunc_voxels(self) -> float: ...
        @property
        def block_res(self) -> int: ...
        @property
        def with_color(self) -> bool: ...

    @staticmethod
    def visibility(coords: torch.Tensor, voxel_size: float, depth: torch.Tensor, intrinsic: torch.Tensor,
                   camera_to_world: torch.Tensor, trunc: float, depth_max: float) -> torch.Tensor:
        """uint8 [N] visibility of voxel coords int32 [N, 3] in one depth frame: 0 unseen, 1 free, 2 near surface."""
    @staticmethod
    def observed_grid(depths: torch.Tensor, depth_scale: float, intrinsic: torch.Tensor,
                      camera_to_world: torch.Tensor, origin: torch.Tensor, dims: torch.Tensor, voxel_size: float,
                      trunc: float, depth_max: float) -> torch.Tensor:
        """bool [X, Y, Z]: voxels of origin + [0, dims) observed by some frame (see fusion.h)."""

class project:
    """3DMV back-projection of 2D feature maps into sparse voxels (csrc/project; contract in
    sparse3d/ops/backproject.py). Geometry: coords int32 [N, 4], voxel_to_world float64 [B, 4, 4],
    depth float32 [V, H, W], intrinsics float64 [V, 4], world_to_cam float64 [V, 4, 4], view_batch int64 [V]
    (-1 = skipped view), thresh float64 [B]."""

    @staticmethod
    def forward(coords: torch.Tensor, voxel_to_world: torch.Tensor, feats2d: torch.Tensor, depth: torch.Tensor,
                intrinsics: torch.Tensor, world_to_cam: torch.Tensor, view_batch: torch.Tensor, thresh: torch.Tensor,
                near: float, far: float, pool_max: bool) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """feats2d [V, C, h, w] -> (feats [N, C], n_views int32 [N], index): max pooling: argmax int32 [N, C], the
        pixel v * h * w + fv * w + fu that gave feats[n, c] (-1: no view); mean pooling: rows int32 [N, M], the
        pixels of voxel n's passing views in view order, then -1 (M = the most views of any batch item)."""
    @staticmethod
    def backward_max(grad: torch.Tensor, argmax: torch.Tensor, V: int, h: int, w: int) -> torch.Tensor:
        """grad [N, C], argmax int32 [N, C] -> gradient of feats2d [V, C, h, w]."""
    @staticmethod
    def backward_mean(grad: torch.Tensor, rows: torch.Tensor, n_views: torch.Tensor, V: int, h: int,
                      w: int) -> torch.Tensor:
        """grad [N, C], rows int32 [N, M] and n_views int32 [N] of the forward -> gradient of feats2d [V, C, h, w]."""
    @staticmethod
    def visibility(coords: torch.Tensor, voxel_to_world: torch.Tensor, depth: torch.Tensor, intrinsics: torch.Tensor,
                   world_to_cam: torch.Tensor, view_batch: torch.Tensor, thresh: torch.Tensor, near: float,
                   far: float) -> torch.Tensor:
        """bool [N, V]: view v passes the back-projection test for voxel n."""

class octree:
    """Octree build and per-depth neighbour tables, O-CNN's full octree (csrc/octree)."""

    MAX_DEPTH: Final[int]  # 15: cells < 2^15, so every depth converts to SparseTensor coordinates

    class OctreeLevels:
        @property
        def keys(self) -> list[torch.Tensor]: ...  # per depth int64 [N_d], shuffled keys (b << 48 | morton), ascending
        @property
        def children(self) -> list[torch.Tensor]: ...  # per depth int32 [N_d], ordinal among non-empty nodes or -1
        @property
        def coords(self) -> list[torch.Tensor]: ...  # per depth int32 [N_d, 4] (b, x, y, z)
        @property
        def leaf_of_input(self) -> torch.Tensor: ...  # int64 [P], row at the leaf depth of each input cell

    @staticmethod
    def points_to_cells(points: torch.Tensor, origin: list[float], size: float, depth: int) -> torch.Tensor:
        """points float [P, 3] inside [origin, origin + size]^3 -> int32 [P, 3] cells at depth; ValueError names
        non-finite points and points outside the cube."""
    @staticmethod
    def build(cells: torch.Tensor, depth: int, full_depth: int, batch_size: int) -> "octree.OctreeLevels":
        """cells int32 [P, 4] (b, x, y, z) at depth -> the full octree's nodes per depth."""
    @staticmethod
    def neighbors(nbr_parent: torch.Tensor, children_parent: torch.Tensor, parent_rows: torch.Tensor,
                  child_pos: torch.Tensor, n_child: int) -> torch.Tensor:
        """3x3x3 neighbours int32 [Q, 27] of the children (parent_rows[q], child_pos[q]) through the parent
        depth's table int32 [M, 27]; rows of the child depth (n_child rows) or -1."""

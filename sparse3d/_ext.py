"""The one loader of the compiled extension ``sparse3d._C``, with an actionable error when it is missing.

    from sparse3d import _ext
    C = _ext.load()                 # the module (hash, kmap, conv, fusion, limits submodules)
    table = _ext.hash().build(c)    # one submodule, typed by sparse3d/_C.pyi

Everything that needs the extension (the engine, data_tools, tests, benchmarks) goes through here.
Nothing is loaded at import time: the first call loads it (Python caches the module).
"""
from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Type

if TYPE_CHECKING:  # pragma: no cover
    from sparse3d import _C

BUILD_HINT = ("run `bash scripts/setup.sh` or `pip install --no-build-isolation -e .` in the repository root")


def load() -> ModuleType:
    """Return the compiled module ``sparse3d._C`` (hash, kmap, conv, fusion, limits submodules).

    Raises ImportError naming the build command when the extension is not built."""
    try:
        from sparse3d import _C
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(f"sparse3d's C++ extension sparse3d._C is not built: {BUILD_HINT} (import error: {e})") from e
    return _C


def _submodule(name: str) -> ModuleType:
    mod = getattr(load(), name, None)
    if not isinstance(mod, ModuleType):  # pragma: no cover - an extension built from older sources
        raise ImportError(f"sparse3d._C has no submodule {name!r}: it was built from older sources; rebuild it: "
                          f"{BUILD_HINT}")
    return mod


# Typed access to each submodule (the stub declares them as classes of static functions).
def hash() -> Type["_C.hash"]:  # noqa: A001 - the submodule's name
    """``sparse3d._C.hash``: coordinate hash tables."""
    return _submodule("hash")  # type: ignore[return-value]


def kmap() -> Type["_C.kmap"]:
    """``sparse3d._C.kmap``: sorted coordinates and neighbor tables."""
    return _submodule("kmap")  # type: ignore[return-value]


def conv() -> Type["_C.conv"]:
    """``sparse3d._C.conv``: the convolution kernels (tables, pairs, implicit GEMM)."""
    return _submodule("conv")  # type: ignore[return-value]


def fusion() -> Type["_C.fusion"]:
    """``sparse3d._C.fusion``: TSDF fusion of RGB-D frames."""
    return _submodule("fusion")  # type: ignore[return-value]


def project() -> Type["_C.project"]:
    """``sparse3d._C.project``: 3DMV back-projection of 2D feature maps into sparse voxels."""
    return _submodule("project")  # type: ignore[return-value]


def octree() -> Type["_C.octree"]:
    """``sparse3d._C.octree``: octree build (Morton keys, O-CNN's full octree) and per-depth neighbour tables."""
    return _submodule("octree")  # type: ignore[return-value]


def limits() -> Type["_C.limits"]:
    """``sparse3d._C.limits``: COORD_MIN, COORD_MAX, BATCH_MAX, SCALED_COORD_BOUND."""
    return _submodule("limits")  # type: ignore[return-value]

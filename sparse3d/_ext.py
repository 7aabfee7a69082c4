"""Access to the compiled extension sparse3d._C, with an actionable error when it is missing."""
from __future__ import annotations

from types import ModuleType


def load() -> ModuleType:
    """Return the compiled module ``sparse3d._C`` (hash, kmap, conv, ... submodules)."""
    try:
        from sparse3d import _C  # type: ignore[attr-defined]
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(
            "sparse3d's C++ extension sparse3d._C is not built: run `bash scripts/setup.sh` or "
            "`pip install --no-build-isolation -e .` in the repository root "
            f"(import error: {e})"
        ) from e
    return _C

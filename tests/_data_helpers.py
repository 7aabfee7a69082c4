"""Shared helpers of the data_tools tests (not collected: no test_ prefix)."""
from __future__ import annotations

import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(REPO), "shared", "data")


def shared_path(*parts: str) -> str:
    """Path under <repo>/../shared/data; skips the test (with the reason) when it is absent."""
    p = os.path.join(SHARED, *parts)
    if not os.path.exists(p):
        pytest.skip(f"shared sample data not found: {p} (see ../shared/data/SOURCES.md)")
    return p


def native_or_skip():
    """sparse3d._C.fusion, or skip when the extension is not built."""
    try:
        from data_tools.fusion import native_fusion
        return native_fusion()
    except ImportError as e:
        pytest.skip(f"native extension not built: {e}")

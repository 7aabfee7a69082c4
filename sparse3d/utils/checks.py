"""Argument checks with one message dialect: ``<name> must be <what was expected>, got <what came>``.

    require_tensor(w, "weight", "[K**3, C_in, C_out]")
    require_choice(gather, "gather", GATHER_MODES)

Every check raises (TypeError for a wrong type, ValueError for a wrong value) and returns the value,
so a check can stand inside an expression. Used by the engine (ops, nn, backends, tensor), data_tools and the
tasks; nothing here imports sparse3d beyond utils (the engine's own check,
``require_sparse_tensor``, lives in sparse3d/tensor.py).
"""
from __future__ import annotations

import operator
from typing import Any, Sequence, TypeVar

import torch

T = TypeVar("T")


def require_tensor(value: Any, name: str, expected: str = "") -> torch.Tensor:
    """``value`` when it is a ``torch.Tensor``, else TypeError ``"<name> must be a torch.Tensor
    <expected>, got <type>"`` (``expected``: e.g. the shape, ``"[N, 4]"``)."""
    if not isinstance(value, torch.Tensor):
        what = f"a torch.Tensor {expected}".rstrip()
        raise TypeError(f"{name} must be {what}, got {type(value).__name__}")
    return value


def require_int(value: Any, name: str, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int (bool is refused) within ``[low, high]`` when given: TypeError for a
    non-integer, ValueError for one out of range."""
    try:
        if isinstance(value, bool):
            raise TypeError
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}: {value!r}") from None
    if (low is not None and v < low) or (high is not None and v > high):
        if high is None:
            want = f">= {low}"
        elif low is None:
            want = f"<= {high}"
        else:
            want = f"in [{low}, {high}]"
        raise ValueError(f"{name} must be {want}, got {v}")
    return v


def require_choice(value: T, name: str, choices: Sequence[T]) -> T:
    """``value`` when it is one of ``choices``, else ValueError ``"<name> must be one of <choices>, got <value>"``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value

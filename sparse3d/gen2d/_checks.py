"""Argument checks shared by gen2d: errors name the argument, what was expected and what was given."""
from __future__ import annotations

from typing import Sequence

import torch


def check_tensor(name: str, x: object, ndim: int, dtype_kind: str = "any") -> torch.Tensor:
    """Raise TypeError/ValueError unless ``x`` is a tensor with ``ndim`` dims.

    dtype_kind: "any", "float" or "int".
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D tensor, got shape {tuple(x.shape)}")
    if dtype_kind == "float" and not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
    if dtype_kind == "int" and (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool):
        raise TypeError(f"{name}: expected an integer tensor, got dtype {x.dtype}")
    return x


def check_positive_int(name: str, v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name}: expected an int, got {type(v).__name__}")
    if v <= 0:
        raise ValueError(f"{name}: expected a positive int, got {v}")
    return v


def check_choice(name: str, v: object, choices: Sequence[object]) -> object:
    if v not in choices:
        raise ValueError(f"{name}: expected one of {list(choices)}, got {v!r}")
    return v


def check_levels(name: str, x: torch.Tensor, n_levels: int) -> None:
    """Integer image/audio values must lie in [0, n_levels-1]."""
    if x.numel() and (int(x.min()) < 0 or int(x.max()) >= n_levels):
        raise ValueError(
            f"{name}: expected integer levels in [0, {n_levels - 1}], got range "
            f"[{int(x.min())}, {int(x.max())}]")

"""Tensor checks of gen2d's images and waveforms, in the message dialect of :mod:`sparse3d.utils.checks`
(``<name> must be <what was expected>, got <what came>``); ints and choices use that module directly."""
from __future__ import annotations

import torch

from sparse3d.utils.checks import require_tensor


def check_tensor(name: str, x: object, ndim: int, dtype_kind: str = "any") -> torch.Tensor:
    """Raise TypeError/ValueError unless ``x`` is a tensor with ``ndim`` dims.

    dtype_kind: "any", "float" or "int".
    """
    t = require_tensor(x, name)
    if t.dim() != ndim:
        raise ValueError(f"{name} must be a {ndim}-D tensor, got shape {tuple(t.shape)}")
    if dtype_kind == "float" and not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if dtype_kind == "int" and (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool):
        raise TypeError(f"{name} must be an integer tensor, got dtype {t.dtype}")
    return t


def check_levels(name: str, x: torch.Tensor, n_levels: int) -> None:
    """Integer image/audio values must lie in [0, n_levels-1]."""
    if x.numel() and (int(x.min()) < 0 or int(x.max()) >= n_levels):
        raise ValueError(
            f"{name} must hold integer levels in [0, {n_levels - 1}], got range "
            f"[{int(x.min())}, {int(x.max())}]")

"""How sparse ops behave under ``torch.autocast`` (mixed precision), in one place.

torch's own layers follow two rules, and the sparse ops follow the same ones:

* convolutions run in the autocast dtype (float16 / bfloat16): float32, float16 and bfloat16
  features, weight and bias are cast to it (float64 stays float64, as in torch), so the output is
  in the autocast dtype and gradients flow back to float32 parameters through the casts;
* ops that combine two tensors (``add``, ``cat``) promote both to the wider dtype, as ``torch.cat``
  does under autocast; outside autocast they keep requiring one dtype.

The CPU and CUDA conv kernels accumulate float16 / bfloat16 in float32 (csrc/conv).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

_CASTABLE = (torch.float32, torch.float16, torch.bfloat16)


def autocast_dtype(device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype active for ``device``'s type, or None when autocast is off there."""
    kind = device.type
    if not torch.is_autocast_enabled(kind):
        return None
    return torch.get_autocast_dtype(kind)


def _cast(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if t.dtype in _CASTABLE and t.dtype != dtype:
        return t.to(dtype)
    return t


def conv_args(feats: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]
              ) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """Features ``[N, C_in]``, weight ``[K, C_in, C_out]`` and bias ``[C_out]`` as a conv under the
    current autocast state should see them (unchanged when autocast is off for feats' device)."""
    if not isinstance(feats, torch.Tensor):
        return feats, weight, bias
    dtype = autocast_dtype(feats.device)
    if dtype is None or feats.dtype not in _CASTABLE:
        return feats, weight, bias
    if not isinstance(weight, torch.Tensor):  # the conv's own check names the wrong argument
        return _cast(feats, dtype), weight, bias
    return (_cast(feats, dtype), _cast(weight, dtype),
            _cast(bias, dtype) if isinstance(bias, torch.Tensor) else bias)


def promoted(a: torch.Tensor, b: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Feature tensors ``a``, ``b`` cast to their common (wider) dtype when autocast is on for a's
    device; unchanged otherwise (the caller's dtype check then decides)."""
    if a.dtype == b.dtype or autocast_dtype(a.device) is None:
        return a, b
    dtype = torch.promote_types(a.dtype, b.dtype)
    return a.to(dtype), b.to(dtype)

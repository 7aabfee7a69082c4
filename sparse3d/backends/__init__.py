"""Convolution backends, chosen explicitly by name per module or per model.

``native`` (default): sparse3d's csrc kernels. ``torch``: pure-PyTorch reference.
``spconv``: spconv 2.x (see sparse3d/backends/spconv.py); asking for it without spconv installed
raises ImportError with the install command (``pip install spconv-cu120``).
"""
from __future__ import annotations

import importlib
from typing import Dict, Tuple, Union

from sparse3d.backends.base import Backend

DEFAULT_BACKEND = "native"

# name -> (module, class); imported on first use so optional peers load only when asked for.
_REGISTRY: Dict[str, Tuple[str, str]] = {
    "native": ("sparse3d.backends.native", "NativeBackend"),
    "torch": ("sparse3d.backends.torch_ref", "TorchBackend"),
    "spconv": ("sparse3d.backends.spconv", "SpconvBackend"),
}


def available_backends() -> Tuple[str, ...]:
    return tuple(_REGISTRY)


def get_backend(backend: Union[str, Backend, None] = None) -> Backend:
    """Resolve a backend name (or instance) to a Backend; None means DEFAULT_BACKEND.

    Raises ValueError for an unknown name and ImportError (with an install hint) when the backend's
    library is missing (spconv)."""
    if isinstance(backend, Backend):
        return backend
    name = DEFAULT_BACKEND if backend is None else backend
    if name not in _REGISTRY:
        raise ValueError(f"backend must be one of {sorted(_REGISTRY)}, got {name!r}")
    module, cls = _REGISTRY[name]
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        raise ValueError(f"backend {name!r} is not available in this build ({e})") from e
    return getattr(mod, cls)()

"""Convolution modules. Every module takes ``backend=`` ("native", "spconv", "torch" or None for
the default) and stores its weight as ``[K**3, C_in, C_out]``, so checkpoints load on any backend."""
from __future__ import annotations

import math
from typing import Optional, Union

import torch
from torch import nn

from sparse3d import ops
from sparse3d.backends import Backend, get_backend
from sparse3d.kernel import check_kernel_args
from sparse3d.tensor import SparseTensor


class _ConvBase(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, dilation: int,
                 bias: bool, backend: Union[str, Backend, None]) -> None:
        super().__init__()
        check_kernel_args(kernel_size, stride, dilation)
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        get_backend(backend)  # fail early on an unknown name
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.dilation = kernel_size, stride, dilation
        self.backend = backend
        self.weight = nn.Parameter(torch.empty(kernel_size**3, in_channels, out_channels))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        fan_in = self.in_channels * self.kernel_size**3
        bound = 1.0 / math.sqrt(fan_in)
        nn.init.uniform_(self.weight, -math.sqrt(3.0) * bound, math.sqrt(3.0) * bound)  # Kaiming-uniform, a=1
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"dilation={self.dilation}, bias={self.bias is not None}, backend={self.backend!r}")


class Conv3d(_ConvBase):
    """Sparse conv; stride 1 keeps the coordinates (submanifold), stride > 1 down-samples.

    x feats ``[N, C_in]`` -> ``[N_out, C_out]``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 dilation: int = 1, bias: bool = True, backend: Union[str, Backend, None] = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, dilation, bias, backend)

    def forward(self, x: SparseTensor) -> SparseTensor:
        return ops.conv3d(x, self.weight, self.bias, self.kernel_size, self.stride, self.dilation, self.backend)


class SubMConv3d(Conv3d):
    """Submanifold conv: the output has exactly the input's coordinates."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 1,
                 bias: bool = True, backend: Union[str, Backend, None] = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, 1, dilation, bias, backend)


class ConvTranspose3d(_ConvBase):
    """Transposed conv back onto known finer coordinates (``target``, or the set x came from)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 2, stride: int = 2,
                 dilation: int = 1, bias: bool = True, backend: Union[str, Backend, None] = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, dilation, bias, backend)

    def forward(self, x: SparseTensor, target: Optional[SparseTensor] = None) -> SparseTensor:
        return ops.conv_transpose3d(x, self.weight, self.bias, self.kernel_size, self.stride, self.dilation,
                                    target, self.backend)


class GenerativeConvTranspose3d(_ConvBase):
    """Transposed conv that creates every child voxel (scene completion's up-sampling)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 2, stride: int = 2,
                 dilation: int = 1, bias: bool = True, backend: Union[str, Backend, None] = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, dilation, bias, backend)

    def forward(self, x: SparseTensor) -> SparseTensor:
        return ops.generative_conv_transpose3d(x, self.weight, self.bias, self.kernel_size, self.stride,
                                               self.dilation, self.backend)


def set_backend(model: nn.Module, backend: Union[str, Backend, None]) -> nn.Module:
    """Set the backend of every sparse conv and max pool in ``model`` (explicit, per model); returns ``model``."""
    from sparse3d.nn.pool import MaxPool3d

    get_backend(backend)
    for m in model.modules():
        if isinstance(m, (_ConvBase, MaxPool3d)):
            m.backend = backend
    return model

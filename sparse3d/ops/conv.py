"""Sparse convolutions (functional). Weights are ``[K**3, C_in, C_out]`` (sparse3d.kernel).

* :func:`conv3d` — stride 1: submanifold (output coordinates = input coordinates);
  stride s > 1: down-sampling onto every coarse voxel some kernel offset reaches.
* :func:`conv_transpose3d` — coarse -> a *known* finer coordinate set (by default the set the
  input was down-sampled from), the exact transpose of the strided conv's geometry.
* :func:`generative_conv_transpose3d` — coarse -> every child voxel ``i * stride + off[k]``.
"""
from __future__ import annotations

from typing import Optional, Tuple, Union

import torch

from sparse3d.backends import Backend, get_backend
from sparse3d.kernel import check_kernel_args
from sparse3d.kernel_map import KernelMap
from sparse3d.ops import amp
from sparse3d.tensor import SparseTensor
from sparse3d.tensor import require_sparse_tensor


def _prepare(x: SparseTensor, weight: torch.Tensor, kernel_size: int, bias: Optional[torch.Tensor]
             ) -> Tuple[SparseTensor, torch.Tensor, Optional[torch.Tensor]]:
    """Check the arguments of a conv and apply the autocast rule (sparse3d.ops.amp); return
    (x, weight, bias) as the conv computes with them."""
    require_sparse_tensor(x, "x")
    feats, weight, bias = amp.conv_args(x.feats, weight, bias)
    if feats is not x.feats:
        x = x.replace(feats)
    _check_weight(x, weight, kernel_size, bias)
    return x, weight, bias


def _check_weight(x: SparseTensor, weight: torch.Tensor, kernel_size: int, bias: Optional[torch.Tensor]) -> None:
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"weight must be a torch.Tensor [K**3, C_in, C_out], got {type(weight).__name__}")
    expect = (kernel_size**3, x.num_channels)
    if weight.dim() != 3 or tuple(weight.shape[:2]) != expect:
        raise ValueError(f"weight must have shape [K**3={expect[0]}, C_in={expect[1]}, C_out], "
                         f"got {tuple(weight.shape)}")
    if weight.dtype != x.dtype:
        raise TypeError(f"weight dtype {weight.dtype} must match x.feats dtype {x.dtype}")
    if weight.device != x.device:
        raise ValueError(f"weight must be on x's device {x.device}, got {weight.device}")
    if bias is None:
        return
    if not isinstance(bias, torch.Tensor):
        raise TypeError(f"bias must be a torch.Tensor [C_out] or None, got {type(bias).__name__}")
    if tuple(bias.shape) != (weight.shape[2],):
        raise ValueError(f"bias must have shape [C_out={weight.shape[2]}], got {tuple(bias.shape)}")
    if bias.dtype != weight.dtype:
        raise TypeError(f"bias dtype {bias.dtype} must match weight dtype {weight.dtype}")
    if bias.device != weight.device:
        raise ValueError(f"bias must be on weight's device {weight.device}, got {bias.device}")


def _apply(x: SparseTensor, weight: torch.Tensor, bias: Optional[torch.Tensor], kmap: KernelMap,
           backend: Union[str, Backend, None]) -> SparseTensor:
    feats = get_backend(backend).conv(x.feats, weight, kmap)
    if bias is not None:
        feats = feats + bias
    return SparseTensor._make(feats, x.manager, kmap.out_key)


def conv3d(x: SparseTensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None, kernel_size: int = 3,
           stride: int = 1, dilation: int = 1, backend: Union[str, Backend, None] = None) -> SparseTensor:
    """Sparse conv. x feats ``[N, C_in]`` -> ``[N_out, C_out]`` at tensor stride ``x.stride * stride``."""
    check_kernel_args(kernel_size, stride, dilation)
    x, weight, bias = _prepare(x, weight, kernel_size, bias)
    out_key = x.manager.downsample(x.key, kernel_size, stride, dilation)
    kmap = x.manager.kernel_map(x.key, out_key, kernel_size, stride, dilation)
    return _apply(x, weight, bias, kmap, backend)


def conv_transpose3d(x: SparseTensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None,
                     kernel_size: int = 2, stride: int = 2, dilation: int = 1,
                     target: Optional[SparseTensor] = None,
                     backend: Union[str, Backend, None] = None) -> SparseTensor:
    """Transposed conv onto known finer coordinates.

    ``target``: a tensor (sharing x's coordinate manager) whose coordinates are the output's; by
    default the set that ``x``'s coordinates were down-sampled from.
    """
    check_kernel_args(kernel_size, stride, dilation)
    x, weight, bias = _prepare(x, weight, kernel_size, bias)
    if target is None:
        out_key = x.manager.parent(x.key) if stride > 1 else x.key
        if out_key is None:
            raise ValueError("x has no finer coordinate set it was down-sampled from; pass target= (a tensor with "
                             "the output coordinates) or use generative_conv_transpose3d")
    else:
        if target.manager is not x.manager:
            raise ValueError("target must share x's coordinate manager (come from the same input tensor)")
        out_key = target.key
    if x.manager.stride(out_key) * stride != x.stride:
        raise ValueError(f"target stride {x.manager.stride(out_key)} * stride {stride} must equal x.stride {x.stride}")
    kmap = x.manager.kernel_map(x.key, out_key, kernel_size, stride, dilation, transposed=True)
    return _apply(x, weight, bias, kmap, backend)


def generative_conv_transpose3d(x: SparseTensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None,
                                kernel_size: int = 2, stride: int = 2, dilation: int = 1,
                                backend: Union[str, Backend, None] = None) -> SparseTensor:
    """Generative transposed conv: outputs every ``coords * stride + off[k]`` (at tensor stride x.stride/stride)."""
    check_kernel_args(kernel_size, stride, dilation)
    x, weight, bias = _prepare(x, weight, kernel_size, bias)
    out_key = x.manager.generate(x.key, kernel_size, stride, dilation)
    kmap = x.manager.kernel_map(x.key, out_key, kernel_size, stride, dilation, transposed=True)
    return _apply(x, weight, bias, kmap, backend)

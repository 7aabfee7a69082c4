"""torch.distributed set-up for `torchrun` (env:// rendezvous), a no-op in a single process; and
:func:`wrap_ddp`, DistributedDataParallel for networks whose output is a SparseTensor."""
from __future__ import annotations

import os
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Iterator, List

import torch
import torch.distributed as dist

from sparse3d.tensor import SparseTensor


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str) -> DistInfo:
    """Initialise the process group when launched by torchrun (WORLD_SIZE > 1): nccl for CUDA,
    gloo for CPU. Returns rank information."""
    ws = int(os.environ.get("WORLD_SIZE", "1"))
    if ws <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), ws, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return info


def resolve_device(device: str, info: DistInfo) -> torch.device:
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} but CUDA is not available in this torch build/machine")
        if info.enabled:
            return torch.device("cuda", info.local_rank)
    return torch.device(device)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def output_tensors(out: Any) -> Iterator[torch.Tensor]:
    """The tensors of a forward's output: tensors, the feats of SparseTensors, inside lists, tuples, dicts and
    dataclasses (at any depth)."""
    if isinstance(out, torch.Tensor):
        yield out
    elif isinstance(out, SparseTensor):
        yield out.feats
    elif isinstance(out, (list, tuple)):
        for v in out:
            yield from output_tensors(v)
    elif isinstance(out, dict):
        for v in out.values():
            yield from output_tensors(v)
    elif is_dataclass(out) and not isinstance(out, type):
        for f in fields(out):
            yield from output_tensors(getattr(out, f.name))


@dataclass
class _Exposed:
    """A forward's output with its tensors listed beside it: DDP looks for the tensors of an output inside
    dataclasses but not inside a SparseTensor."""

    value: Any
    tensors: List[torch.Tensor]


class _Expose(torch.nn.Module):
    """``net`` whose forward returns :class:`_Exposed` (the parameters keep their names under ``net.``)."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, *args: Any, **kwargs: Any) -> _Exposed:
        out = self.net(*args, **kwargs)
        return _Exposed(out, list(output_tensors(out)))


class _SparseDDP(torch.nn.parallel.DistributedDataParallel):
    """DDP over :class:`_Expose`; ``model(x)`` returns what the wrapped network returns."""

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return super().forward(*args, **kwargs).value


def wrap_ddp(net: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``net`` under DistributedDataParallel (``find_unused_parameters=True``: a step may leave some weights
    unused, e.g. a completion level with no voxels). DDP finds the weights a step used by walking back from
    the tensors of the forward's output, and it does not see inside a SparseTensor: a network returning one
    (the segmentation U-Net) had every weight taken for unused, and the backward then failed with "marked a
    variable ready twice". The wrapper hands DDP the output's tensors (:func:`output_tensors`) and returns the
    network's own output. The weights stay ``net``'s (checkpoints save ``net``, not the wrapper)."""
    return _SparseDDP(_Expose(net), device_ids=[device.index] if device.type == "cuda" else None,
                      find_unused_parameters=True)

"""torch.distributed set-up for `torchrun` (env:// rendezvous); a no-op in a single process."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


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

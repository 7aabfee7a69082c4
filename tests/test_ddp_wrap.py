"""`sparse3d.train.distributed.wrap_ddp`: DistributedDataParallel over networks that return a SparseTensor
(the segmentation U-Net) or a dataclass of tensors (completion), in a one-process gloo group.
Plain DDP with find_unused_parameters=True sees no tensor in a SparseTensor output, takes every weight for
unused, and the backward fails with "marked a variable ready twice"."""
from dataclasses import dataclass
from typing import List

import pytest
import torch
import torch.distributed as dist
from torch import nn

import sparse3d.nn as snn
from sparse3d.tensor import SparseTensor
from sparse3d.train.distributed import output_tensors, wrap_ddp


class SparseNet(nn.Module):
    """conv -> ReLU -> linear; returns a SparseTensor."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = snn.SubMConv3d(3, 8, 3)
        self.relu = snn.ReLU()
        self.head = snn.Linear(8, 4)

    def forward(self, x: SparseTensor) -> SparseTensor:
        return self.head(self.relu(self.conv(x)))


@dataclass
class Out:
    logits: List[torch.Tensor]
    sparse: SparseTensor


class DataclassNet(SparseNet):
    """The same with an output dataclass and a weight it never uses (what find_unused_parameters is for)."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Linear(2, 2)

    def forward(self, x: SparseTensor) -> Out:
        y = super().forward(x)
        return Out([y.feats[:, :2]], y)


@pytest.fixture
def one_process_group(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rdzv'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def _input() -> SparseTensor:
    g = torch.Generator().manual_seed(0)
    coords = torch.unique(torch.randint(0, 6, (60, 3), generator=g), dim=0)
    coords = torch.cat([torch.zeros(len(coords), 1, dtype=torch.long), coords], 1).int()
    return SparseTensor(coords, torch.randn(len(coords), 3, generator=g))


@pytest.mark.parametrize("make", [SparseNet, DataclassNet])
def test_wrapped_network_trains_like_the_network(one_process_group, make):
    torch.manual_seed(0)
    net = make()
    ref = make()
    ref.load_state_dict(net.state_dict())
    model = wrap_ddp(net, torch.device("cpu"))
    x = _input()
    for _ in range(2):  # two steps: the reducer's state is reset correctly between iterations
        out = model(x)
        assert isinstance(out, type(ref(x)))
        feats = out.feats if isinstance(out, SparseTensor) else out.sparse.feats
        ref_feats = ref(x).feats if make is SparseNet else ref(x).sparse.feats
        torch.testing.assert_close(feats, ref_feats)
        for m in (net, ref):
            m.zero_grad(set_to_none=True)
        feats.square().mean().backward()
        ref_feats.square().mean().backward()
        for (k, p), q in zip(net.named_parameters(), ref.parameters()):
            if q.grad is None:
                assert p.grad is None, k
            else:
                torch.testing.assert_close(p.grad, q.grad, msg=k)
        with torch.no_grad():
            for p, q in zip(net.parameters(), ref.parameters()):
                if p.grad is not None:
                    p -= 0.1 * p.grad
                    q -= 0.1 * q.grad
    assert set(net.state_dict()) == set(ref.state_dict())  # the network keeps its own weight names


def test_output_tensors_walks_containers():
    x = _input()
    t = torch.ones(2)
    found = list(output_tensors({"a": [x, (t,)], "b": Out([t], x), "c": 3}))
    assert len(found) == 4 and found[0] is x.feats and found[1] is t and found[3] is x.feats

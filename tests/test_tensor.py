"""SparseTensor: construction and validation, dense/points round trips, batching, devices."""
import pytest
import torch

import sparse3d as s3d
from sparse3d.testing import random_sparse


def _coords(rows):
    return torch.tensor(rows, dtype=torch.int32)


def test_construct_and_properties():
    x = s3d.SparseTensor(_coords([[0, 1, 2, 3], [1, -4, 5, 6]]), torch.ones(2, 3), stride=2)
    assert len(x) == 2 and x.num_channels == 3 and x.stride == 2 and x.batch_size == 2
    assert x.coords.dtype == torch.int32 and x.coords[1].tolist() == [1, -4, 5, 6]


def test_int64_coords_are_accepted_as_int32():
    x = s3d.SparseTensor(torch.tensor([[0, 1, 2, 3]]), torch.ones(1, 1))
    assert x.coords.dtype == torch.int32


@pytest.mark.parametrize("coords,feats,exc,match", [
    (torch.zeros(2, 4), torch.ones(2, 1), TypeError, "int32"),
    (torch.zeros(2, 3, dtype=torch.int32), torch.ones(2, 1), ValueError, r"\[N, 4\]"),
    (torch.tensor([[0, 1, 1, 1], [0, 2, 2, 2]], dtype=torch.int32), torch.ones(3, 1), ValueError, "same N"),
    (torch.tensor([[0, 1, 1, 1], [0, 1, 1, 1]], dtype=torch.int32), torch.ones(2, 1), ValueError, "duplicate"),
    (torch.tensor([[0, 1, 1, 1]], dtype=torch.int32), torch.ones(1), ValueError, r"\[N, C\]"),
    (torch.tensor([[0, 1, 1, 1]], dtype=torch.int32), torch.ones(1, 1, dtype=torch.long), TypeError, "floating"),
    (torch.tensor([[-1, 1, 1, 1]], dtype=torch.int32), torch.ones(1, 1), ValueError, "batch"),
    (torch.tensor([[0, 40000, 1, 1]], dtype=torch.int32), torch.ones(1, 1), ValueError, "x, y, z"),
    ([[0, 1, 1, 1]], torch.ones(1, 1), TypeError, "torch.Tensor"),
])
def test_bad_input_raises_clear_errors(coords, feats, exc, match):
    with pytest.raises(exc, match=match):
        s3d.SparseTensor(coords, feats)


def test_bad_stride():
    with pytest.raises(ValueError, match="stride"):
        s3d.SparseTensor(_coords([[0, 0, 0, 0]]), torch.ones(1, 1), stride=0)


def test_dense_round_trip():
    vol = torch.zeros(2, 3, 4, 5, 6)
    vol[0, :, 1, 2, 3] = torch.tensor([1.0, 2.0, 3.0])
    vol[1, 1, 3, 4, 5] = -2.0
    x = s3d.SparseTensor.from_dense(vol)
    assert len(x) == 2
    assert torch.equal(x.dense(spatial_shape=(4, 5, 6)), vol)
    with pytest.raises(ValueError, match="spatial_shape"):
        x.dense(spatial_shape=(2, 2, 2))
    with pytest.raises(ValueError, match="origin"):
        x.dense(origin=(2, 0, 0))


def test_from_points_averages_and_maps_back():
    pts = torch.tensor([[0.01, 0.01, 0.01], [0.015, 0.005, 0.0], [0.05, 0.0, -0.01]])
    feats = torch.tensor([[1.0], [3.0], [5.0]])
    x, p2v = s3d.SparseTensor.from_points(pts, feats, voxel_size=0.02)
    assert len(x) == 2
    assert p2v[0] == p2v[1] != p2v[2]
    assert x.feats[p2v[0]].item() == 2.0 and x.feats[p2v[2]].item() == 5.0
    assert x.coords[p2v[2]].tolist() == [0, 2, 0, -1]
    # predictions go back to points through the map
    assert torch.equal(x.feats[p2v][:, 0], torch.tensor([2.0, 2.0, 5.0]))
    with pytest.raises(ValueError, match="voxel_size"):
        s3d.SparseTensor.from_points(pts, voxel_size=0)
    with pytest.raises(ValueError, match="finite"):
        s3d.SparseTensor.from_points(torch.tensor([[float("nan"), 0.0, 0.0]]))


def test_collate_and_split_round_trip():
    a = random_sparse(30, 8, 2, seed=1)
    b = random_sparse(20, 8, 2, seed=2)
    batch = s3d.SparseTensor.collate([a, b])
    assert batch.batch_size == 2 and len(batch) == len(a) + len(b)
    parts = batch.split()
    assert torch.equal(parts[0].coords, a.coords) and torch.equal(parts[1].feats, b.feats)
    with pytest.raises(ValueError, match="at least one"):
        s3d.SparseTensor.collate([])


def test_replace_keeps_the_manager_and_its_maps():
    x = random_sparse(50, 8, 2, seed=3)
    y = s3d.ops.conv3d(x, torch.randn(27, 2, 4, dtype=torch.float64), kernel_size=3)
    z = x.replace(torch.randn(len(x), 2, dtype=torch.float64))
    assert z.manager is x.manager is y.manager
    k1 = x.manager.kernel_map(x.key, x.key, 3, 1)
    s3d.ops.conv3d(z, torch.randn(27, 2, 4, dtype=torch.float64), kernel_size=3)
    assert x.manager.kernel_map(x.key, x.key, 3, 1) is k1  # computed once, shared
    with pytest.raises(ValueError, match=rf"\[N={len(x)}"):
        x.replace(torch.ones(3, 2))


def test_to_dtype_and_device():
    x = random_sparse(10, 5, 2, seed=4)
    y = x.to(dtype=torch.float32)
    assert y.dtype == torch.float32 and y.manager is x.manager
    assert x.to("cpu").manager is x.manager


def test_empty_tensor_flows_through_every_op():
    x = s3d.SparseTensor(torch.zeros(0, 4, dtype=torch.int32), torch.zeros(0, 3))
    assert x.batch_size == 0 and x.dense().shape == (0, 3, 0, 0, 0)
    net = [s3d.nn.SubMConv3d(3, 4), s3d.nn.BatchNorm(4), s3d.nn.SampleNorm(4), s3d.nn.ReLU(), s3d.nn.Conv3d(4, 5, 2, 2),
           s3d.nn.ConvTranspose3d(5, 4, 2, 2), s3d.nn.Conv3d(4, 6, 3, 2), s3d.nn.GenerativeConvTranspose3d(6, 2),
           s3d.nn.MaxPool3d(), s3d.nn.AvgPool3d(), s3d.nn.Linear(2, 3)]
    y = x
    for m in net:
        y = m(y)
        assert len(y) == 0
    assert y.num_channels == 3
    y.feats.sum().backward()
    assert s3d.ops.global_pool(x).shape == (0, 3)
    assert len(s3d.ops.prune(x, torch.zeros(0, dtype=torch.bool))) == 0
    assert len(s3d.ops.add(x, x)) == 0 and s3d.ops.cat(x, x).num_channels == 6
    assert s3d.SparseTensor.from_points(torch.zeros(0, 3))[0].coords.shape == (0, 4)


def test_declared_batch_size_survives_empty_items_ops_and_split():
    a = s3d.SparseTensor(torch.tensor([[0, 1, 2, 3], [0, 2, 2, 3]], dtype=torch.int32), torch.ones(2, 3))
    empty = s3d.SparseTensor(torch.zeros((0, 4), dtype=torch.int32), torch.zeros(0, 3))
    batch = s3d.SparseTensor.collate([a, empty, empty])
    assert batch.batch_size == 3
    parts = batch.split()
    assert [len(p) for p in parts] == [2, 0, 0]
    y = s3d.nn.SubMConv3d(3, 4, 3)(batch)  # derived tensors share the manager, and its batch size
    assert y.batch_size == 3 and s3d.ops.global_pool(y).shape == (3, 4)
    assert s3d.SparseTensor(a.coords, a.feats, batch_size=5).dense().shape[0] == 5
    with pytest.raises(ValueError, match="batch_size=0 is smaller than the batch indices present"):
        s3d.SparseTensor(a.coords, a.feats, batch_size=0)

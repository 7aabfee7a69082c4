"""Pooling, pruning, union/concatenation and alignment against direct computations."""
import pytest
import torch

import sparse3d as s3d
from sparse3d.testing import random_sparse


def test_max_and_avg_pool_match_dense_pooling():
    x = random_sparse(200, 12, 3, batch_size=2, seed=0)
    vol = x.dense(spatial_shape=(12, 12, 12))
    occ = x.replace(torch.ones(len(x), 1, dtype=torch.float64)).dense(spatial_shape=(12, 12, 12))
    y = s3d.ops.max_pool3d(x, 2, 2)
    c = y.coords.long()
    neg = torch.where(occ > 0, vol, torch.full_like(vol, -1e9))
    ref_max = torch.nn.functional.max_pool3d(neg, 2, 2)[c[:, 0], :, c[:, 1], c[:, 2], c[:, 3]]
    assert torch.allclose(y.feats, ref_max)
    a = s3d.ops.avg_pool3d(x, 2, 2)
    s = torch.nn.functional.avg_pool3d(vol, 2, 2) * 8
    n = torch.nn.functional.avg_pool3d(occ, 2, 2) * 8
    ref_avg = (s / n.clamp_min(1))[c[:, 0], :, c[:, 1], c[:, 2], c[:, 3]]
    assert torch.allclose(a.feats, ref_avg)
    assert torch.equal(a.coords, y.coords) and y.stride == 2
    # every coarse voxel holding an input voxel is there, and nothing else
    assert int((torch.nn.functional.max_pool3d(occ, 2, 2) > 0).sum()) == len(y)


def test_pool_gradients_flow():
    x = random_sparse(40, 6, 2, seed=1)
    f = x.feats.clone().requires_grad_(True)
    s3d.ops.max_pool3d(x.replace(f)).feats.sum().backward()
    # each output's max comes from exactly one input per channel
    assert f.grad.sum().item() == 2 * len(s3d.ops.max_pool3d(x))


def test_global_pool_per_batch_item():
    x = random_sparse(100, 8, 2, batch_size=3, seed=2)
    b = x.coords[:, 0].long()
    for mode, fn in (("mean", lambda t: t.mean(0)), ("max", lambda t: t.max(0).values), ("sum", lambda t: t.sum(0))):
        out = s3d.ops.global_pool(x, mode)
        for i in range(3):
            assert torch.allclose(out[i], fn(x.feats[b == i]))
    with pytest.raises(ValueError, match="mode"):
        s3d.ops.global_pool(x, "median")


def test_prune():
    x = random_sparse(50, 8, 2, seed=3)
    keep = x.feats[:, 0] > 0
    y = s3d.nn.Prune()(x, keep)
    assert torch.equal(y.coords, x.coords[keep]) and torch.equal(y.feats, x.feats[keep])
    assert y.manager is x.manager
    with pytest.raises(ValueError, match="bool"):
        s3d.ops.prune(x, keep.float())


def test_add_and_cat_over_different_coordinates():
    a = s3d.SparseTensor(torch.tensor([[0, 0, 0, 0], [0, 1, 0, 0]], dtype=torch.int32), torch.tensor([[1.0], [2.0]]))
    b = s3d.SparseTensor(torch.tensor([[0, 1, 0, 0], [0, 2, 0, 0]], dtype=torch.int32), torch.tensor([[10.0], [20.0]]))
    s = s3d.ops.add(a, b)
    assert s.coords[:, 1].tolist() == [0, 1, 2] and s.feats[:, 0].tolist() == [1.0, 12.0, 20.0]
    c = s3d.ops.cat(a, b)
    assert c.feats.tolist() == [[1.0, 0.0], [2.0, 10.0], [0.0, 20.0]]
    feats, found = s3d.ops.align(a, b)
    assert found.tolist() == [True, False] and feats[:, 0].tolist() == [2.0, 0.0]
    with pytest.raises(ValueError, match="stride"):
        s3d.ops.add(a, s3d.SparseTensor(b.coords, b.feats, stride=2))


def test_cat_same_coordinates_is_channel_concat():
    x = random_sparse(20, 5, 2, seed=4)
    y = s3d.ops.cat(x, x.replace(x.feats * 2))
    assert y.key == x.key and torch.equal(y.feats[:, 2:], 2 * x.feats)


def test_lookup_in_a_full_hash_table_ends():
    """The probe loop is bounded by the table's capacity: a table with no empty slot (which the
    builders never make) answers "absent" instead of looping forever. Run in a subprocess with a
    timeout so that a regression fails instead of hanging the suite."""
    import subprocess
    import sys

    code = (
        "import torch\n"
        "from sparse3d import _ext\n"
        "t = _ext.load().hash.build(torch.tensor([[0, 1, 2, 3]], dtype=torch.int32))\n"
        "t.keys.fill_(int(t.keys.max()))  # every slot holds the one stored key: no empty slot left\n"
        "t.values.fill_(0)\n"
        "print(t.lookup(torch.tensor([[0, 1, 2, 3], [0, 5, 5, 5], [1, 1, 2, 3]], dtype=torch.int32)).tolist())\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[0, -1, -1]"


def test_pruned_and_united_coarse_sets_keep_their_way_back_to_the_fine_set():
    """A transposed conv without target= after prune / add of down-sampled tensors goes back onto
    the set they were down-sampled from, with the contributions of the kept coarse voxels only."""
    x = random_sparse(120, 12, 3, seed=5)
    w_down = torch.randn(8, 3, 4, dtype=torch.float64)
    w_up = torch.randn(8, 4, 2, dtype=torch.float64)
    h = s3d.ops.conv3d(x, w_down, None, 2, 2)
    keep = torch.arange(len(h)) % 3 != 0
    hp = s3d.ops.prune(h, keep)
    y = s3d.ops.conv_transpose3d(hp, w_up, None, 2, 2)
    assert torch.equal(y.coords, x.coords)
    ref = s3d.ops.conv_transpose3d(h.replace(h.feats * keep[:, None]), w_up, None, 2, 2)
    torch.testing.assert_close(y.feats, ref.feats)
    u = s3d.ops.add(hp, s3d.ops.prune(h, ~keep))
    assert torch.equal(s3d.ops.conv_transpose3d(u, w_up, None, 2, 2).coords, x.coords)
    with pytest.raises(ValueError, match="parent must be the key of a finer set"):
        x.manager.insert(h.coords, 2, parent=h.key)

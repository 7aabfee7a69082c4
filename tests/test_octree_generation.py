"""Octree generation (Octree.grow) against octrees built from cells, and its errors."""
import pytest
import torch

import sparse3d as s3d
from sparse3d.octree import Octree, OctreeConv, OctreeDeconv

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _cells(n: int, depth: int, batch: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xyz = torch.randint(0, 1 << depth, (n, 3), generator=g)
    b = torch.randint(0, batch, (n, 1), generator=g)
    return torch.cat([b, xyz], 1).int()


@pytest.mark.parametrize("batch", [1, 3])
def test_grow_equals_the_octree_built_from_the_finer_cells(batch):
    """Splitting exactly the depth-D nodes that hold finer cells gives the depth D+1 of the octree built from
    those cells: keys, coords, children links, neighbour tables."""
    depth = 5
    cells = _cells(400, depth + 1, batch, 0)
    full, _ = Octree.from_cells(cells, depth + 1, batch_size=batch)
    coarse, _ = Octree.from_cells(torch.cat([cells[:, :1], cells[:, 1:] // 2], 1), depth, batch_size=batch,
                                  leaf_stride=2)
    assert torch.equal(coarse.keys[depth], full.keys[depth])  # the same nodes at depth D
    grown = coarse.grow(full.children[depth] >= 0)
    assert grown.depth == depth + 1 and grown.leaf_stride == 1 and grown.batch_size == batch
    for d in range(depth + 2):
        assert torch.equal(grown.keys[d], full.keys[d]), d
        assert torch.equal(grown.coords[d], full.coords[d]), d
        assert torch.equal(grown.neighbors(d), full.neighbors(d)), d
    for d in range(depth + 1):
        assert torch.equal(grown.children[d], full.children[d]), d
    assert (grown.children[depth + 1] == -1).all()  # the new leaves are undecided (empty)
    assert grown.features[depth + 1].shape == (grown.num_nodes(depth + 1), 0)
    assert int(grown.counts[depth + 1].sum()) == 0
    assert grown.stride(depth) == 2 and grown.stride(depth + 1) == 1


def test_grown_ops_equal_the_native_sparse_ops_float64():
    """Deconv to the generated children and a conv there equal sparse3d's generative transposed conv and
    submanifold conv on the same coordinates and weights."""
    torch.manual_seed(0)
    cells = _cells(300, 4, 2, 1)
    octree, _ = Octree.from_cells(cells, 4, batch_size=2, leaf_stride=2)
    split = torch.rand(octree.num_nodes(4)) < 0.4
    grown = octree.grow(split)
    f = torch.randn(octree.num_nodes(4), 3, dtype=torch.float64, requires_grad=True)
    up = OctreeDeconv(3, 5).double()
    conv = OctreeConv(5, 4).double()
    g = conv(up(f, grown, 4), grown, 5)
    # the sparse reference: the split parents' 8 children (generative transposed conv), then SubMConv3d
    parents = s3d.SparseTensor(octree.coords[4][split], f[split], stride=2, batch_size=2)
    sup = s3d.nn.GenerativeConvTranspose3d(3, 5, 2, stride=2).double()
    sconv = s3d.nn.SubMConv3d(5, 4, 3).double()
    with torch.no_grad():
        sup.weight.copy_(up.weight)
        sup.bias.copy_(up.bias)
        sconv.weight.copy_(conv.weight)
        sconv.bias.copy_(conv.bias)
    ref = sconv(sup(parents))
    got = grown.to_sparse(5, g)
    vals, found = s3d.ops.align(ref, got)
    assert bool(found.all()) and len(ref) == len(got)
    assert torch.allclose(vals, g, atol=1e-12)
    (g ** 2).sum().backward()
    assert f.grad is not None and torch.isfinite(f.grad).all()
    assert f.grad[~split].abs().sum() == 0  # nodes not split feed no child


def test_grow_repeatedly_and_with_nothing_split():
    octree, _ = Octree.from_cells(_cells(50, 3, 1, 2), 3)
    grown = octree.grow(octree.nonempty_mask(3))
    grown = grown.grow(torch.ones(grown.num_nodes(4), dtype=torch.bool))
    assert grown.depth == 5 and grown.num_nodes(5) == 8 * grown.num_nodes(4)
    empty = grown.grow(torch.zeros(grown.num_nodes(5), dtype=torch.bool))
    assert empty.num_nodes(6) == 0
    out = OctreeConv(1, 2)(torch.zeros(0, 1), empty, 6)
    assert out.shape == (0, 2)
    assert empty.neighbors(6).shape == (0, 27)


def test_grow_errors_name_the_argument():
    octree, _ = Octree.from_cells(_cells(20, 3, 1, 3), 3)
    n = octree.num_nodes(3)
    with pytest.raises(ValueError, match=rf"split must be bool \[N={n}\]"):
        octree.grow(torch.ones(n + 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="split must be bool"):
        octree.grow(torch.ones(n, dtype=torch.int64))
    with pytest.raises(TypeError, match="split"):
        octree.grow([True] * n)
    odd, _ = Octree.from_cells(_cells(20, 3, 1, 3), 3, leaf_stride=3)
    with pytest.raises(ValueError, match="odd leaf_stride 3"):
        odd.grow(torch.ones(odd.num_nodes(3), dtype=torch.bool))
    deep, _ = Octree.from_cells(torch.zeros(1, 4, dtype=torch.int32), 15)
    with pytest.raises(ValueError, match="cannot grow an octree of depth 15"):
        deep.grow(torch.ones(deep.num_nodes(15), dtype=torch.bool))

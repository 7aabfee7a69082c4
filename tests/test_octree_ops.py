"""Octree ops (sparse3d/octree/functional.py, nn.py) against sparse3d's native sparse ops on the same
coordinates and weights (float64, forward and gradients), gradcheck on tiny inputs, and errors."""
import pytest
import torch

from sparse3d import ops
from sparse3d.coords import pack
from sparse3d.octree import (Octree, OctreeConv, OctreeDeconv, octree_avg_pool, octree_conv, octree_deconv,
                             octree_max_pool, octree_max_unpool, octree_upsample)
from sparse3d.tensor import SparseTensor


def _octree(depth=4, n=250, seed=0, batch=2):
    g = torch.Generator().manual_seed(seed)
    trees = []
    for b in range(batch):
        v = torch.randn(n, 3, generator=g, dtype=torch.float64)
        pts = v / v.norm(dim=1, keepdim=True) * (0.8 - 0.3 * b)
        trees.append(Octree.from_points(pts, depth, full_depth=1)[0])
    return Octree.merge(trees)


def _rows(a, b):
    """rows of coords b in coords a (int64), -1 where absent."""
    ka, kb = pack(a), pack(b)
    order = torch.argsort(ka)
    pos = torch.searchsorted(ka[order], kb).clamp(max=len(ka) - 1)
    hit = ka[order][pos] == kb
    return torch.where(hit, order[pos], torch.full_like(pos, -1))


def _leaf(t):
    return t.detach().clone().requires_grad_(True)


@pytest.mark.parametrize("nempty", [False, True])
def test_conv_equals_native_submanifold(nempty):
    octree = _octree()
    g = torch.Generator().manual_seed(1)
    for depth in (2, 4):
        n = octree.num_nodes(depth, nempty)
        f = torch.randn(n, 3, generator=g, dtype=torch.float64)
        w = torch.randn(27, 3, 5, generator=g, dtype=torch.float64)
        f1, w1, f2, w2 = _leaf(f), _leaf(w), _leaf(f), _leaf(w)
        y = octree_conv(f1, octree, depth, w1, nempty=nempty)
        x = octree.to_sparse(depth, f2, nempty=nempty)
        ref = ops.conv3d(x, w2, kernel_size=3)  # submanifold: same coordinates, same row order
        torch.testing.assert_close(y, ref.feats)
        gy = torch.randn(y.shape, generator=g, dtype=torch.float64)
        (y * gy).sum().backward()
        (ref.feats * gy).sum().backward()
        torch.testing.assert_close(f1.grad, f2.grad)
        torch.testing.assert_close(w1.grad, w2.grad)


@pytest.mark.parametrize("kernel_size", [2, 3])
@pytest.mark.parametrize("nempty", [False, True])
def test_strided_conv_equals_native(kernel_size, nempty):
    octree = _octree()
    g = torch.Generator().manual_seed(2)
    depth = 4
    f = torch.randn(octree.num_nodes(depth, nempty), 4, generator=g, dtype=torch.float64)
    w = torch.randn(kernel_size**3, 4, 3, generator=g, dtype=torch.float64)
    f1, w1, f2, w2 = _leaf(f), _leaf(w), _leaf(f), _leaf(w)
    y = octree_conv(f1, octree, depth, w1, kernel_size=kernel_size, stride=2, nempty=nempty)
    assert y.shape[0] == octree.num_nodes(depth - 1, nempty)
    ref = ops.conv3d(octree.to_sparse(depth, f2, nempty=nempty), w2, kernel_size=kernel_size, stride=2)
    out_coords = octree.coords[depth - 1]
    if nempty:
        out_coords = out_coords[octree.nonempty_rows(depth - 1)]
    rows = _rows(ref.coords, out_coords)
    # nodes the native conv does not produce have no input in their window: 0
    assert bool((y[rows < 0] == 0).all())
    if not nempty and kernel_size == 2:
        assert torch.equal(rows >= 0, octree.nonempty_mask(depth - 1))
    torch.testing.assert_close(y[rows >= 0], ref.feats[rows[rows >= 0]])
    # every native output with an input is an octree node (or none at all: the native set is larger for k3)
    gy = torch.randn(y.shape, generator=g, dtype=torch.float64)
    (y * gy).sum().backward()
    g_ref = torch.zeros_like(ref.feats)
    g_ref[rows[rows >= 0]] = gy[rows >= 0]
    (ref.feats * g_ref).sum().backward()
    torch.testing.assert_close(f1.grad, f2.grad)
    torch.testing.assert_close(w1.grad, w2.grad)


def test_deconv_equals_native_transposed_conv():
    octree = _octree()
    g = torch.Generator().manual_seed(3)
    depth = 3  # input depth; output at depth 4
    fine = octree.to_sparse(depth + 1, torch.zeros(octree.num_nodes(depth + 1), 1, dtype=torch.float64))
    coarse_set = ops.conv3d(fine, torch.zeros(8, 1, 1, dtype=torch.float64), kernel_size=2, stride=2)
    f = torch.randn(octree.num_nodes(depth), 4, generator=g, dtype=torch.float64)
    w = torch.randn(8, 4, 3, generator=g, dtype=torch.float64)
    f1, w1, w2 = _leaf(f), _leaf(w), _leaf(w)
    y = octree_deconv(f1, octree, depth, w1)
    assert y.shape[0] == octree.num_nodes(depth + 1)
    rows = _rows(octree.coords[depth], coarse_set.coords)
    assert bool((rows >= 0).all())
    f2 = _leaf(f[rows])
    ref = ops.conv_transpose3d(coarse_set.replace(f2), w2, kernel_size=2, stride=2, target=fine)
    torch.testing.assert_close(y, ref.feats)  # the target's rows are the octree's rows
    gy = torch.randn(y.shape, generator=g, dtype=torch.float64)
    (y * gy).sum().backward()
    (ref.feats * gy).sum().backward()
    torch.testing.assert_close(f1.grad[rows], f2.grad)
    assert bool((f1.grad[octree.children[depth] < 0] == 0).all())  # empty nodes have no children
    torch.testing.assert_close(w1.grad, w2.grad)


@pytest.mark.parametrize("nempty", [False, True])
def test_pooling_equals_native_and_unpooling(nempty):
    octree = _octree()
    g = torch.Generator().manual_seed(4)
    depth = 4
    f = torch.randn(octree.num_nodes(depth, nempty), 3, generator=g, dtype=torch.float64)
    x = octree.to_sparse(depth, f, nempty=nempty)
    out_coords = octree.coords[depth - 1]
    if nempty:
        out_coords = out_coords[octree.nonempty_rows(depth - 1)]
    for ours, theirs in ((octree_avg_pool(f, octree, depth, nempty), ops.avg_pool3d(x, 2, 2)),
                         (octree_max_pool(f, octree, depth, nempty), ops.max_pool3d(x, 2, 2))):
        rows = _rows(theirs.coords, out_coords)
        torch.testing.assert_close(ours[rows >= 0], theirs.feats[rows[rows >= 0]])
        assert bool((ours[rows < 0] == 0).all()) and int((rows >= 0).sum()) == len(theirs)
    vals, idx = octree_max_pool(f, octree, depth, nempty, return_indices=True)
    up = octree_max_unpool(vals, idx, octree, depth - 1, nempty)
    # brute force: each parent's max lands on its argmax child, the rest are 0
    nbr = octree.kernel_map(depth, 2, 2, nempty).nbr_out.long()
    want = torch.zeros_like(f)
    for o in range(nbr.shape[0]):
        for c in range(f.shape[1]):
            if (nbr[o] >= 0).any():
                want[nbr[o, idx[o, c]], c] = vals[o, c]
    torch.testing.assert_close(up, want)
    near = octree_upsample(vals, octree, depth - 1, nempty)
    parent = _rows(out_coords, torch.cat([x.coords[:, :1], x.coords[:, 1:] // 2], 1))
    torch.testing.assert_close(near, vals[parent])


def test_gradcheck_tiny():
    octree = _octree(depth=3, n=6, batch=1)
    g = torch.Generator().manual_seed(5)
    for depth, stride, k, fn in ((3, 1, 3, octree_conv), (3, 2, 2, octree_conv), (3, 2, 3, octree_conv),
                                 (2, 2, 2, octree_deconv)):
        f = torch.randn(octree.num_nodes(depth), 2, generator=g, dtype=torch.float64, requires_grad=True)
        w = torch.randn(k**3, 2, 2, generator=g, dtype=torch.float64, requires_grad=True)
        b = torch.randn(2, generator=g, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda f, w, b: fn(f, octree, depth, w, b, k, stride), (f, w, b))
    f = torch.randn(octree.num_nodes(3), 2, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f: octree_avg_pool(f, octree, 3), (f,))
    assert torch.autograd.gradcheck(lambda f: octree_max_pool(f, octree, 3), (f,))
    c = torch.randn(octree.num_nodes(2), 2, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda c: octree_upsample(c, octree, 2), (c,))
    _, idx = octree_max_pool(f.detach(), octree, 3, return_indices=True)
    c1 = torch.randn(octree.num_nodes(2), 2, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda c: octree_max_unpool(c, idx, octree, 2), (c1,))


def test_modules_backends_agree():
    octree = _octree()
    torch.manual_seed(0)
    conv = OctreeConv(3, 4, nempty=True).double()
    down = OctreeConv(4, 4, kernel_size=2, stride=2).double()
    up = OctreeDeconv(4, 2).double()
    f = torch.randn(octree.num_nodes(4, True), 3, dtype=torch.float64)

    def net():
        h = conv(f, octree, 4)
        full = torch.zeros(octree.num_nodes(4), 4, dtype=torch.float64)
        full[octree.nonempty_rows(4)] = h
        return up(down(full, octree, 4), octree, 3)

    native = net()
    from sparse3d.nn import set_backend

    for m in (conv, down, up):
        set_backend(m, "torch")
    torch.testing.assert_close(net(), native)
    assert "nempty=True" in repr(conv)
    # one cached kernel map per geometry, shared by every layer
    assert octree.kernel_map(4, 3, 1, True) is octree.kernel_map(4, 3, 1, True)


def test_op_errors_name_the_argument():
    octree = _octree(depth=3, n=20, batch=1)
    f = torch.zeros(octree.num_nodes(3), 2)
    w = torch.zeros(27, 2, 3)
    with pytest.raises(ValueError, match=r"feats must have shape \[N=\d+, C\] \(nodes at depth 2\)"):
        octree_conv(f, octree, 2, w)
    with pytest.raises(ValueError, match=r"weight must have shape \[K\*\*3=8, C_in=2, C_out\]"):
        octree_conv(f, octree, 3, w, kernel_size=2, stride=2)
    with pytest.raises(ValueError, match="stride must be one of"):
        octree_conv(f, octree, 3, w, stride=3)
    with pytest.raises(ValueError, match="kernel_size .stride 1. must be one of"):
        octree_conv(f, octree, 3, torch.zeros(125, 2, 3), kernel_size=5)
    with pytest.raises(ValueError, match="depth must be"):
        octree_conv(torch.zeros(octree.num_nodes(0), 2), octree, 0, torch.zeros(8, 2, 3), kernel_size=2, stride=2)
    with pytest.raises(ValueError, match="depth must be"):
        octree_deconv(f, octree, 3, torch.zeros(8, 2, 3))
    with pytest.raises(TypeError, match="octree must be an Octree"):
        octree_conv(f, None, 3, w)
    with pytest.raises(TypeError, match="weight dtype"):
        octree_conv(f, octree, 3, w.double())
    with pytest.raises(ValueError, match="indices must be int64"):
        octree_max_unpool(torch.zeros(octree.num_nodes(2), 2), torch.zeros(3, 2, dtype=torch.long), octree, 2)
    with pytest.raises(ValueError, match="stride must be one of"):
        OctreeConv(2, 2, stride=4)
    x = SparseTensor(octree.coords[3], f)
    with pytest.raises(ValueError, match=r"feats must have shape"):
        octree_max_pool(x.feats[:3], octree, 3)

"""The C++ coordinate hash and kernel maps: exact tables, caching, and errors that are Python
exceptions (never a crash)."""
import pytest
import torch

import sparse3d as s3d
from sparse3d import _ext
from sparse3d.kernel import check_kernel_args, kernel_offsets
from sparse3d.testing import random_coords, random_sparse


def test_hash_lookup_is_exact():
    C = _ext.load()
    c = random_coords(500, 20, batch_size=3, seed=0)
    t = C.hash.build(c)
    assert torch.equal(t.lookup(c), torch.arange(len(c), dtype=torch.int32))
    q = c.clone()
    q[:, 1] += 100
    assert (t.lookup(q) == -1).all()


def test_hash_errors_are_python_exceptions():
    C = _ext.load()
    with pytest.raises(ValueError, match="duplicate"):
        C.hash.build(torch.tensor([[0, 1, 2, 3], [0, 1, 2, 3]], dtype=torch.int32))
    with pytest.raises(ValueError, match="out of range"):
        C.hash.build(torch.tensor([[0, 1, 2, 70000]], dtype=torch.int32))
    with pytest.raises(TypeError, match="Int"):
        C.hash.build(torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        C.hash.build(torch.zeros(2, 3, dtype=torch.int32))


def test_conv_kernel_checks_bad_tables():
    C = _ext.load()
    feats = torch.randn(3, 2)
    w = torch.randn(27, 2, 4)
    with pytest.raises(ValueError, match="N_in"):
        C.conv.forward(feats, w, torch.full((5, 27), 7, dtype=torch.int32))
    with pytest.raises(ValueError, match="K=27"):
        C.conv.forward(feats, w, torch.zeros((5, 8), dtype=torch.int32))
    with pytest.raises(TypeError, match="dtype"):
        C.conv.forward(feats.double(), w, torch.zeros((5, 27), dtype=torch.int32))


def test_submanifold_table_against_brute_force():
    x = random_sparse(300, 10, 1, batch_size=2, seed=1)
    km = x.manager.kernel_map(x.key, x.key, 3, 1, 2)
    c = x.coords.tolist()
    index = {tuple(r): i for i, r in enumerate(c)}
    off = kernel_offsets(3, 2).tolist()
    for o, row in enumerate(c):
        for k, d in enumerate(off):
            q = (row[0], row[1] + d[0], row[2] + d[1], row[3] + d[2])
            assert km.nbr_out[o, k].item() == index.get(q, -1)
    # input-stationary table is the same pairs seen from the inputs
    pairs_out = {(int(km.nbr_out[o, k]), o, k) for o in range(len(c)) for k in range(27) if km.nbr_out[o, k] >= 0}
    pairs_in = {(i, int(km.nbr_in[i, k]), k) for i in range(len(c)) for k in range(27) if km.nbr_in[i, k] >= 0}
    assert pairs_out == pairs_in


@pytest.mark.parametrize("k,s", [(2, 2), (3, 2), (2, 1), (4, 2)])
def test_strided_tables_are_transposes(k, s):
    x = random_sparse(200, 12, 1, batch_size=2, seed=k * 10 + s)
    out = x.manager.downsample(x.key, k, s)
    km = x.manager.kernel_map(x.key, out, k, s)
    po = {(int(km.nbr_out[o, j]), o, j) for o in range(km.nbr_out.shape[0]) for j in range(k**3) if km.nbr_out[o, j] >= 0}
    pi = {(i, int(km.nbr_in[i, j]), j) for i in range(km.nbr_in.shape[0]) for j in range(k**3) if km.nbr_in[i, j] >= 0}
    assert po == pi and len(po) > 0
    t = x.manager.kernel_map(out, x.key, k, s, transposed=True)  # the same pairs, swapped
    assert torch.equal(t.nbr_out, km.nbr_in) and torch.equal(t.nbr_in, km.nbr_out) and t.transposed


def test_down_and_generated_sets_are_cached():
    x = random_sparse(100, 10, 1, seed=2)
    m = x.manager
    assert m.downsample(x.key, 2, 2) == m.downsample(x.key, 2, 2)
    d = m.downsample(x.key, 2, 2)
    assert m.parent(d) == x.key and m.stride(d) == 2
    g = m.generate(d, 2, 2)
    assert g == m.generate(d, 2, 2) and m.stride(g) == 1
    # every fine voxel lies in a generated child set of its parent
    assert set(map(tuple, x.coords.tolist())) <= set(map(tuple, m.coords(g).tolist()))
    with pytest.raises(ValueError, match="stride"):
        m.generate(x.key, 2, 2)


@pytest.mark.parametrize("args,match", [((0, 1, 1), "kernel_size"), ((8, 1, 1), "kernel_size"),
                                        ((3, 0, 1), "stride"), ((3, 1, 0), "dilation"), ((3.0, 1, 1), "int")])
def test_kernel_args_checked(args, match):
    with pytest.raises((ValueError, TypeError), match=match):
        check_kernel_args(*args)


def test_module_argument_errors():
    with pytest.raises(ValueError, match="backend"):
        s3d.nn.SubMConv3d(2, 3, backend="cudnn")
    with pytest.raises(ValueError, match="in_channels"):
        s3d.nn.SubMConv3d(0, 3)
    x = random_sparse(10, 5, 2, seed=3)
    with pytest.raises(ValueError, match="C_in=2"):
        s3d.ops.conv3d(x, torch.randn(27, 3, 4, dtype=torch.float64))
    with pytest.raises(TypeError, match="dtype"):
        s3d.ops.conv3d(x, torch.randn(27, 2, 4))
    with pytest.raises(ValueError, match="down-sampled"):
        s3d.nn.ConvTranspose3d(2, 3).double()(s3d.SparseTensor(x.coords, x.feats, stride=2))


def test_a_provider_map_runs_on_every_backend():
    """The plan seam: a KernelMap made from a provider's own table (as an octree will make them) runs on
    every backend with the results of the manager's map, in both directions; each backend caches its
    typed plan on the map, keyed by its name."""
    from sparse3d.backends import available_backends, get_backend
    from sparse3d.backends.native import NativeBackend, NativePlan
    from sparse3d.kernel_map import KernelMap

    x = random_sparse(150, 10, 3, batch_size=2, seed=7)
    m = x.manager
    coarse = m.downsample(x.key, 2, 2)
    ref_map = m.kernel_map(x.key, coarse, 2, 2)
    km = KernelMap.from_neighbor_table(ref_map.nbr_out.clone(), x.coords, m.coords(coarse), 2, 2, in_key=0, out_key=1)
    assert km.kind == "conv" and not km.transposed and km.transpose().kind == "conv_transpose"
    w = torch.randn(8, 3, 4, dtype=torch.float64)
    wt = torch.randn(8, 4, 3, dtype=torch.float64)
    down_ref = get_backend("torch").conv(x.feats, w, ref_map)
    up_ref = get_backend("torch").conv(down_ref, wt, ref_map.transpose())
    backends = [NativeBackend(gather="tables"), NativeBackend(gather="pairs"), "torch"]
    try:
        get_backend("spconv")
        backends.append("spconv")
    except ImportError:
        pass
    assert set(available_backends()) >= {"native", "torch", "spconv"}
    for be in backends:
        down = get_backend(be).conv(x.feats, w, km)
        up = get_backend(be).conv(down, wt, km.transpose())
        assert torch.allclose(down, down_ref, atol=1e-12) and torch.allclose(up, up_ref, atol=1e-12), be
    assert isinstance(NativeBackend().plan(km), NativePlan)
    assert set(km.plans.keys()) >= {("native", ("plan", False)), ("native", ("plan", True))}
    with pytest.raises(TypeError, match="must hold a int"):  # a slot keeps the type its backend put there
        km.plans.get("native", ("plan", False), int, lambda: 0)
    with pytest.raises(ValueError, match=r"nbr_out must be int32 \[N_out, K\*\*3=27\]"):
        KernelMap.from_neighbor_table(ref_map.nbr_out, x.coords, m.coords(coarse), 3, 2)


def test_coordinate_limits_are_one_truth():
    """The batch limit of the hash table (C++) and of SparseTensor (Python) is the same number, read
    from the extension."""
    from sparse3d import coords

    C = _ext.load()
    assert coords.BATCH_MAX == C.limits.BATCH_MAX == 2047
    ok = torch.tensor([[coords.BATCH_MAX, 0, 0, coords.COORD_MAX]], dtype=torch.int32)
    assert C.hash.build(ok).size == 1 and len(s3d.SparseTensor(ok, torch.ones(1, 1))) == 1
    bad = ok.clone()
    bad[0, 0] += 1
    with pytest.raises(ValueError, match="out of range"):
        C.hash.build(bad)
    with pytest.raises(ValueError, match=r"batch index\) must be in \[0, 2047\]"):
        s3d.SparseTensor(bad, torch.ones(1, 1))

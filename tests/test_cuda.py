"""CUDA kernels (issue 4) against the CPU native kernels and the dense reference.

Every test is skipped with a reason when no GPU is present (torch.cuda.is_available() is False)
or when sparse3d._C was built without CUDA."""
import itertools

import pytest
import torch

import sparse3d as s3d
from sparse3d import _ext
from sparse3d.kernel import kernel_offsets
from sparse3d.testing import allclose_report, dense_conv, gather_dense, random_coords, random_sparse

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA device: torch.cuda.is_available() is False")

DTYPES = {torch.float64: 1e-10, torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 1.5e-1}


@pytest.fixture(scope="module")
def C():
    C = _ext.load()
    try:
        C.hash.build(torch.zeros(1, 4, dtype=torch.int32, device="cuda"))
    except RuntimeError as e:  # S3D_NO_CUDA
        if "without CUDA" in str(e):
            pytest.skip("sparse3d._C was built without CUDA (rebuild with FORCE_CUDA=1)")
        raise
    return C


def _shuffled(c, seed):
    g = torch.Generator().manual_seed(seed)
    return c[torch.randperm(len(c), generator=g)].contiguous()


# ---- hash ---------------------------------------------------------------------------------
@pytest.mark.parametrize("n,batch", [(1, 1), (500, 3), (20000, 2)])
def test_hash_lookup_matches_cpu(C, n, batch):
    c = _shuffled(random_coords(n, 40, batch_size=batch, seed=n), n)
    t = C.hash.build(c.cuda())
    assert t.keys.is_cuda and t.size == len(c)
    assert torch.equal(t.lookup(c.cuda()).cpu(), torch.arange(len(c), dtype=torch.int32))
    q = torch.cat([c, c + torch.tensor([0, 100, 0, 0], dtype=torch.int32),
                   torch.tensor([[0, 0, 0, 70000], [-1, 0, 0, 0]], dtype=torch.int32)])
    assert torch.equal(t.lookup(q.cuda()).cpu(), C.hash.build(c).lookup(q))


def test_hash_cuda_errors_are_python_exceptions(C):
    with pytest.raises(ValueError, match="duplicate"):
        C.hash.build(torch.tensor([[0, 1, 2, 3], [0, 5, 5, 5], [0, 1, 2, 3]], dtype=torch.int32, device="cuda"))
    with pytest.raises(ValueError, match="out of range"):
        C.hash.build(torch.tensor([[0, 1, 2, 70000]], dtype=torch.int32, device="cuda"))
    with pytest.raises(TypeError, match="Int"):
        C.hash.build(torch.zeros(2, 4, dtype=torch.long, device="cuda"))
    t = C.hash.build(torch.zeros(1, 4, dtype=torch.int32, device="cuda"))
    with pytest.raises(ValueError, match="one device"):
        t.lookup(torch.zeros(1, 4, dtype=torch.int32))
    # the device is still usable after the errors
    assert t.lookup(torch.zeros(1, 4, dtype=torch.int32, device="cuda")).item() == 0


# ---- kernel maps ----------------------------------------------------------------------------
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("mul", [1, 2, 3])
def test_sort_coords_matches_cpu(C, shuffle, mul):
    c = random_coords(2000, 30, batch_size=3, seed=mul)
    if shuffle:
        c = _shuffled(c, 5)
    a, b = C.kmap.sort_coords(c, mul), C.kmap.sort_coords(c.cuda(), mul)
    assert torch.equal(a.keys, b.keys.cpu()) and torch.equal(a.order, b.order.cpu())
    assert b.mul == mul and not b.has_duplicates
    d = torch.cat([c, c[:3]])
    assert C.kmap.sort_coords(d.cuda(), mul).has_duplicates
    with pytest.raises(ValueError, match="batch"):
        C.kmap.sort_coords(torch.tensor([[-1, 0, 0, 0]], dtype=torch.int32, device="cuda"))
    with pytest.raises(ValueError, match="must stay in"):
        C.kmap.sort_coords(torch.tensor([[0, 0, 0, 30000]], dtype=torch.int32, device="cuda"), 4)


@pytest.mark.parametrize("k,s,d", [(1, 1, 1), (3, 1, 1), (3, 2, 1), (2, 2, 1), (3, 1, 2), (5, 2, 1)])
@pytest.mark.parametrize("shuffle", [False, True])
def test_neighbor_table_and_invert_match_cpu(C, k, s, d, shuffle):
    fine = random_coords(1500, 24, batch_size=2, margin=k * d, seed=k + s)
    if shuffle:
        fine = _shuffled(fine, 3)
    coarse = torch.unique(torch.cat([fine[:, :1], fine[:, 1:] // s], 1), dim=0).int()
    off = kernel_offsets(k, d)
    want = C.kmap.neighbor_table(C.kmap.sort_coords(coarse, s), C.kmap.sort_coords(fine), off)
    q, t = C.kmap.sort_coords(coarse.cuda(), s), C.kmap.sort_coords(fine.cuda())
    for o in (off, off.cuda()):
        got = C.kmap.neighbor_table(q, t, o)
        assert got.is_cuda and torch.equal(got.cpu(), want)
    inv = C.kmap.invert(want.cuda(), len(fine))
    assert torch.equal(inv.cpu(), C.kmap.invert(want, len(fine)))
    with pytest.raises(ValueError, match="n_in"):
        C.kmap.invert(want.cuda(), 1)


# ---- conv kernels ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("c_in,c_out", [(1, 1), (3, 5), (16, 32)])
def test_conv_kernels_match_cpu(C, dtype, c_in, c_out):
    x = random_sparse(3000, 20, c_in, batch_size=2, seed=c_in)
    km = x.manager.kernel_map(x.key, x.key, 3, 1, 1)
    g = torch.Generator().manual_seed(c_out)
    feats = x.feats.double()
    w = torch.randn(27, c_in, c_out, generator=g, dtype=torch.float64)
    gout = torch.randn(len(feats), c_out, generator=g, dtype=torch.float64)
    want = C.conv.forward(feats, w, km.nbr_out)
    want_gw = C.conv.weight_grad(feats, gout, km.nbr_out)
    tol = DTYPES[dtype]
    got = C.conv.forward(feats.to("cuda", dtype), w.to("cuda", dtype), km.nbr_out.cuda())
    assert got.dtype == dtype and got.is_cuda
    allclose_report(got.double().cpu(), want, tol, rtol=tol, what=f"forward {dtype}")
    got_gw = C.conv.weight_grad(feats.to("cuda", dtype), gout.to("cuda", dtype), km.nbr_out.cuda())
    assert got_gw.dtype == dtype
    allclose_report(got_gw.double().cpu(), want_gw, tol * 10, rtol=tol, what=f"weight grad {dtype}")


def test_conv_kernels_edge_cases_and_errors(C):
    f = torch.randn(3, 2, device="cuda")
    w = torch.randn(27, 2, 4, device="cuda")
    empty = torch.full((5, 27), -1, dtype=torch.int32, device="cuda")
    assert torch.equal(C.conv.forward(f, w, empty), torch.zeros(5, 4, device="cuda"))
    assert torch.equal(C.conv.weight_grad(f, torch.ones(5, 4, device="cuda"), empty), torch.zeros(27, 2, 4, device="cuda"))
    assert C.conv.forward(f, w, empty[:0]).shape == (0, 4)
    with pytest.raises(ValueError, match="N_in"):
        C.conv.forward(f, w, torch.full((5, 27), 7, dtype=torch.int32, device="cuda"))
    with pytest.raises(ValueError, match="N_in"):
        C.conv.weight_grad(f, torch.ones(5, 4, device="cuda"), torch.full((5, 27), 3, dtype=torch.int32, device="cuda"))
    with pytest.raises(ValueError, match="one device"):
        C.conv.forward(f, w, empty.cpu())
    with pytest.raises(TypeError, match="dtype"):
        C.conv.forward(f.double(), w, empty)
    assert C.conv.forward(f, w, empty).sum().item() == 0  # device still usable


# ---- end to end against the dense reference ---------------------------------------------------
CASES = [(k, s, d) for k, s, d in itertools.product([1, 2, 3, 5], [1, 2], [1, 2]) if k * d <= 6]


@pytest.mark.parametrize("i,case", list(enumerate(CASES)))
def test_conv3d_cuda_matches_dense(C, i, case):
    k, s, d = case
    margin = k * d + 1
    spatial = 2 * margin + 6
    x = random_sparse(80, spatial, 3, batch_size=2, margin=margin, seed=i, device="cuda")
    g = torch.Generator().manual_seed(100 + i)
    w = torch.randn(k**3, 3, 4, generator=g, dtype=torch.float64)
    feats = x.feats.clone().requires_grad_(True)
    wt = w.cuda().requires_grad_(True)
    y = s3d.ops.conv3d(x.replace(feats), wt, None, k, s, d, backend="native")
    assert y.feats.is_cuda

    xc = random_sparse(80, spatial, 3, batch_size=2, margin=margin, seed=i)
    vol = xc.dense(spatial_shape=[spatial] * 3, batch_size=2).requires_grad_(True)
    wd = w.clone().requires_grad_(True)
    dense = dense_conv(vol, wd, k, s, d)
    ycoords = y.coords.cpu()
    ref = gather_dense(dense, ycoords)
    allclose_report(y.feats.cpu(), ref, 1e-10, what="forward")
    gout = torch.randn(y.feats.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    (y.feats * gout.cuda()).sum().backward()
    (ref * gout).sum().backward()
    allclose_report(feats.grad.cpu(), gather_dense(vol.grad, xc.coords), 1e-10, what="input grad")
    allclose_report(wt.grad.cpu(), wd.grad, 1e-10, what="weight grad")

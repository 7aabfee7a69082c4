"""CUDA kernels (issue 4) against the CPU native kernels and the dense reference.

Every test is skipped with a reason when no GPU is present (torch.cuda.is_available() is False)
or when sparse3d._C was built without CUDA."""
import itertools

import pytest
import torch

import sparse3d as s3d
from sparse3d import _ext
from sparse3d.backends.native import NativeBackend
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


# ---- implicit-GEMM kernels (csrc/conv/implicit_gemm.cuh) ----------------------------------------
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("c_in,c_out", [(1, 1), (3, 5), (16, 32), (37, 70), (64, 64), (128, 128)])
@pytest.mark.parametrize("kind", ["subm k3", "strided k2 s2", "transposed k2 s2"])
def test_implicit_gemm_kernels_match_cpu(C, dtype, c_in, c_out, kind):
    """Forward, input gradient and weight gradient of the implicit-GEMM kernels against the CPU
    table kernels in float64 (tensor cores for float16/bfloat16, SIMT for float32/float64)."""
    x = random_sparse(3000, 20, c_in, batch_size=2, seed=c_in)
    m = x.manager
    if kind == "subm k3":
        km = m.kernel_map(x.key, x.key, 3, 1, 1)
    else:
        km = m.kernel_map(x.key, m.downsample(x.key, 2, 2), 2, 2, 1)
        km = km.transpose() if kind.startswith("transposed") else km
    nbr_out, nbr_in = km.nbr_out, km.nbr_in
    n_out, k = nbr_out.shape
    n_in = nbr_in.shape[0]
    g = torch.Generator().manual_seed(c_out)
    feats = torch.randn(n_in, c_in, generator=g, dtype=torch.float64)
    w = torch.randn(k, c_in, c_out, generator=g, dtype=torch.float64)
    gout = torch.randn(n_out, c_out, generator=g, dtype=torch.float64)
    wt = w.transpose(1, 2).contiguous()
    want = C.conv.forward(feats, w, nbr_out)
    want_in = C.conv.forward(gout, wt, nbr_in)
    want_gw = C.conv.weight_grad(feats, gout, nbr_out)
    t_out = C.conv.implicit_table(nbr_out.cuda(), n_in)
    t_in = C.conv.implicit_table(nbr_in.cuda(), n_out)
    pairs = C.conv.pairs(nbr_out.cuda(), n_in)
    tol = DTYPES[dtype]
    fd, wd, gd = feats.to("cuda", dtype), w.to("cuda", dtype), gout.to("cuda", dtype)
    got = C.conv.forward_implicit(fd, wd, t_out)
    assert got.dtype == dtype and got.is_cuda
    allclose_report(got.double().cpu(), want, tol, rtol=tol, what=f"{kind} forward {dtype}")
    got_in = C.conv.forward_implicit(gd, wd.transpose(1, 2).contiguous(), t_in)
    allclose_report(got_in.double().cpu(), want_in, tol, rtol=tol, what=f"{kind} input grad {dtype}")
    for chunk in (0, 96):
        got_gw = C.conv.weight_grad_implicit(fd, gd, pairs, chunk)
        assert got_gw.dtype == dtype
        allclose_report(got_gw.double().cpu(), want_gw, tol * 10, rtol=tol, what=f"{kind} weight grad {dtype}")
    # deterministic: no atomics anywhere
    assert torch.equal(C.conv.forward_implicit(fd, wd, t_out), got)
    assert torch.equal(C.conv.weight_grad_implicit(fd, gd, pairs, 96), got_gw)
    if dtype == torch.float32 and (c_in, c_out) == (37, 70):  # the CPU emulation of the same source agrees
        emu = C.conv.forward_implicit_emulated(feats.float(), w.float(), C.conv.implicit_table(nbr_out, n_in))
        allclose_report(got.cpu(), emu, 1e-4, rtol=1e-5, what="CUDA vs emulated forward")


def test_implicit_gemm_edge_cases_and_errors(C):
    f = torch.randn(3, 2, device="cuda")
    w = torch.randn(27, 2, 4, device="cuda")
    empty = torch.full((5, 27), -1, dtype=torch.int32, device="cuda")
    t = C.conv.implicit_table(empty, 3)
    assert torch.equal(C.conv.forward_implicit(f, w, t), torch.zeros(5, 4, device="cuda"))
    p = C.conv.pairs(empty, 3)
    assert torch.equal(C.conv.weight_grad_implicit(f, torch.ones(5, 4, device="cuda"), p),
                       torch.zeros(27, 2, 4, device="cuda"))
    assert C.conv.forward_implicit(f, w, C.conv.implicit_table(empty[:0], 3)).shape == (0, 4)
    with pytest.raises(ValueError, match="N_in"):
        C.conv.implicit_table(torch.full((5, 27), 7, dtype=torch.int32, device="cuda"), 3)
    with pytest.raises(ValueError, match="table's device"):
        C.conv.forward_implicit(f, w, C.conv.implicit_table(empty.cpu(), 3))
    with pytest.raises(TypeError, match="dtype"):
        C.conv.forward_implicit(f.double(), w, t)
    assert C.conv.forward_implicit(f, w, t).sum().item() == 0  # device still usable


# ---- end to end against the dense reference ---------------------------------------------------
CASES = [(k, s, d) for k, s, d in itertools.product([1, 2, 3, 5], [1, 2], [1, 2]) if k * d <= 6]


@pytest.mark.parametrize("gather", ["auto", "implicit"])
@pytest.mark.parametrize("i,case", list(enumerate(CASES)))
def test_conv3d_cuda_matches_dense(C, i, case, gather):
    k, s, d = case
    margin = k * d + 1
    spatial = 2 * margin + 6
    x = random_sparse(80, spatial, 3, batch_size=2, margin=margin, seed=i, device="cuda")
    g = torch.Generator().manual_seed(100 + i)
    w = torch.randn(k**3, 3, 4, generator=g, dtype=torch.float64)
    feats = x.feats.clone().requires_grad_(True)
    wt = w.cuda().requires_grad_(True)
    y = s3d.ops.conv3d(x.replace(feats), wt, None, k, s, d, backend=NativeBackend(gather=gather))
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


# ---- every op on CUDA against the same op on the CPU (float64, same inputs) --------------------
def _pair(n=1500, spatial=18, channels=3, seed=0, batch_size=2, margin=3):
    """The same random SparseTensor on the CPU and on CUDA (float64)."""
    x = random_sparse(n, spatial, channels, batch_size=batch_size, margin=margin, seed=seed)
    return x, x.to("cuda")


def _same(cpu: s3d.SparseTensor, gpu: s3d.SparseTensor, what: str, tol: float = 1e-10):
    """Equal coordinate sets (rows matched through the hash table) and features."""
    assert gpu.feats.is_cuda and gpu.coords.is_cuda, what
    assert len(cpu) == len(gpu) and cpu.stride == gpu.stride, what
    idx = s3d.ops.lookup(cpu, gpu.coords.cpu())
    assert (idx >= 0).all(), f"{what}: CUDA made coordinates the CPU does not have"
    allclose_report(gpu.feats.cpu(), cpu.feats[idx], tol, what=what)


@pytest.mark.parametrize("k,s", [(2, 2), (3, 2), (3, 1)])
def test_transposed_and_generative_convs_match_cpu(C, k, s):
    xc, xg = _pair(seed=k + s)
    g = torch.Generator().manual_seed(k)
    w_down = torch.randn(k**3, 3, 5, generator=g, dtype=torch.float64)
    w_up = torch.randn(k**3, 5, 4, generator=g, dtype=torch.float64)
    outs = {}
    for dev, x in (("cpu", xc), ("cuda", xg)):
        feats = x.feats.clone().requires_grad_(True)
        wu = w_up.to(dev).requires_grad_(True)
        coarse = s3d.ops.conv3d(x.replace(feats), w_down.to(dev), None, k, s)
        back = s3d.ops.conv_transpose3d(coarse, wu, None, k, s)  # onto x's coordinates
        grown = s3d.ops.generative_conv_transpose3d(coarse, wu, None, k, s)
        (back.feats.sum() + (grown.feats ** 2).sum()).backward()
        outs[dev] = (coarse, back, grown, feats.grad, wu.grad)
    for i, name in enumerate(("strided conv", "transposed conv", "generative transposed conv")):
        _same(outs["cpu"][i], outs["cuda"][i], name)
    allclose_report(outs["cuda"][3].cpu(), outs["cpu"][3], 1e-9, what="input grad")
    allclose_report(outs["cuda"][4].cpu(), outs["cpu"][4], 1e-9, what="weight grad")


def test_pooling_pruning_and_unions_match_cpu(C):
    xc, xg = _pair(seed=11)
    yc, yg = _pair(seed=12)
    for name, fn in (
        ("max_pool3d", lambda x, y: s3d.ops.max_pool3d(x, 2, 2)),
        ("max_pool3d k3 s1", lambda x, y: s3d.ops.max_pool3d(x, 3, 1)),
        ("avg_pool3d", lambda x, y: s3d.ops.avg_pool3d(x, 3, 2)),
        ("prune", lambda x, y: s3d.ops.prune(x, x.feats[:, 0] > 0)),
        ("add", lambda x, y: s3d.ops.add(x, y)),
        ("cat", lambda x, y: s3d.ops.cat(x, y)),
    ):
        _same(fn(xc, yc), fn(xg, yg), name)
    for mode in ("mean", "max", "sum"):
        allclose_report(s3d.ops.global_pool(xg, mode).cpu(), s3d.ops.global_pool(xc, mode), 1e-12, what=mode)
    fa, found = s3d.ops.align(xg, yg)
    fa_c, found_c = s3d.ops.align(xc, yc)
    assert found.is_cuda and torch.equal(found.cpu(), found_c)
    allclose_report(fa.cpu(), fa_c, 0, what="align")
    vol = xg.dense(spatial_shape=[18] * 3, batch_size=2)
    assert vol.is_cuda and torch.equal(vol.cpu(), xc.dense(spatial_shape=[18] * 3, batch_size=2))
    back = s3d.SparseTensor.from_dense(vol)
    _same(s3d.SparseTensor.from_dense(vol.cpu()), back, "from_dense")
    assert [len(t) for t in xg.split()] == [len(t) for t in xc.split()]


@pytest.mark.parametrize("gather", ["auto", "implicit"])
def test_unet_forward_backward_matches_cpu(C, gather):
    """A 3-level U-Net (every layer kind of sparse3d.nn) on CUDA equals the CPU run, float64."""
    S = s3d.nn

    def net(b="native"):
        torch.manual_seed(0)
        return torch.nn.ModuleDict(dict(
            stem=S.SubMConv3d(3, 8, 3, backend=b), bn=S.BatchNorm(8), act=S.ReLU(), down=S.Conv3d(8, 16, 2, 2, backend=b),
            mid=S.SubMConv3d(16, 16, 3, backend=b), up=S.ConvTranspose3d(16, 8, 2, 2, backend=b),
            grow=S.GenerativeConvTranspose3d(16, 4, 2, 2, backend=b),
            pool=S.MaxPool3d(2, 2), head=S.SubMConv3d(16, 2, 1, backend=b))).double()

    def run(m, x):
        a = m["act"](m["bn"](m["stem"](x)))
        b = m["mid"](m["down"](a))
        y = m["head"](s3d.ops.cat(a, m["up"](b)))
        g = m["grow"](m["pool"](s3d.ops.cat(a, m["up"](b))))
        (y.feats.square().sum() + g.feats.sum()).backward()
        return y, g

    xc, xg = _pair(seed=21)
    mc, mg = net(), net(NativeBackend(gather=gather)).cuda()
    yc, gc = run(mc, xc)
    yg, gg = run(mg, xg)
    _same(yc, yg, "U-Net output")
    _same(gc, gg, "generative branch")
    for (name, pc), pg in zip(mc.named_parameters(), mg.parameters()):
        allclose_report(pg.grad.cpu(), pc.grad, 1e-8, what=f"grad of {name}")


@pytest.mark.parametrize("amp", ["off", "fp16", "bf16"])
def test_completion_training_steps_on_cuda(C, tmp_path, amp):
    """Two training steps of the completion model on the GPU (mixed precision too): finite losses,
    float32 weights, and the checkpoint loads back on the CPU."""
    from _completion_fixtures import write_tiny_dataset
    from sparse3d.tasks.completion.config import load_config
    from sparse3d.tasks.completion.train import train
    from sparse3d.train.checkpoint import load_checkpoint
    data = write_tiny_dataset(str(tmp_path / "data"))
    cfg = load_config(None, {"data": data, "out": str(tmp_path / "run"), "steps": 2, "batch_size": 2,
                             "model": {"channels": [4, 8, 8], "grow_steps": 1}, "device": "cuda", "amp": amp})
    logs = train(cfg, progress=False)
    assert torch.isfinite(torch.tensor(logs["loss"]))
    state = load_checkpoint(str(tmp_path / "run" / "last.pt"))
    assert all(not v.is_cuda and v.dtype in (torch.float32, torch.int64) for v in state["model"].values())

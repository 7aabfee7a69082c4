"""The implicit-GEMM conv kernels (csrc/conv/implicit_gemm.cuh) on machines without a GPU.

The kernel source runs on the CPU through `_emulated` (one std::thread per CUDA thread, real
barriers; the tensor-core tile replaced by loops with the same float32 accumulation), against the
CPU table kernels in float64 on real kernel maps: submanifold, strided, transposed and 5^3
(more offsets than the row-order mask has bits), with channel counts that are not multiples of
the tile sizes. The CUDA runs are in test_cuda.py."""
import pytest
import torch

from sparse3d import _ext
from sparse3d.backends.native import NativeBackend
from sparse3d.testing import allclose_report, random_sparse

# one half-type rounding of the output (values of |out| up to ~60 here) or float32 summation error
TOL = {torch.float64: 1e-11, torch.float32: 1e-4, torch.float16: 4e-2, torch.bfloat16: 3e-1}


@pytest.fixture(scope="module")
def C():
    return _ext.load()


def _plan(km):
    """The native backend's plan of a kernel map (pair lists and implicit tables, built on first access)."""
    return NativeBackend().plan(km)


def _maps():
    """(name, kernel map) over a 2-batch random scene: every kind the convs use."""
    x = random_sparse(500, 12, 1, batch_size=2, seed=3)
    m = x.manager
    coarse = m.downsample(x.key, 2, 2)
    return [
        ("subm k3", m.kernel_map(x.key, x.key, 3, 1, 1)),
        ("strided k2 s2", m.kernel_map(x.key, coarse, 2, 2, 1)),
        ("transposed k2 s2", m.kernel_map(x.key, coarse, 2, 2, 1).transpose()),
        ("subm k5", m.kernel_map(x.key, x.key, 5, 1, 1)),
    ]


MAPS = _maps()


# every map in every dtype, except the slow 125-offset map: float16 only (the tensor-core policy)
FORWARD_CASES = [(n, km, dt) for n, km in MAPS for dt in TOL if n != "subm k5" or dt == torch.float16]


@pytest.mark.parametrize("name,km,dtype", FORWARD_CASES, ids=[f"{n}-{str(dt)[6:]}" for n, _, dt in FORWARD_CASES])
def test_emulated_forward_and_input_grad_match_table_kernels(C, name, km, dtype):
    n_out, k = km.nbr_out.shape
    n_in = km.nbr_in.shape[0]
    c_in, c_out = 37, 70  # two column tiles, a partial input-channel slice
    g = torch.Generator().manual_seed(k)
    f = torch.randn(n_in, c_in, generator=g, dtype=torch.float64).to(dtype)
    w = torch.randn(k, c_in, c_out, generator=g, dtype=torch.float64).to(dtype)
    gout = torch.randn(n_out, c_out, generator=g, dtype=torch.float64).to(dtype)
    got = C.conv.forward_implicit_emulated(f, w, _plan(km).implicit_out)
    assert got.dtype == dtype and got.shape == (n_out, c_out)
    want = C.conv.forward(f.double(), w.double(), km.nbr_out)
    allclose_report(got.double(), want, TOL[dtype], rtol=TOL[dtype], what=f"{name} forward {dtype}")
    got_in = C.conv.forward_implicit_emulated(gout, w.transpose(1, 2).contiguous(), _plan(km).implicit_in)
    want_in = C.conv.forward(gout.double(), w.double().transpose(1, 2).contiguous(), km.nbr_in)
    allclose_report(got_in.double(), want_in, TOL[dtype], rtol=TOL[dtype], what=f"{name} input grad {dtype}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_emulated_forward_in_table_order(C, dtype):
    """Rows visited in table order (sort_rows=False): the same result as the sorted visit."""
    name, km = MAPS[0]
    n_in, k = km.nbr_in.shape[0], km.nbr_out.shape[1]
    g = torch.Generator().manual_seed(5)
    f = torch.randn(n_in, 20, generator=g).to(dtype)
    w = torch.randn(k, 20, 9, generator=g).to(dtype)
    plain = C.conv.forward_implicit_emulated(f, w, C.conv.implicit_table(km.nbr_out, n_in, sort_rows=False))
    want = C.conv.forward(f.double(), w.double(), km.nbr_out)
    allclose_report(plain.double(), want, TOL[dtype], rtol=TOL[dtype], what=f"{name} table order {dtype}")
    assert torch.equal(plain, C.conv.forward_implicit_emulated(f, w, _plan(km).implicit_out))  # per-row sums: same order


@pytest.mark.parametrize("dtype", list(TOL))
@pytest.mark.parametrize("chunk", [0, 32, 50])
def test_emulated_weight_grad_matches_pair_kernels(C, dtype, chunk):
    name, km = MAPS[1] if chunk else MAPS[0]
    n_out, k = km.nbr_out.shape
    n_in = km.nbr_in.shape[0]
    g = torch.Generator().manual_seed(chunk)
    c_in, c_out = 70, 37  # two row tiles (C_in), a partial column tile
    f = torch.randn(n_in, c_in, generator=g, dtype=torch.float64).to(dtype)
    gout = torch.randn(n_out, c_out, generator=g, dtype=torch.float64).to(dtype)
    got = C.conv.weight_grad_implicit_emulated(f, gout, _plan(km).pairs, chunk)
    assert got.dtype == dtype and got.shape == (k, c_in, c_out)
    want = C.conv.weight_grad(f.double(), gout.double(), km.nbr_out)
    allclose_report(got.double(), want, TOL[dtype] * 2, rtol=TOL[dtype], what=f"{name} weight grad {dtype}")


@pytest.mark.parametrize("chunk", [0, 1])
def test_emulated_weight_grad_with_offsets_without_pairs(C, chunk):
    """Isolated voxels and one x-neighbour pair: 24 of the 27 offsets have no pairs (no chunks), so
    their gradient is exactly 0, and the three others sum 1..3 chunks (chunk=1: one pair each)."""
    from sparse3d.coords import CoordinateManager
    coords = torch.tensor([[0, 0, 0, 0], [0, 1, 0, 0], [0, 5, 5, 5], [1, 0, 0, 0]], dtype=torch.int32)
    m = CoordinateManager()
    key = m.insert(coords, 1)
    km = m.kernel_map(key, key, 3, 1, 1)
    begin = _plan(km).pairs.begin
    assert int(((begin[1:] - begin[:-1]) > 0).sum()) == 3
    g = torch.Generator().manual_seed(7)
    f = torch.randn(4, 5, generator=g, dtype=torch.float64)
    gout = torch.randn(4, 6, generator=g, dtype=torch.float64)
    got = C.conv.weight_grad_implicit_emulated(f, gout, _plan(km).pairs, chunk)
    want = C.conv.weight_grad(f, gout, km.nbr_out)
    allclose_report(got, want, 1e-11, rtol=1e-11, what="weight grad with empty offsets")
    empty = (begin[1:] - begin[:-1]) == 0
    assert torch.equal(got[empty], torch.zeros_like(got[empty]))


def test_row_order_is_a_permutation_sorted_by_active_offsets(C):
    for name, km in MAPS:
        nbr = km.nbr_out
        t = C.conv.implicit_table(nbr, km.nbr_in.shape[0])
        assert t.nbr.shape == nbr.shape and t.n_in == km.nbr_in.shape[0]
        order = t.order
        assert order.dtype == torch.int64
        assert torch.equal(order.sort().values, torch.arange(len(nbr))), name
        k = min(nbr.shape[1], 63)
        mask = ((nbr[:, :k] >= 0).long() * (2 ** torch.arange(k))).sum(1)
        assert (mask[order].diff() >= 0).all(), name
    assert C.conv.implicit_table(MAPS[0][1].nbr_out, MAPS[0][1].nbr_in.shape[0], sort_rows=False).order is None


def test_row_order_lets_tiles_skip_offsets(C):
    """What the order buys: the (tile, offset) work items with an active row, in table order and
    sorted (fewer is less tensor-core work)."""
    km = MAPS[0][1]
    nbr = km.nbr_out
    order = C.conv.implicit_table(nbr, km.nbr_in.shape[0]).order

    def work(rows):
        t = nbr[rows] >= 0
        pad = (-len(t)) % 64
        t = torch.cat([t, t.new_zeros(pad, t.shape[1])]).reshape(-1, 64, t.shape[1])
        return int(t.any(1).sum())

    assert work(order) < work(torch.arange(len(nbr)))


def test_weight_grad_chunks_cover_each_offset_once(C):
    km = MAPS[0][1]
    p = _plan(km).pairs
    begin = p.begin.tolist()
    for chunk in (0, 1, 32, 50, 10**9):
        ch = C.conv.implicit_chunks(p, chunk, 64, 64)
        assert ch.dtype == torch.int64 and ch.shape[1] == 3
        for k in range(len(begin) - 1):
            rows = ch[ch[:, 0] == k]
            covered = [j for _, s, n in rows.tolist() for j in range(s, s + n)]
            assert covered == list(range(begin[k], begin[k + 1])), (chunk, k)
            if chunk > 0:
                assert (rows[:, 2] <= chunk).all()
        assert (ch[:, 0].diff() >= 0).all()


def test_implicit_errors_name_the_argument(C):
    km = MAPS[0][1]
    n = km.nbr_in.shape[0]
    f = torch.randn(n, 4)
    w = torch.randn(27, 4, 5)
    t = _plan(km).implicit_out
    with pytest.raises(ValueError, match="N_in = 3"):
        C.conv.implicit_table(torch.full((4, 27), 5, dtype=torch.int32), 3)
    with pytest.raises(TypeError, match="nbr must be Int"):
        C.conv.implicit_table(km.nbr_out.long(), n)
    with pytest.raises(ValueError, match="feats must have N_in"):
        C.conv.forward_implicit_emulated(f[:-1], w, t)
    with pytest.raises(ValueError, match="K = 27"):
        C.conv.forward_implicit_emulated(f, w[:8], t)
    with pytest.raises(TypeError, match="one dtype"):
        C.conv.forward_implicit_emulated(f, w.double(), t)
    with pytest.raises(TypeError, match="float64, float32"):
        C.conv.forward_implicit_emulated(f.int(), w.int(), t)
    with pytest.raises(ValueError, match="grad_out must have N_out"):
        C.conv.weight_grad_implicit_emulated(f, torch.randn(3, 5), _plan(km).pairs)
    with pytest.raises(ValueError, match="takes CUDA tensors"):
        C.conv.forward_implicit(f, w, t)
    with pytest.raises(ValueError, match="takes CUDA tensors"):
        C.conv.weight_grad_implicit(f, torch.randn(len(km.nbr_out), 5), _plan(km).pairs)


def test_backend_implicit_needs_cuda_tensors():
    import sparse3d as s3d

    x = random_sparse(50, 8, 2, seed=1)
    with pytest.raises(ValueError, match="gather='implicit'.*CUDA"):
        s3d.ops.conv3d(x, torch.randn(27, 2, 3, dtype=x.feats.dtype), None, 3, 1, 1,
                       backend=NativeBackend(gather="implicit"))

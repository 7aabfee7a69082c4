"""Every backend against the torch reference with the same weights: every op (submanifold, strided,
transposed onto known coordinates, generative transposed, max pool) over kernel size, stride and
dilation, forward + input gradient + weight gradient, in float64; spconv's index-pair reuse; the
weight layout against spconv's own modules; checkpoints moved between backends; clear errors."""
import io
import itertools

import pytest
import torch

import sparse3d as s3d
from sparse3d.backends import get_backend
from sparse3d.backends.native import NativeBackend
from sparse3d.kernel import sparse_to_spconv_weight, spconv_to_sparse_weight
from sparse3d.testing import allclose_report, devices, random_sparse

spconv = pytest.importorskip("spconv", reason="spconv is not installed (pip install spconv-cu120)")

# each compared with "torch"; native's pair-list form (what it runs on CUDA) is checked on the CPU too
BACKENDS = ["native", pytest.param(NativeBackend(gather="pairs"), id="native-pairs"), "spconv"]
CASES = [(k, s, d) for k, s, d in itertools.product([1, 2, 3, 5], [1, 2], [1, 2]) if k * d <= 8]
TOL64 = 1e-10


def _device_param(device):
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine")
    return device


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif("cuda" not in devices(), reason="no CUDA device"))]


def _dtype(backend, device):
    # spconv's implicit GEMM (its CUDA algorithm) has no float64: compare in float32 there
    return torch.float32 if (backend == "spconv" and device == "cuda") else torch.float64


def _tol(dtype, ref):
    if dtype == torch.float64:
        return TOL64
    return 2e-6 * max(1.0, ref.abs().max().item()) * 50  # float32 rounding over sums of <= 125 * C terms


def _run(fn, backend, inputs):
    """Run fn(backend, *leaf inputs) and backprop a fixed random cotangent; -> (out, *input grads)."""
    leaves = [t.detach().clone().requires_grad_(True) for t in inputs]
    out = fn(backend, *leaves)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(3), dtype=out.dtype).to(out.device)
    (out * g).sum().backward()
    return [out.detach()] + [t.grad for t in leaves]


def _compare(fn, backend, inputs, dtype):
    ref = _run(fn, "torch", inputs)
    got = _run(fn, backend, inputs)
    for name, a, b in zip(["forward", "input grad", "weight grad"], got, ref):
        assert b is not None and a is not None, name
        allclose_report(a.cpu().double(), b.cpu().double(), _tol(dtype, b), what=f"{backend} {name}")


def _setup(k, s, d, i, dtype, device, n=60):
    c_in, c_out, b = [(1, 2, 1), (3, 5, 2), (4, 3, 1)][i % 3]
    x = random_sparse(n, 3 * k * d + 4, c_in, batch_size=b, seed=i, dtype=dtype, device=device)
    g = torch.Generator().manual_seed(100 + i)
    w = torch.randn(k**3, c_in, c_out, generator=g, dtype=dtype).to(device)
    return x, w


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("i,case", list(enumerate(CASES)))
def test_conv3d(device, backend, i, case):
    k, s, d = case
    dtype = _dtype(backend, device)
    if backend == "spconv" and device == "cuda" and k**3 > 32:
        pytest.skip("spconv's implicit GEMM takes at most 32 kernel offsets")
    x, w = _setup(k, s, d, i, dtype, device)
    _compare(lambda be, f, wt: s3d.ops.conv3d(x.replace(f), wt, None, k, s, d, backend=be).feats,
             backend, [x.feats, w], dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("generative", [False, True], ids=["known", "generative"])
@pytest.mark.parametrize("i,case", list(enumerate(CASES)))
def test_conv_transpose3d(device, backend, generative, i, case):
    k, s, d = case
    dtype = _dtype(backend, device)
    if backend == "spconv" and device == "cuda" and k**3 > 32:
        pytest.skip("spconv's implicit GEMM takes at most 32 kernel offsets")
    fine, _ = _setup(k, s, d, i, dtype, device)
    coarse_key = fine.manager.downsample(fine.key, k, s, d)
    g = torch.Generator().manual_seed(i)
    cf = torch.randn(fine.manager.size(coarse_key), 3, generator=g, dtype=dtype).to(device)
    w = torch.randn(k**3, 3, 2, generator=g, dtype=dtype).to(device)
    op = s3d.ops.generative_conv_transpose3d if generative else s3d.ops.conv_transpose3d
    _compare(lambda be, f, wt: op(s3d.SparseTensor._make(f, fine.manager, coarse_key), wt, None, k, s, d,
                                  backend=be).feats, backend, [cf, w], dtype)


def test_conv_transpose3d_onto_other_target():
    """Transposed conv onto a target that is not the set the input came from (spconv: rows remapped)."""
    a = random_sparse(60, 12, 3, seed=1)
    target = random_sparse(50, 12, 1, seed=2)
    target = s3d.SparseTensor._make(target.feats, a.manager, a.manager.insert(target.coords, 1))
    coarse = s3d.ops.conv3d(a, torch.randn(8, 3, 3, dtype=torch.float64), None, 2, 2)
    w = torch.randn(8, 3, 2, dtype=torch.float64)
    _compare(lambda be, f, wt: s3d.ops.conv_transpose3d(coarse.replace(f), wt, None, 2, 2, target=target,
                                                        backend=be).feats, "spconv", [coarse.feats, w], torch.float64)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("i,case", list(enumerate(CASES)))
def test_max_pool3d(device, backend, i, case):
    k, s, d = case
    dtype = _dtype(backend, device)
    if backend == "spconv" and device == "cuda" and k**3 > 32:
        pytest.skip("spconv's implicit GEMM takes at most 32 kernel offsets")
    x, _ = _setup(k, s, d, i, dtype, device)
    x = x.replace(-x.feats.abs() - 0.5)  # all negative: spconv's pool starts from 0, the adapter must not
    ref = _run(lambda be, f: s3d.ops.max_pool3d(x.replace(f), k, s, d, backend=be).feats, "torch", [x.feats])
    got = _run(lambda be, f: s3d.ops.max_pool3d(x.replace(f), k, s, d, backend=be).feats, backend, [x.feats])
    assert ref[0].max() < 0
    allclose_report(got[0].cpu().double(), ref[0].cpu().double(), _tol(dtype, ref[0]), what="forward")
    allclose_report(got[1].cpu().double(), ref[1].cpu().double(), _tol(dtype, ref[1]), what="input grad")


def test_spconv_pairs_reused_across_layers():
    """spconv's index pairs are the plan of a geometry, cached on its kernel map: two submanifold layers
    share one, and a strided conv, the transposed conv back and the max pool of that geometry share
    another (no global cache, no indice_key)."""
    x = random_sparse(80, 12, 4, seed=0)
    w3 = torch.randn(27, 4, 4, dtype=torch.float64)
    w2 = torch.randn(8, 4, 4, dtype=torch.float64)
    y = s3d.ops.conv3d(s3d.ops.conv3d(x, w3, backend="spconv"), w3, backend="spconv")  # two subm layers
    subm = x.manager.kernel_map(x.key, x.key, 3, 1)
    assert [key[:3] for key in subm.plans.keys("spconv") if key[0] == "pairs"] == [("pairs", False, "subm")]
    down = s3d.ops.conv3d(y, w2, None, 2, 2, backend="spconv")
    up = s3d.ops.conv_transpose3d(down, w2, None, 2, 2, backend="spconv")  # reuses the down conv's pairs
    pool = s3d.ops.max_pool3d(y, 2, 2, backend="spconv")  # so does the pool of the same geometry
    assert torch.equal(up.coords, x.coords) and torch.equal(pool.coords, down.coords)
    km = x.manager.kernel_map(y.key, down.key, 2, 2)
    up_km = x.manager.kernel_map(down.key, y.key, 2, 2, transposed=True)
    assert up_km.kind == "conv_transpose" and up_km.plans is km.plans
    modes = sorted(key[2] for key in km.plans.keys("spconv") if key[0] == "pairs")
    assert modes == ["conv"], modes
    be = get_backend("spconv")
    assert be.plan(up_km, up.feats).pairs is be.plan(km, y.feats).pairs


@pytest.mark.parametrize("k,s,d", [(3, 1, 1), (3, 1, 2), (2, 2, 1), (3, 2, 1)])
def test_weight_layout_matches_spconv_modules(k, s, d):
    """sparse_to_spconv_weight gives the weight spconv's own SubMConv3d / SparseConv3d modules expect."""
    import spconv.pytorch as spc
    from spconv.core import ConvAlgo

    x = random_sparse(60, 2 * k * d + 8, 3, margin=k * d, seed=k + s + d)
    w = torch.randn(k**3, 3, 2, dtype=torch.float64)
    c = (k - 1) // 2
    if s == 1:
        layer = spc.SubMConv3d(3, 2, k, dilation=d, bias=False, algo=ConvAlgo.Native)
    else:
        layer = spc.SparseConv3d(3, 2, k, stride=s, padding=c * d, dilation=d, bias=False, algo=ConvAlgo.Native)
    layer = layer.double()
    layer.weight.data.copy_(sparse_to_spconv_weight(w))
    assert torch.equal(spconv_to_sparse_weight(layer.weight.data), w)
    spatial = [int(m) + k * d + 2 for m in x.coords[:, 1:].max(0).values]
    out = layer(spc.SparseConvTensor(x.feats, x.coords, spatial, 1))
    ours = s3d.ops.conv3d(x, w, None, k, s, d, backend="torch")
    rows = ours.manager.table(ours.key).lookup(out.indices.int().contiguous()).long()
    assert (rows >= 0).all() and rows.numel() == len(ours)
    allclose_report(out.features, ours.feats[rows], TOL64, what="spconv module vs torch backend")


class _TinyUNet(torch.nn.Module):
    def __init__(self, backend):
        super().__init__()
        nn = s3d.nn
        self.enc = torch.nn.Sequential(nn.SubMConv3d(3, 8, 3, backend=backend), nn.ReLU())
        self.down = nn.Conv3d(8, 16, 2, 2, backend=backend)
        self.mid = nn.SubMConv3d(16, 16, 3, backend=backend)
        self.pool = nn.MaxPool3d(2, 2, backend=backend)
        self.up = nn.ConvTranspose3d(16, 8, 2, 2, backend=backend)
        self.head = nn.SubMConv3d(16, 4, 3, backend=backend)

    def forward(self, x):
        skip = self.enc(x)
        y = self.mid(self.down(skip))
        z = self.pool(skip)
        y = y.replace(y.feats + z.feats.sum(dim=1, keepdim=True))
        return self.head(s3d.ops.cat(skip, self.up(y)))


@pytest.mark.parametrize("src,dst", [("native", "spconv"), ("spconv", "torch"), ("torch", "native")])
def test_checkpoint_moves_between_backends(src, dst):
    torch.manual_seed(0)
    x = random_sparse(300, 16, 3, batch_size=2, seed=5, dtype=torch.float32)
    a = _TinyUNet(src)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = _TinyUNet(dst)
    b.load_state_dict(torch.load(buf, weights_only=True))
    ya, yb = a(x).feats, b(x).feats
    allclose_report(yb, ya, 1e-5 * ya.abs().max().item(), what=f"{src} -> {dst}")
    assert torch.equal(s3d.nn.set_backend(b, src)(x).coords, a(x).coords)


def test_errors_name_the_problem():
    from sparse3d.backends.spconv import SpconvBackend  # the submodule loads lazily; import it here

    with pytest.raises(ValueError, match="algo must be one of"):
        SpconvBackend(algo="fast")
    x = random_sparse(30, 8, 2, seed=0, dtype=torch.float32)
    w = torch.randn(27, 2, 2)
    igemm = SpconvBackend(algo="implicit_gemm")
    with pytest.raises(ValueError, match="needs CUDA tensors.*algo='native'"):
        s3d.ops.conv3d(x, w, backend=igemm)
    # the limit errors name the op that hit them
    with pytest.raises(ValueError, match="op 'subm_conv'"):
        s3d.ops.conv3d(x, w, backend=igemm)
    with pytest.raises(ValueError, match="op 'conv'"):
        s3d.ops.conv3d(x, torch.randn(8, 2, 2), kernel_size=2, stride=2, backend=igemm)
    with pytest.raises(ValueError, match="op 'max_pool'"):
        s3d.ops.max_pool3d(x, backend=igemm)
    kmap = x.manager.kernel_map(x.key, x.key, 3, 1)
    with pytest.raises(ValueError, match="kind must be one of"):  # a map says what it is, and only known kinds
        kmap.transpose(kind="deform_conv")
    with pytest.raises(ValueError, match="max_pool needs a conv .*'conv_transpose'"):
        get_backend("spconv").max_pool(x.feats, kmap.transpose())


@pytest.mark.skipif("cuda" not in devices(), reason="no CUDA device")
def test_cuda_implicit_gemm_rejects_float64_clearly():
    x = random_sparse(30, 8, 2, seed=0, device="cuda")
    with pytest.raises(ValueError, match="float64"):
        s3d.ops.conv3d(x, torch.randn(27, 2, 2, dtype=torch.float64, device="cuda"), backend="spconv")


def test_to_from_spconv_round_trip_and_layer_equivalence():
    """to_spconv / from_spconv give the tensor back (negative coordinates included), and a spconv
    SubMConv3d on to_spconv(x) equals sparse3d's SubMConv3d (native backend) with converted weights."""
    from spconv.core import ConvAlgo

    from sparse3d.backends.spconv import _spconv_pytorch, from_spconv, to_spconv

    spc = _spconv_pytorch()  # spconv.pytorch, imported without spconv 2.3's FutureWarnings

    base = random_sparse(150, 12, 3, batch_size=2, seed=11, dtype=torch.float32)
    coords = base.coords.clone()
    coords[:, 1:] += torch.tensor([-7, 3, -20], dtype=torch.int32)  # negative on two axes
    x = s3d.SparseTensor(coords, base.feats, stride=2)
    t, origin = to_spconv(x)
    assert origin.dtype == torch.int32 and origin.tolist() == coords[:, 1:].min(0).values.tolist()
    assert t.indices.dtype == torch.int32 and int(t.indices[:, 1:].min()) == 0
    assert list(t.spatial_shape) == (t.indices[:, 1:].max(0).values + 1).tolist() and t.batch_size == 2
    assert torch.equal(t.indices[:, 1:] + origin, x.coords[:, 1:]) and t.features is x.feats
    back = from_spconv(t, origin, stride=x.stride)
    assert torch.equal(back.coords, x.coords) and torch.equal(back.feats, x.feats) and back.stride == 2
    # a chosen origin (e.g. a multiple of later strides) must lie at or below every coordinate
    t4, o4 = to_spconv(x, origin=[-8, 0, -20])
    assert o4.tolist() == [-8, 0, -20] and torch.equal(from_spconv(t4, o4, 2).coords, x.coords)
    with pytest.raises(ValueError, match="origin must be <= every coordinate"):
        to_spconv(x, origin=[0, 0, 0])
    with pytest.raises(TypeError, match="origin must be 3 ints"):
        from_spconv(t, [0.5, 0, 0])
    with pytest.raises(TypeError, match="x must be a SparseTensor"):
        to_spconv(x.feats)

    torch.manual_seed(0)
    layer = spc.SubMConv3d(3, 5, 3, bias=True, algo=ConvAlgo.Native)
    ours = s3d.nn.SubMConv3d(3, 5, 3, bias=True, backend="native")
    with torch.no_grad():
        ours.weight.copy_(spconv_to_sparse_weight(layer.weight))
        ours.bias.copy_(layer.bias)
    got = from_spconv(layer(t), origin, stride=x.stride)
    ref = ours(x)
    rows = ref.manager.table(ref.key).lookup(got.coords)
    assert got.coords.shape == ref.coords.shape and bool((rows >= 0).all())
    allclose_report(got.feats, ref.feats[rows.long()], 1e-5, what="spconv SubMConv3d vs sparse3d native")

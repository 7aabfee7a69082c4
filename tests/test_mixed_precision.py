"""float16 / bfloat16: the conv kernels accumulate in float32, and the sparse ops follow torch.autocast.

Every test runs on the CPU and, when a GPU is present, on CUDA (sparse3d.testing.devices()).
References are float64 computations on the same (half-representable) inputs."""
import pytest
import torch
from torch import nn

import sparse3d as s3d
from sparse3d import _ext
from sparse3d.backends.native import NativeBackend
from sparse3d.testing import devices, random_sparse

HALF = [torch.float16, torch.bfloat16]
UNIT_ROUNDOFF = {torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8}


def _cuda_kernels_built() -> bool:
    try:
        _ext.load().hash.build(torch.zeros(1, 4, dtype=torch.int32, device="cuda"))
    except RuntimeError as e:
        if "without CUDA" in str(e):
            return False
        raise
    return True


def _device(name: str) -> str:
    if name == "cuda" and not _cuda_kernels_built():
        pytest.skip("sparse3d._C was built without CUDA (rebuild with FORCE_CUDA=1)")
    return name


DEVICES = [pytest.param(d, id=d) for d in devices()]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("form", ["tables", "pairs"])
def test_conv_kernels_accumulate_in_float32(device, dtype, form):
    """forward and weight_grad in half types (table and pair-list forms): close to the float64 result
    of the same half inputs.

    The CPU widens to float32 and rounds once: within one half rounding of the float64 result plus
    the float32 summation error (bounded here by 2**-20 * sum |terms|); rounding every partial sum
    to the half type instead breaks this bound 15x (float16) / 100x (bfloat16) on these inputs. On
    CUDA each offset's GEMM accumulates in float32 and its product is rounded once before the
    float32 sum over offsets, so the bound there is one rounding per product: u * sum_k |p_k|."""
    device = _device(device)
    C = _ext.load()
    x = random_sparse(3000, 18, 64, batch_size=2, seed=3)
    km = x.manager.kernel_map(x.key, x.key, 3, 1)
    nbr = km.nbr_out
    g = torch.Generator().manual_seed(0)
    f = x.feats.to(dtype)
    w = (torch.randn(27, 64, 32, generator=g, dtype=torch.float64) / 8).to(dtype)
    gout = torch.randn(len(f), 32, generator=g, dtype=torch.float64).to(dtype)
    ref = C.conv.forward(f.double(), w.double(), nbr)
    ref_abs = C.conv.forward(f.double().abs(), w.double().abs(), nbr)  # >= sum_k |p_k|
    ref_gw = C.conv.weight_grad(f.double(), gout.double(), nbr)
    ref_gw_abs = C.conv.weight_grad(f.double().abs(), gout.double().abs(), nbr)
    u = UNIT_ROUNDOFF[dtype]
    if form == "tables":
        got = C.conv.forward(f.to(device), w.to(device), nbr.to(device)).cpu()
        got_gw = C.conv.weight_grad(f.to(device), gout.to(device), nbr.to(device)).cpu()
    else:
        pairs = C.conv.pairs(nbr.to(device), len(f))
        got = C.conv.forward_pairs(f.to(device), w.to(device), pairs).cpu()
        got_gw = C.conv.weight_grad_pairs(f.to(device), gout.to(device), pairs).cpu()
    assert got.dtype == dtype and got_gw.dtype == dtype
    if device == "cpu":
        bound, bound_gw = u * ref.abs() + 2**-20 * ref_abs, u * ref_gw.abs() + 2**-20 * ref_gw_abs
    else:
        bound, bound_gw = u * (ref_abs + ref.abs()), u * (ref_gw_abs + ref_gw.abs())
    bound, bound_gw = bound + 1e-30, bound_gw + 1e-30
    err, err_gw = (got.double() - ref).abs(), (got_gw.double() - ref_gw).abs()
    assert (err <= bound).all(), f"forward error {float((err / bound).max()):.3g} x the float32-accumulation bound"
    assert (err_gw <= bound_gw).all(), f"weight grad error {float((err_gw / bound_gw).max()):.3g} x the bound"


class _Net(nn.Module):
    """Every conv kind, a skip by concatenation, batch norm and pooling: feats [N, 3] -> [N', 4]."""

    def __init__(self, backend=None):
        super().__init__()
        S = s3d.nn
        self.stem = nn.Sequential(S.SubMConv3d(3, 16, 3, bias=False), S.BatchNorm(16), S.ReLU())
        self.down = S.Conv3d(16, 32, 2, stride=2)
        self.mid = S.SubMConv3d(32, 32, 3)
        self.up = S.ConvTranspose3d(32, 16, 2, stride=2)
        self.fuse = S.SubMConv3d(32, 16, 3)
        self.grow = S.GenerativeConvTranspose3d(16, 8, 3, stride=1)
        self.pool = S.MaxPool3d(2, 2)
        self.head = S.Conv3d(8, 4, 1)
        if backend is not None:
            S.set_backend(self, backend)

    def forward(self, x):
        a = self.stem(x)
        b = self.up(self.mid(self.down(a)))
        y = self.grow(self.fuse(s3d.ops.cat(a, b)))
        return self.head(self.pool(s3d.ops.add(y, y)))


def _run(net, x, autocast_dtype=None):
    net.zero_grad(set_to_none=True)
    device = x.device.type
    with torch.autocast(device, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
        out = net(x)
    loss = (out.feats.float() ** 2).mean()
    loss.backward()
    return out, {n: p.grad.detach().clone() for n, p in net.named_parameters()}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("gather", ["auto", "tables", "pairs"])
def test_network_under_autocast(device, dtype, gather):
    """Under autocast the kernels see the autocast dtype once (the Python layer casts) and compute in
    float32 inside: autocast must not re-cast the ATen GEMMs within a kernel (it did in the pairs form)."""
    device = _device(device)
    torch.manual_seed(0)
    net = _Net(NativeBackend(gather=gather)).to(device)
    x = random_sparse(2500, 16, 3, batch_size=2, seed=1, dtype=torch.float32, device=device)
    ref_out, ref_grads = _run(net, x)
    out, grads = _run(net, x, dtype)
    assert out.feats.dtype == dtype, "the last conv under autocast must output the autocast dtype"
    assert torch.equal(out.coords, ref_out.coords)
    rel = (out.feats.float() - ref_out.feats).norm() / ref_out.feats.norm()
    assert rel < 8 * UNIT_ROUNDOFF[dtype], f"output relative error {rel:.3g} under {dtype} autocast"
    for name, g in grads.items():
        assert g.dtype == torch.float32, f"{name}.grad must stay float32 (the parameters' dtype), got {g.dtype}"
        assert torch.isfinite(g).all(), name
        cos = nn.functional.cosine_similarity(g.flatten(), ref_grads[name].flatten(), dim=0)
        assert cos > 0.99, f"{name}: gradient under autocast points elsewhere (cosine {cos:.4f})"


@pytest.mark.parametrize("device", DEVICES)
def test_autocast_leaves_float64_and_plain_runs_alone(device):
    device = _device(device)
    x = random_sparse(300, 10, 2, seed=2, device=device)  # float64
    w = torch.randn(27, 2, 3, dtype=torch.float64, device=device)
    with torch.autocast(device, dtype=torch.bfloat16):
        y = s3d.ops.conv3d(x, w)
    assert y.dtype == torch.float64
    x32 = x.to(dtype=torch.float32)
    assert s3d.ops.conv3d(x32, w.float()).dtype == torch.float32
    with pytest.raises(TypeError, match="must match"):  # outside autocast, mixed dtypes are an error
        s3d.ops.conv3d(x32.to(dtype=torch.bfloat16), w.float())


@pytest.mark.parametrize("device", DEVICES)
def test_add_and_cat_promote_under_autocast_only(device):
    device = _device(device)
    a = random_sparse(200, 8, 3, seed=4, dtype=torch.float32, device=device)
    b = random_sparse(200, 8, 3, seed=5, dtype=torch.float32, device=device).to(dtype=torch.bfloat16)
    with pytest.raises(TypeError, match="same feature dtype"):
        s3d.ops.add(a, b)
    with torch.autocast(device, dtype=torch.bfloat16):
        s, c = s3d.ops.add(a, b), s3d.ops.cat(a, b)
    assert s.dtype == torch.float32 and c.dtype == torch.float32
    want = s3d.ops.add(a, b.to(dtype=torch.float32))
    assert torch.equal(s.coords, want.coords) and torch.equal(s.feats, want.feats)

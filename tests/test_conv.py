"""Every sparse conv variant against dense conv3d / conv_transpose3d in float64: forward, input
gradient and weight gradient, over kernel size, stride, dilation, channels and batch."""
import itertools

import pytest
import torch

import sparse3d as s3d
from sparse3d.testing import (allclose_report, dense_conv, dense_conv_transpose, dense_mask, gather_dense,
                              random_sparse)

BACKENDS = ["native", "torch"]
CASES = [(k, s, d) for k, s, d in itertools.product([1, 2, 3, 4, 5, 7], [1, 2], [1, 2]) if k * d <= 8]
CHANNELS = [(1, 1, 1), (3, 5, 2), (4, 2, 3)]  # (C_in, C_out, batch)
TOL = 1e-10


def _setup(k, s, d, i, n=80):
    c_in, c_out, b = CHANNELS[i % len(CHANNELS)]
    margin = k * d + 1
    spatial = 2 * margin + 6
    x = random_sparse(n, spatial, c_in, batch_size=b, margin=margin, seed=i)
    g = torch.Generator().manual_seed(100 + i)
    w = torch.randn(k**3, c_in, c_out, generator=g, dtype=torch.float64)
    bias = torch.randn(c_out, generator=g, dtype=torch.float64)
    return x, w, bias, spatial, b


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("i,case", list(enumerate(CASES)))
def test_conv3d_matches_dense(backend, i, case):
    k, s, d = case
    x, w, bias, spatial, b = _setup(k, s, d, i)
    feats = x.feats.clone().requires_grad_(True)
    wt = w.clone().requires_grad_(True)
    y = s3d.ops.conv3d(x.replace(feats), wt, bias, k, s, d, backend=backend)
    assert y.stride == s

    vol = x.dense(spatial_shape=[spatial] * 3, batch_size=b).requires_grad_(True)
    wd = w.clone().requires_grad_(True)
    dense = dense_conv(vol, wd, k, s, d)
    ref = gather_dense(dense, y.coords) + bias
    allclose_report(y.feats, ref, TOL, what="forward")
    if s > 1:  # the strided output set is complete: the dense output vanishes elsewhere
        mask = dense_mask(y.coords, (b,) + tuple(dense.shape[2:]))
        assert dense.detach().permute(0, 2, 3, 4, 1)[~mask].abs().max().item() < TOL
    else:
        assert torch.equal(y.coords, x.coords)

    gout = torch.randn(y.feats.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    (y.feats * gout).sum().backward()
    (ref * gout).sum().backward()
    allclose_report(feats.grad, gather_dense(vol.grad, x.coords), TOL, what="input grad")
    allclose_report(wt.grad, wd.grad, TOL, what="weight grad")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("i,case", list(enumerate(CASES)))  # stride 1 too: the kernel points the other way
@pytest.mark.parametrize("generative", [False, True])
def test_conv_transpose3d_matches_dense(backend, i, case, generative):
    k, s, d = case
    fine, _, _, spatial, b = _setup(k, s, d, i)
    c_in, c_out = 3, 2
    coarse_key = fine.manager.downsample(fine.key, k, s, d)
    g = torch.Generator().manual_seed(i)
    coarse_feats = torch.randn(fine.manager.size(coarse_key), c_in, generator=g, dtype=torch.float64)
    coarse = s3d.SparseTensor._make(coarse_feats.clone().requires_grad_(True), fine.manager, coarse_key)
    w = torch.randn(k**3, c_in, c_out, generator=g, dtype=torch.float64, requires_grad=True)
    if generative:
        y = s3d.ops.generative_conv_transpose3d(coarse, w, None, k, s, d, backend=backend)
    else:
        y = s3d.ops.conv_transpose3d(coarse, w, None, k, s, d, backend=backend)
        assert torch.equal(y.coords, fine.coords)
    assert y.stride == 1

    cspatial = [spatial // s + k * d] * 3  # room for every fine output (+ shift) of the dense transpose
    cvol = s3d.SparseTensor._make(coarse_feats, fine.manager, coarse_key).dense(cspatial, batch_size=b)
    cvol.requires_grad_(True)
    wd = w.detach().clone().requires_grad_(True)
    dense, shift = dense_conv_transpose(cvol, wd, k, s, d)
    ref = gather_dense(dense, y.coords, shift)
    allclose_report(y.feats, ref, TOL, what="forward")
    if generative:  # every non-zero dense output is a generated voxel
        mask = dense_mask(y.coords, (b,) + tuple(dense.shape[2:]), shift)
        assert dense.detach().permute(0, 2, 3, 4, 1)[~mask].abs().max().item() < TOL

    gout = torch.randn(y.feats.shape, generator=g, dtype=torch.float64)
    (y.feats * gout).sum().backward()
    (ref * gout).sum().backward()
    allclose_report(coarse.feats.grad, gather_dense(cvol.grad, coarse.coords), TOL, what="input grad")
    allclose_report(w.grad, wd.grad, TOL, what="weight grad")


@pytest.mark.parametrize("op", ["subm", "strided2", "strided3", "transpose", "generative"])
def test_gradcheck(op):
    x = random_sparse(12, 6, 2, batch_size=2, margin=0, seed=3)
    g = torch.Generator().manual_seed(0)
    k, s = {"subm": (3, 1), "strided2": (2, 2), "strided3": (3, 2), "transpose": (2, 2), "generative": (3, 2)}[op]
    c_in = 2
    if op in ("transpose", "generative"):
        key = x.manager.downsample(x.key, k, s)
        x = s3d.SparseTensor._make(torch.randn(x.manager.size(key), c_in, dtype=torch.float64, generator=g),
                                   x.manager, key)
    w = torch.randn(k**3, c_in, 3, dtype=torch.float64, generator=g, requires_grad=True)
    feats = x.feats.clone().requires_grad_(True)

    def f(feats, w):
        xt = x.replace(feats)
        if op == "transpose":
            return s3d.ops.conv_transpose3d(xt, w, None, k, s).feats
        if op == "generative":
            return s3d.ops.generative_conv_transpose3d(xt, w, None, k, s).feats
        return s3d.ops.conv3d(xt, w, None, k, s).feats

    assert torch.autograd.gradcheck(f, (feats, w))


def test_float32_matches_float64():
    x = random_sparse(3000, 30, 16, batch_size=2, seed=5)
    w = torch.randn(27, 16, 32, dtype=torch.float64)
    y64 = s3d.ops.conv3d(x, w, None, 3).feats
    y32 = s3d.ops.conv3d(x.to(dtype=torch.float32), w.float(), None, 3).feats
    allclose_report(y32.double(), y64, 1e-4, what="float32 vs float64")


def test_tiles_do_not_change_results():
    """The native backend's tiling (thread ownership of output rows) must not change the result."""
    from sparse3d.backends.native import NativeBackend
    x = random_sparse(2000, 20, 4, seed=9)
    w = torch.randn(27, 4, 5, dtype=torch.float64)
    outs = [s3d.ops.conv3d(x, w, None, 3, backend=NativeBackend(tile=t)).feats for t in (1, 7, 64, 4096)]
    for o in outs[1:]:
        allclose_report(o, outs[0], 1e-12, what="tile size")


def test_double_backward_native_raises_torch_reference_matches_dense():
    """Second-order gradients: native refuses (its backward is opaque to autograd) instead of being wrong;
    the torch reference differentiates twice and agrees with dense conv3d."""
    k = 3
    x, w, _, spatial, b = _setup(k, 1, 1, 1, n=40)
    with pytest.raises(RuntimeError, match="differentiate twice"):
        f = x.feats.clone().requires_grad_(True)
        y = s3d.ops.conv3d(x.replace(f), w.clone().requires_grad_(True), None, k, backend="native")
        (g,) = torch.autograd.grad(y.feats.pow(2).sum(), f, create_graph=True)
        g.pow(2).sum().backward()
    f, wt = x.feats.clone().requires_grad_(True), w.clone().requires_grad_(True)
    y = s3d.ops.conv3d(x.replace(f), wt, None, k, backend="torch")
    (g,) = torch.autograd.grad(y.feats.pow(2).sum(), f, create_graph=True)
    g.pow(2).sum().backward()
    vol = x.dense(spatial_shape=[spatial] * 3, batch_size=b).requires_grad_(True)
    wd = w.clone().requires_grad_(True)
    m = dense_mask(x.coords, (b,) + (spatial,) * 3).unsqueeze(1)  # [B, 1, X, Y, Z]: the active sites
    (gd,) = torch.autograd.grad((dense_conv(vol, wd, k, 1, 1) * m).pow(2).sum(), vol, create_graph=True)
    (gd * m).pow(2).sum().backward()
    allclose_report(wt.grad, wd.grad, 1e-8, what="second-order weight grad")

"""The direct float32 CPU kernels (csrc/conv/conv_cpu_direct.cpp: C_out a multiple of 8 up to 64) against
the float64 tiled GEMM path, which tests/test_conv.py checks against dense conv3d: forward, input gradient
and weight gradient over channel counts, kernel sizes and strides; determinism; bad tables."""
import pytest
import torch

import sparse3d as s3d
from sparse3d import _ext
from sparse3d.testing import allclose_report, random_sparse

C = _ext.conv()
DIRECT = C.direct_kernels(torch.zeros(1, 1), 16, 16)[0]
needs_direct = pytest.mark.skipif(not DIRECT, reason="this CPU lacks AVX2 + FMA: the direct kernels are not used")


def test_direct_kernels_cover_float32_multiples_of_8_only():
    f32, f64 = torch.zeros(1, 1), torch.zeros(1, 1, dtype=torch.float64)
    assert C.direct_kernels(f64, 16, 16) == (False, False)
    for c_out in (1, 4, 12, 72, 128):
        assert C.direct_kernels(f32, 16, c_out) == (False, False), c_out
    for c_out in range(8, 65, 8):
        assert C.direct_kernels(f32, 16, c_out) == (DIRECT, DIRECT), c_out
    # the weight gradient's GEMM path is faster above C_in * C_out = 1024
    assert C.direct_kernels(f32, 64, 64) == (DIRECT, False)
    assert C.direct_kernels(f32, 32, 32) == (DIRECT, DIRECT)


def _run(x, w, op, k, s):
    """(out, grad feats, grad weight) of one conv with a fixed upstream gradient."""
    feats = x.feats.clone().requires_grad_(True)
    w = w.clone().requires_grad_(True)
    xt = x.replace(feats)
    if op == "subm":
        y = s3d.ops.conv3d(xt, w, None, k, 1)
    elif op == "strided":
        y = s3d.ops.conv3d(xt, w, None, k, s)
    else:  # x is on the coarse lattice (stride s)
        y = s3d.ops.generative_conv_transpose3d(xt, w, None, k, s)
    g = torch.Generator().manual_seed(7)
    up = torch.randn(y.feats.shape, generator=g, dtype=torch.float64).to(y.feats.dtype)
    (y.feats * up).sum().backward()
    return y.feats.detach(), feats.grad, w.grad


@needs_direct
@pytest.mark.parametrize("c_in,c_out", [(1, 8), (2, 16), (3, 24), (16, 16), (16, 32), (33, 40), (32, 64),
                                        (64, 56), (64, 64), (5, 12)])  # (5, 12): the tiled path
@pytest.mark.parametrize("op,k,s", [("subm", 3, 1), ("strided", 2, 2), ("generative", 2, 2)])
def test_direct_float32_matches_float64(c_in, c_out, op, k, s):
    x = random_sparse(1500, 24, c_in, batch_size=2, seed=c_in * 100 + c_out, margin=3)
    if op == "generative":  # its input: the coarse lattice of x
        key = x.manager.downsample(x.key, k, s, 1)
        coarse = torch.randn(x.manager.size(key), c_in, generator=torch.Generator().manual_seed(1),
                             dtype=torch.float64)
        x = s3d.SparseTensor._make(coarse, x.manager, key)
    g = torch.Generator().manual_seed(c_out)
    w = torch.randn(k**3, c_in, c_out, generator=g, dtype=torch.float64) / (k**3 * c_in) ** 0.5
    ref = _run(x, w, op, k, s)
    got = _run(x.to(dtype=torch.float32), w.float(), op, k, s)
    for name, a, b in zip(("forward", "grad feats", "grad weight"), got, ref):
        scale = float(b.abs().max()) or 1.0
        allclose_report(a.double() / scale, b / scale, 2e-5, what=f"{op} C {c_in}->{c_out}: {name}")


@needs_direct
def test_direct_forward_does_not_depend_on_tiles_or_threads():
    x = random_sparse(3000, 30, 16, batch_size=2, seed=3, dtype=torch.float32)
    w = torch.randn(27, 16, 32)
    nbr = torch.randint(-1, x.feats.shape[0], (2500, 27), generator=torch.Generator().manual_seed(0),
                        dtype=torch.int32)
    threads = torch.get_num_threads()
    try:
        outs = []
        for t in (1, 2):
            torch.set_num_threads(t)
            outs += [C.forward(x.feats, w, nbr, tile) for tile in (1, 7, 64, 2048)]
            grads = [C.weight_grad(x.feats, outs[-1], nbr, 64) for _ in range(2)]
            assert torch.equal(grads[0], grads[1])  # same threads and tiles: the same bits
    finally:
        torch.set_num_threads(threads)
    for o in outs[1:]:
        assert torch.equal(o, outs[0])


@needs_direct
def test_direct_rejects_out_of_range_table():
    feats = torch.randn(10, 16)
    nbr = torch.full((4, 27), -1, dtype=torch.int32)
    nbr[2, 5] = 10  # == N_in
    with pytest.raises(ValueError, match="N_in = 10"):
        C.forward(feats, torch.randn(27, 16, 16), nbr)
    with pytest.raises(ValueError, match="N_in = 10"):
        C.weight_grad(feats, torch.randn(4, 16), nbr)

"""The direct float32 CPU kernels (csrc/conv/conv_cpu_direct.cpp and conv_cpu_direct512.cpp: C_out a multiple of 8
up to 64, or of 16 up to 128 with AVX-512) against the float64 tiled GEMM path, which tests/test_conv.py checks
against dense conv3d: forward, input gradient and weight gradient over channel counts, kernel sizes and strides,
for every instruction set this CPU has (``simd``); the kernel choice; the sets against each other; determinism;
bad tables and bad ``simd``."""
import pytest
import torch

import sparse3d as s3d
from sparse3d import _ext
from sparse3d.backends.native import NativeBackend
from sparse3d.testing import allclose_report, random_sparse

C = _ext.conv()


def _cpu_has(simd):
    try:
        C.direct_kernels(torch.zeros(1, 1), 16, 16, simd)
        return True
    except ValueError:
        return False


SETS = [s for s in ("avx512", "avx2") if _cpu_has(s)]
needs_direct = pytest.mark.skipif(not SETS, reason="this CPU lacks AVX2 + FMA: the direct kernels are not used")
per_set = pytest.mark.parametrize("simd", SETS or ["avx2"])


def test_kernel_choice_follows_dtype_channels_and_simd():
    f32, f64 = torch.zeros(1, 1), torch.zeros(1, 1, dtype=torch.float64)
    for simd in ("auto", "none", *SETS):
        assert C.direct_kernels(f64, 16, 16, simd) == ("gemm", "gemm")
        for c_out in (1, 4, 12, 72, 136, 144):
            assert C.direct_kernels(f32, 16, c_out, simd) == ("gemm", "gemm"), (simd, c_out)
    for c_out in range(80, 129, 16):  # above 64: only the AVX-512 set, multiples of 16 up to 128
        assert C.direct_kernels(f32, 16, c_out, "none") == ("gemm", "gemm")
        if "avx2" in SETS:
            assert C.direct_kernels(f32, 16, c_out, "avx2") == ("gemm", "gemm"), c_out
        if "avx512" in SETS:
            assert C.direct_kernels(f32, 16, c_out, "avx512") == ("avx512", "avx512"), c_out
    for c_out in range(8, 65, 8):
        assert C.direct_kernels(f32, 16, c_out, "none") == ("gemm", "gemm")
        if "avx2" in SETS:
            assert C.direct_kernels(f32, 16, c_out, "avx2") == ("avx2", "avx2"), c_out
        if "avx512" in SETS:  # a multiple of 16 takes AVX-512, the rest AVX2
            want = "avx512" if c_out % 16 == 0 else "avx2"
            assert C.direct_kernels(f32, 16, c_out, "avx512") == (want, want), c_out
        assert C.direct_kernels(f32, 16, c_out) == C.direct_kernels(f32, 16, c_out, SETS[0] if SETS else "none")
    if "avx2" in SETS:  # the AVX2 weight gradient stops at C_in * C_out = 1024 (the GEMM path is faster above)
        assert C.direct_kernels(f32, 64, 64, "avx2") == ("avx2", "gemm")
        assert C.direct_kernels(f32, 32, 32, "avx2") == ("avx2", "avx2")
    if "avx512" in SETS:  # the AVX-512 one has no such limit
        assert C.direct_kernels(f32, 256, 64, "avx512") == ("avx512", "avx512")
        assert C.direct_kernels(f32, 64, 56, "avx512") == ("avx2", "gemm")


def test_bad_simd_names_the_argument():
    feats, nbr = torch.randn(4, 16), torch.zeros(4, 1, dtype=torch.int32)
    for call in (lambda s: C.forward(feats, torch.randn(1, 16, 16), nbr, 64, s),
                 lambda s: C.weight_grad(feats, torch.randn(4, 16), nbr, 64, s),
                 lambda s: C.direct_kernels(feats, 16, 16, s)):
        with pytest.raises(ValueError, match="simd must be one of 'auto', 'avx512', 'avx2', 'none', got 'sse'"):
            call("sse")
    for simd in {"avx512", "avx2"} - set(SETS):  # a set this CPU lacks is refused, not replaced
        with pytest.raises(ValueError, match=f"simd='{simd}'.*lacks"):
            C.forward(feats, torch.randn(1, 16, 16), nbr, 64, simd)
    with pytest.raises(ValueError, match="simd must be one of"):
        NativeBackend(simd="sse")
    with pytest.raises(ValueError, match="gather='pairs' does not run them"):
        NativeBackend(gather="pairs", simd="none")


def _run(x, w, op, k, s, backend=None):
    """(out, grad feats, grad weight) of one conv with a fixed upstream gradient."""
    feats = x.feats.clone().requires_grad_(True)
    w = w.clone().requires_grad_(True)
    xt = x.replace(feats)
    if op == "subm":
        y = s3d.ops.conv3d(xt, w, None, k, 1, backend=backend)
    elif op == "strided":
        y = s3d.ops.conv3d(xt, w, None, k, s, backend=backend)
    else:  # x is on the coarse lattice (stride s)
        y = s3d.ops.generative_conv_transpose3d(xt, w, None, k, s, backend=backend)
    g = torch.Generator().manual_seed(7)
    up = torch.randn(y.feats.shape, generator=g, dtype=torch.float64).to(y.feats.dtype)
    (y.feats * up).sum().backward()
    return y.feats.detach(), feats.grad, w.grad


def _case(c_in, c_out, op, k, s):
    x = random_sparse(1500, 24, c_in, batch_size=2, seed=c_in * 100 + c_out, margin=3)
    if op == "generative":  # its input: the coarse lattice of x
        key = x.manager.downsample(x.key, k, s, 1)
        coarse = torch.randn(x.manager.size(key), c_in, generator=torch.Generator().manual_seed(1),
                             dtype=torch.float64)
        x = s3d.SparseTensor._make(coarse, x.manager, key)
    g = torch.Generator().manual_seed(c_out)
    w = torch.randn(k**3, c_in, c_out, generator=g, dtype=torch.float64) / (k**3 * c_in) ** 0.5
    return x, w


@needs_direct
@per_set
@pytest.mark.parametrize("c_in,c_out", [(1, 8), (2, 16), (3, 24), (16, 16), (16, 32), (33, 40), (32, 64),
                                        (5, 48), (64, 56), (64, 64), (5, 12),  # (5, 12): the tiled path
                                        (7, 80), (48, 96), (64, 128), (3, 72)])  # above 64: AVX-512 or tiled
@pytest.mark.parametrize("op,k,s", [("subm", 3, 1), ("strided", 2, 2), ("generative", 2, 2)])
def test_direct_float32_matches_float64(simd, c_in, c_out, op, k, s):
    x, w = _case(c_in, c_out, op, k, s)
    ref = _run(x, w, op, k, s)
    got = _run(x.to(dtype=torch.float32), w.float(), op, k, s, NativeBackend(simd=simd))
    for name, a, b in zip(("forward", "grad feats", "grad weight"), got, ref):
        scale = float(b.abs().max()) or 1.0
        allclose_report(a.double() / scale, b / scale, 2e-5, what=f"{simd} {op} C {c_in}->{c_out}: {name}")


@pytest.mark.skipif(len(SETS) < 2, reason="needs both AVX-512F and AVX2 on this CPU")
@pytest.mark.parametrize("c_in,c_out", [(3, 16), (16, 32), (33, 48), (32, 64)])
def test_avx512_and_avx2_agree(c_in, c_out):
    # the weight gradient: both sets add each entry's terms in pair order, the same sums bit for bit; the forward
    # pass: the AVX2 kernel splits a narrow row's input channels over several partial sums, so only close
    x, w = _case(c_in, c_out, "subm", 3, 1)
    x, w = x.to(dtype=torch.float32), w.float()
    a = _run(x, w, "subm", 3, 1, NativeBackend(simd="avx512"))
    b = _run(x, w, "subm", 3, 1, NativeBackend(simd="avx2"))
    for name, u, v in zip(("forward", "grad feats"), a, b):
        allclose_report(u / v.abs().max(), v / v.abs().max(), 1e-6, what=f"C {c_in}->{c_out}: {name}")
    if c_in * c_out <= 1024:  # else AVX2 leaves the weight gradient to the GEMM path
        assert torch.equal(a[2], b[2])


@needs_direct
@per_set
@pytest.mark.parametrize("c_out", [16, 32, 64])
def test_direct_does_not_depend_on_tiles_or_threads(simd, c_out):
    x = random_sparse(3000, 30, 16, batch_size=2, seed=3, dtype=torch.float32)
    w = torch.randn(27, 16, c_out)
    nbr = torch.randint(-1, x.feats.shape[0], (2500, 27), generator=torch.Generator().manual_seed(0),
                        dtype=torch.int32)
    threads = torch.get_num_threads()
    try:
        outs = []
        for t in (1, 2):
            torch.set_num_threads(t)
            outs += [C.forward(x.feats, w, nbr, tile, simd) for tile in (1, 7, 64, 2048)]
            grads = [C.weight_grad(x.feats, outs[-1], nbr, 64, simd) for _ in range(2)]
            assert torch.equal(grads[0], grads[1])  # same threads and tiles: the same bits
    finally:
        torch.set_num_threads(threads)
    for o in outs[1:]:
        assert torch.equal(o, outs[0])


@needs_direct
@per_set
def test_direct_rejects_out_of_range_table(simd):
    feats = torch.randn(10, 16)
    nbr = torch.full((4, 27), -1, dtype=torch.int32)
    nbr[2, 5] = 10  # == N_in
    with pytest.raises(ValueError, match="N_in = 10"):
        C.forward(feats, torch.randn(27, 16, 16), nbr, 2048, simd)
    with pytest.raises(ValueError, match="N_in = 10"):
        C.weight_grad(feats, torch.randn(4, 16), nbr, 2048, simd)

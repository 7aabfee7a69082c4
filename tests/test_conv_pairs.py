"""The pair-list form of a kernel map (csrc/conv/conv_pairs.h): what the CUDA kernels run on, built
once per map and shared by the forward pass and both backward passes. Checked here on the CPU (its
ATen implementation); tests/test_cuda.py and test_backends.py run it on CUDA when a GPU is present."""
import pytest
import torch

import sparse3d as s3d
from sparse3d import _ext
from sparse3d.backends.native import NativeBackend
from sparse3d.testing import random_sparse


@pytest.mark.parametrize("k,s", [(3, 1), (2, 2), (3, 2)])
def test_pairs_list_every_entry_of_the_table_once(k, s):
    x = random_sparse(800, 14, 2, batch_size=2, seed=k + s)
    out_key = x.manager.downsample(x.key, k, s)
    km = x.manager.kernel_map(x.key, out_key, k, s)
    nbr, p = km.nbr_out, NativeBackend().plan(km).pairs
    assert p.begin.device.type == "cpu" and p.src.dtype == p.dst.dtype == torch.int64
    assert (p.n_in, p.n_out) == (len(x), x.manager.size(out_key))
    assert p.begin[0] == 0 and p.begin[-1] == len(p.src) == int((nbr >= 0).sum())
    for j in range(k**3):
        b, e = int(p.begin[j]), int(p.begin[j + 1])
        dst, src = p.dst[b:e], p.src[b:e]
        assert torch.equal(dst, (nbr[:, j] >= 0).nonzero()[:, 0]), f"offset {j}: outputs, ascending"
        assert torch.equal(nbr[dst, j].long(), src), f"offset {j}: inputs"
        assert len(torch.unique(src)) == len(src), "an input feeds one output per offset"
    t = NativeBackend().plan(km.transpose()).pairs  # the transposed conv: the same pairs, roles exchanged
    assert torch.equal(t.src, p.dst) and torch.equal(t.dst, p.src) and (t.n_in, t.n_out) == (p.n_out, p.n_in)


def test_pair_form_is_built_once_and_needs_no_input_side_table():
    x = random_sparse(500, 12, 3, seed=1)
    be = NativeBackend(gather="pairs")
    f = x.feats.clone().requires_grad_(True)
    w = torch.randn(8, 3, 4, dtype=torch.float64, requires_grad=True)
    down = s3d.ops.conv3d(x.replace(f), w, None, 2, 2, backend=be)
    up = s3d.ops.conv_transpose3d(down, w.transpose(1, 2), None, 2, 2, backend=be)  # the same geometry
    (down.feats.sum() + up.feats.square().sum()).backward()
    km = x.manager.kernel_map(x.key, down.key, 2, 2)
    plan = be.plan(km)  # cached on the map: the conv and its transpose share it
    assert plan is be.plan(km) and plan.pairs is plan.pairs
    assert be.plan(km.transpose()).conv_plan is plan
    assert not km.tables.built_in, "the pair form must not build the inverted table"
    ref = s3d.ops.conv_transpose3d(s3d.ops.conv3d(x, w.detach(), None, 2, 2, backend="native"),
                                   w.detach().transpose(1, 2), None, 2, 2, backend="native")
    assert torch.equal(up.feats.detach(), ref.feats)


def test_pair_form_errors_are_clear():
    C = _ext.load()
    nbr = torch.tensor([[0, -1], [2, 1]], dtype=torch.int32)
    with pytest.raises(ValueError, match="N_in = 2"):
        C.conv.pairs(nbr, 2)
    p = C.conv.pairs(nbr, 3)
    f, w = torch.randn(3, 4), torch.randn(2, 4, 5)
    assert C.conv.forward_pairs(f, w, p).shape == (2, 5)
    with pytest.raises(ValueError, match="N_in = 3"):
        C.conv.forward_pairs(torch.randn(4, 4), w, p)
    with pytest.raises(ValueError, match=r"\[K=2, C_in=4"):
        C.conv.forward_pairs(f, torch.randn(3, 4, 5), p)
    with pytest.raises(TypeError, match="one dtype"):
        C.conv.forward_pairs(f, w.double(), p)
    with pytest.raises(TypeError, match="float64, float32, float16 or bfloat16"):
        C.conv.forward_pairs(f.int(), w.int(), p)
    with pytest.raises(ValueError, match="N_out = 2"):
        C.conv.weight_grad_pairs(f, torch.randn(3, 5), p)
    with pytest.raises(TypeError):
        C.conv.ConvPairs()  # only conv.pairs makes them (their indices are checked there)
    empty = C.conv.pairs(torch.full((0, 2), -1, dtype=torch.int32), 3)
    assert C.conv.forward_pairs(f, w, empty).shape == (0, 5)
    assert torch.equal(C.conv.weight_grad_pairs(f, torch.randn(0, 5), empty), torch.zeros(2, 4, 5))
    with pytest.raises(ValueError, match="gather must be one of"):
        NativeBackend(gather="fused")

"""First check that the dense reference behaves as assumed (impulse input, non-symmetric
kernel), then that the sparse conv agrees with it on the same impulse."""
import pytest
import torch

import sparse3d as s3d
from sparse3d.kernel import dense_to_sparse_weight, kernel_offsets, sparse_to_dense_weight
from sparse3d.testing import dense_conv, dense_conv_transpose


def _nonsymmetric_weight(k: int) -> torch.Tensor:
    # every entry distinct, so any flip or transposition of axes shows
    return torch.arange(1, k**3 + 1, dtype=torch.float64).reshape(k**3, 1, 1)


@pytest.mark.parametrize("k,d", [(2, 1), (3, 1), (3, 2), (4, 1), (5, 1)])
def test_dense_reference_impulse(k, d):
    """An impulse at p through conv with weight W gives W[k] at o = p - off[k]."""
    s = 16
    p = torch.tensor([7, 8, 6])
    vol = torch.zeros(1, 1, s, s, s, dtype=torch.float64)
    vol[0, 0, p[0], p[1], p[2]] = 1
    w = _nonsymmetric_weight(k)
    out = dense_conv(vol, w, k, 1, d)[0, 0]
    off = kernel_offsets(k, d).long()
    for idx in range(k**3):
        o = p - off[idx]
        assert out[o[0], o[1], o[2]].item() == w[idx, 0, 0].item()
    assert (out != 0).sum().item() == k**3


def test_dense_transpose_impulse():
    """Transposed reference: input i writes W[k] to i * stride + off[k]."""
    k, stride = 3, 2
    vol = torch.zeros(1, 1, 5, 5, 5, dtype=torch.float64)
    vol[0, 0, 2, 1, 3] = 1
    w = _nonsymmetric_weight(k)
    out, shift = dense_conv_transpose(vol, w, k, stride)
    off = kernel_offsets(k).long()
    for idx in range(k**3):
        j = torch.tensor([2, 1, 3]) * stride + off[idx] + shift
        assert out[0, 0, j[0], j[1], j[2]].item() == w[idx, 0, 0].item()


def test_weight_layout_round_trip():
    w = torch.randn(5, 3, 3, 3, 3)
    assert torch.equal(sparse_to_dense_weight(dense_to_sparse_weight(w)), w)
    sw = dense_to_sparse_weight(w)
    assert sw.shape == (27, 3, 5)
    # offset index 1 is (kx, ky, kz) = (0, 0, 1)
    assert torch.equal(sw[1], w[:, :, 0, 0, 1].t())


@pytest.mark.parametrize("backend", ["native", "torch"])
def test_sparse_impulse_matches_dense(backend):
    """A sparse impulse surrounded by empty voxels gets exactly W[k] at p - off[k]."""
    k = 3
    p = (5, 6, 7)
    off = kernel_offsets(k).long()
    coords = torch.tensor([[0, p[0] - o[0], p[1] - o[1], p[2] - o[2]] for o in off.tolist()], dtype=torch.int32)
    feats = torch.zeros(len(coords), 1, dtype=torch.float64)
    centre = (coords[:, 1:] == torch.tensor(p, dtype=torch.int32)).all(1)
    feats[centre] = 1
    x = s3d.SparseTensor(coords, feats)
    w = _nonsymmetric_weight(k)
    y = s3d.ops.conv3d(x, w, None, k, backend=backend)
    assert torch.equal(y.feats[:, 0], w[:, 0, 0])

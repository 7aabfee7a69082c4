"""sparse3d.nn.SampleNorm: each sample of the batch normalised over its own voxels, checked against torch's
BatchNorm1d in training mode run on each sample alone (float64), gradcheck, and clear errors."""
import pytest
import torch

import sparse3d as s3d
from sparse3d.testing import random_sparse


def _per_sample_batchnorm(x: s3d.SparseTensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    ref = torch.nn.BatchNorm1d(x.num_channels, eps=1e-5).double().train()
    with torch.no_grad():
        ref.weight.copy_(weight), ref.bias.copy_(bias)
    out = torch.empty_like(x.feats)
    for b in x.coords[:, 0].unique():
        rows = x.coords[:, 0] == b
        out[rows] = ref(x.feats[rows])
    return out


def test_matches_batchnorm_on_each_sample_alone():
    x = random_sparse(300, 8, 5, batch_size=3, seed=1)
    x = x.replace(x.feats * torch.tensor([1.0, 3.0, 0.1, 10.0, 2.0], dtype=torch.float64) + 4.0)
    norm = s3d.nn.SampleNorm(5).double()
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 2, 5)), norm.bias.copy_(torch.linspace(-1, 1, 5))
    y = norm(x)
    assert torch.equal(y.coords, x.coords) and y.stride == x.stride
    torch.testing.assert_close(y.feats, _per_sample_batchnorm(x, norm.weight, norm.bias))
    # no running statistics: training and evaluation mode give the same rows
    torch.testing.assert_close(norm.eval()(x).feats, y.feats)
    assert [n for n, _ in norm.named_buffers()] == []


def test_samples_are_independent_and_batch_ids_need_not_be_sorted_or_dense():
    x = random_sparse(200, 8, 4, batch_size=2, seed=2)
    c = x.coords.clone()
    c[:, 0] = torch.where(c[:, 0] == 0, 7, 3)  # ids 3 and 7
    perm = torch.randperm(len(c), generator=torch.Generator().manual_seed(0))
    x2 = s3d.SparseTensor(c[perm], x.feats[perm])
    norm = s3d.nn.SampleNorm(4).double()
    y, y2 = norm(x), norm(x2)
    torch.testing.assert_close(y2.feats, y.feats[perm])
    # changing sample 1's features leaves sample 0's output alone
    f = x.feats.clone()
    f[x.coords[:, 0] == 1] *= 5
    torch.testing.assert_close(norm(x.replace(f)).feats[x.coords[:, 0] == 0], y.feats[x.coords[:, 0] == 0])


def test_a_sample_of_one_voxel_gets_the_bias():
    x = s3d.SparseTensor(torch.tensor([[0, 0, 0, 0], [1, 1, 1, 1], [1, 2, 1, 1]], dtype=torch.int32),
                         torch.tensor([[5.0, -2.0], [1.0, 1.0], [3.0, 5.0]], dtype=torch.float64))
    norm = s3d.nn.SampleNorm(2).double()
    with torch.no_grad():
        norm.bias.copy_(torch.tensor([0.25, -0.5]))
    y = norm(x).feats
    torch.testing.assert_close(y[0], torch.tensor([0.25, -0.5], dtype=torch.float64))
    expected = torch.tensor([[-1.0, -1.0], [1.0, 1.0]], dtype=torch.float64) + norm.bias.detach()
    torch.testing.assert_close(y[1:], expected, atol=1e-5, rtol=0)


def test_gradcheck():
    x = random_sparse(40, 4, 3, batch_size=2, seed=3)
    norm = s3d.nn.SampleNorm(3).double()
    feats = x.feats.clone().requires_grad_(True)
    w = torch.linspace(0.5, 2, 3, dtype=torch.float64, requires_grad=True)
    b = torch.linspace(-1, 1, 3, dtype=torch.float64, requires_grad=True)

    def run(f, w, b):
        return torch.func.functional_call(norm, {"weight": w, "bias": b}, (x.replace(f),)).feats
    assert torch.autograd.gradcheck(run, (feats, w, b))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="num_features must be an int >= 1, got 0"):
        s3d.nn.SampleNorm(0)
    with pytest.raises(ValueError, match="eps must be > 0, got 0"):
        s3d.nn.SampleNorm(3, eps=0)
    with pytest.raises(ValueError, match=r"SampleNorm\(3\) expects feats \[N, 3\], got \(\d+, 4\)"):
        s3d.nn.SampleNorm(3)(random_sparse(10, 4, 4, dtype=torch.float32))

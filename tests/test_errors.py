"""Bad arguments raise ValueError / TypeError (the exact type) with a message naming the argument,
instead of a raw IndexError/RuntimeError from deep inside torch or a silent truncation."""
import sys

import pytest
import torch

import sparse3d as s3d
from sparse3d.backends import get_backend
from sparse3d.testing import random_sparse


def _raises(exc, match, fn, *args, **kwargs):
    """fn(*args, **kwargs) raises exactly ``exc`` (not a subclass) with ``match`` in its message."""
    with pytest.raises(exc, match=match) as info:
        fn(*args, **kwargs)
    assert info.type is exc, f"expected exactly {exc.__name__}, got {info.type.__name__}: {info.value}"
    return info.value


@pytest.fixture
def x():
    return random_sparse(40, 8, 2, batch_size=3, seed=0)  # float64, batch indices 0..2


# ---- SparseTensor ------------------------------------------------------------------------------------
def test_dense_batch_size_smaller_than_the_batch_indices(x):
    assert x.batch_size == 3
    _raises(ValueError, r"batch_size=2 .*largest batch index 2, so batch_size must be >= 3", x.dense, batch_size=2)
    _raises(TypeError, "batch_size must be an int", x.dense, batch_size=2.5)
    assert x.dense(batch_size=5).shape[0] == 5  # larger is fine: trailing empty items
    assert torch.equal(x.dense(batch_size=3), x.dense())


def test_from_points_feats_and_batch_types():
    pts = torch.rand(5, 3)
    _raises(TypeError, "feats must be a torch.Tensor", s3d.SparseTensor.from_points, pts, [[1.0]] * 5)
    _raises(TypeError, "feats must be a floating-point", s3d.SparseTensor.from_points, pts,
            torch.ones(5, 1, dtype=torch.long))
    _raises(TypeError, "batch must be an integer tensor", s3d.SparseTensor.from_points, pts,
            batch=torch.zeros(5))
    _raises(TypeError, "batch must be an integer torch.Tensor", s3d.SparseTensor.from_points, pts,
            batch=[0] * 5)
    _raises(ValueError, r"batch must have shape \[P=5\]", s3d.SparseTensor.from_points, pts,
            batch=torch.zeros(4, dtype=torch.long))
    y, _ = s3d.SparseTensor.from_points(pts, batch=torch.tensor([0, 1, 0, 1, 1], dtype=torch.int32))
    assert y.batch_size == 2


def test_replace_validates_feats_like_the_constructor(x):
    _raises(TypeError, "feats must be a torch.Tensor", x.replace, [[0.0, 0.0]] * len(x))
    _raises(TypeError, "feats must be a floating-point", x.replace, torch.ones(len(x), 2, dtype=torch.long))
    _raises(ValueError, rf"feats must have shape \[N={len(x)}, C\]", x.replace, torch.ones(len(x)))
    _raises(ValueError, rf"feats must have shape \[N={len(x)}, C\]", x.replace, torch.ones(len(x) + 1, 2))
    _raises(ValueError, "feats must be on the tensor's device", x.replace, torch.ones(len(x), 2, device="meta"))
    assert x.replace(torch.ones(len(x), 7)).num_channels == 7  # any C, any float dtype


def test_collate_mismatches_name_what_differs():
    a = random_sparse(20, 6, 2, seed=1)
    b = random_sparse(20, 6, 3, seed=2)
    _raises(ValueError, r"channels.*tensors\[0\] with 2 and tensors\[1\] with 3", s3d.SparseTensor.collate, [a, b])
    c = random_sparse(20, 6, 2, seed=3, dtype=torch.float32)
    _raises(TypeError, r"dtype.*tensors\[0\]\.dtype=torch\.float64 and tensors\[1\]\.dtype=torch\.float32",
            s3d.SparseTensor.collate, [a, c])
    _raises(TypeError, r"tensors\[1\] must be a SparseTensor", s3d.SparseTensor.collate, [a, a.feats])


# ---- ops ---------------------------------------------------------------------------------------------
def test_global_pool_checks_batch_size_and_input(x):
    _raises(ValueError, r"batch_size=1 .*must be >= 3", s3d.ops.global_pool, x, "mean", 1)
    _raises(TypeError, "x must be a SparseTensor", s3d.ops.global_pool, x.feats)
    out = s3d.ops.global_pool(x, "sum", batch_size=4)
    assert out.shape == (4, 2) and torch.equal(out[3], torch.zeros(2, dtype=out.dtype))
    _raises(ValueError, "batch_size=2", s3d.nn.GlobalPool("max"), x, 2)


def test_prune_rejects_a_non_sparse_tensor(x):
    _raises(TypeError, "x must be a SparseTensor", s3d.ops.prune, x.feats, torch.ones(len(x), dtype=torch.bool))
    _raises(TypeError, "x must be a SparseTensor", s3d.nn.Prune(), x.coords, torch.ones(len(x), dtype=torch.bool))


def test_add_and_cat_mismatches(x):
    y = x.to(dtype=torch.float32)
    _raises(TypeError, r"dtype.*a\.dtype=torch\.float64 and b\.dtype=torch\.float32", s3d.ops.add, x, y)
    _raises(TypeError, r"dtype.*a\.dtype=torch\.float64 and b\.dtype=torch\.float32", s3d.ops.cat, x, y)
    z = x.replace(torch.ones(len(x), 5, dtype=torch.float64))
    _raises(ValueError, r"channels.*a\.num_channels=2 and b\.num_channels=5", s3d.ops.add, x, z)
    _raises(TypeError, "b must be a SparseTensor", s3d.ops.add, x, x.feats)


def test_lookup_rejects_floating_point_coordinates(x):
    q = x.coords[:3]
    assert s3d.ops.lookup(x, q).tolist() == [0, 1, 2]
    _raises(TypeError, "coords must be an integer tensor", s3d.ops.lookup, x, q.float() + 0.5)
    _raises(TypeError, "coords must be an integer torch.Tensor", s3d.ops.lookup, x, q.tolist())
    _raises(ValueError, r"coords must have shape \[M, 4\]", s3d.ops.lookup, x, q[:, :3])
    _raises(TypeError, "x must be a SparseTensor", s3d.ops.lookup, x.feats, q)


def test_conv_weight_and_bias_checks(x):
    w = torch.randn(27, 2, 4, dtype=torch.float64)
    _raises(TypeError, "weight must be a torch.Tensor", s3d.ops.conv3d, x, w.tolist())
    _raises(TypeError, "weight dtype", s3d.ops.conv3d, x, w.float())
    _raises(TypeError, "bias must be a torch.Tensor", s3d.ops.conv3d, x, w, [0.0] * 4)
    _raises(TypeError, "bias dtype torch.float32 must match weight dtype torch.float64", s3d.ops.conv3d, x, w,
            torch.zeros(4))
    _raises(ValueError, "bias must be on weight's device", s3d.ops.conv3d, x, w,
            torch.zeros(4, dtype=torch.float64, device="meta"))
    _raises(ValueError, r"bias must have shape \[C_out=4\]", s3d.ops.conv3d, x, w, torch.zeros(3, dtype=torch.float64))
    _raises(TypeError, "weight must be a torch.Tensor", s3d.ops.conv_transpose3d, x, "w")
    assert len(s3d.ops.conv3d(x, w, torch.zeros(4, dtype=torch.float64))) == len(x)


# ---- backends ----------------------------------------------------------------------------------------
@pytest.fixture
def no_spconv(monkeypatch):
    """Make every `import spconv...` fail, as on a machine without spconv."""
    for name in [m for m in list(sys.modules) if m == "spconv" or m.startswith("spconv.")]:
        monkeypatch.delitem(sys.modules, name)
    for name in ("spconv", "spconv.core", "spconv.pytorch", "spconv.pytorch.functional", "spconv.pytorch.ops"):
        monkeypatch.setitem(sys.modules, name, None)  # None in sys.modules: the import raises ImportError


def test_spconv_backend_without_spconv_says_how_to_install(no_spconv):
    from sparse3d.backends.spconv import SpconvBackend

    for make in (SpconvBackend, lambda: get_backend("spconv")):
        err = _raises(ImportError, r"pip install spconv-cu120", make)
        assert "'native'" in str(err) and "'torch'" in str(err), str(err)
    _raises(ImportError, "pip install spconv-cu120", s3d.nn.SubMConv3d, 2, 2, backend="spconv")
    assert get_backend("native").name == "native"  # the alternatives still work

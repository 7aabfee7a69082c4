"""CompletionDataset's in-memory cache: the same samples as from disk, read-only, within its budget."""
import numpy as np
import pytest

from sparse3d.tasks.completion.dataset import KEYS, CompletionDataset
from _completion_fixtures import write_tiny_dataset

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_cache_returns_the_disk_samples_read_only(tmp_path):
    root = write_tiny_dataset(str(tmp_path), n=3, size=16)
    disk = CompletionDataset(root)
    cached = CompletionDataset(root, cache_mib=64)
    for i in range(len(disk)):
        a, b = disk[i], cached[i]
        for k in KEYS:
            np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
            assert getattr(a, k).flags.writeable  # no cache: a fresh, writable copy each time
        assert cached[i] is b  # second access: from memory
        with pytest.raises(ValueError, match="read-only"):
            b.input_tsdf[0, 0, 0] = 1.0  # a change in place would alter later steps' data
    assert disk[0] is not disk[0]


def test_cache_budget_is_respected(tmp_path):
    root = write_tiny_dataset(str(tmp_path), n=3, size=16)
    one = sum(getattr(CompletionDataset(root)[0], k).nbytes for k in KEYS)
    ds = CompletionDataset(root, cache_mib=1.5 * one / 2 ** 20)  # room for one sample, not two
    ds[0], ds[1], ds[2]
    assert list(ds._cache) == [0]
    assert ds[1] is not ds[1]


@pytest.mark.parametrize("bad", [-1, "1", True, float("nan")])
def test_cache_mib_is_checked(tmp_path, bad):
    root = write_tiny_dataset(str(tmp_path), n=1, size=16)
    with pytest.raises(ValueError, match="cache_mib must be a number >= 0"):
        CompletionDataset(root, cache_mib=bad)


def test_collate_pads_samples_of_different_shapes_with_unknown_space():
    """Whole rooms differ in shape: a batch is padded at the high end to the largest extent per axis; each
    sample's input voxels and its known target are those it has alone, the padding is unknown target space."""
    import torch

    from sparse3d.tasks.completion.dataset import collate
    from sparse3d.tasks.completion.procedural import procedural_sample
    big, small = procedural_sample(16, 0), procedural_sample(16, 1).crop((0, 0, 0), 12)
    small = type(small)(*(getattr(small, k)[:, :10] for k in KEYS), small.voxel_size, small.trunc, small.origin)
    assert small.shape == (12, 10, 12)
    x, t = collate([big, small])
    assert t.shape == (16, 16, 16)
    for b, s in enumerate((big, small)):
        xa, ta = collate([s])
        rows = x.coords[:, 0] == b
        assert torch.equal(x.coords[rows, 1:], xa.coords[:, 1:]) and torch.equal(x.feats[rows], xa.feats)
        X, Y, Z = s.shape
        assert torch.equal(t.known[b, :X, :Y, :Z], ta.known[0]) and torch.equal(t.tsdf[b, :X, :Y, :Z], ta.tsdf[0])
        assert int(t.known[b].sum()) == int(ta.known[0].sum())      # nothing known in the padding

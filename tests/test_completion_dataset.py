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

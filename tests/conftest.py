"""Shared fixtures: the real sample data folder (../shared/data), skipped with a reason if absent.

Collection order: the tests of test_dense_reference.py run first, so the dense reference is checked
(impulse inputs, non-symmetric kernels) before the other tests use it as ground truth."""
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real sample data folder {SHARED_DATA} is absent (it ships beside the repo, not in it)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _deterministic_numerics():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    yield


@pytest.fixture
def one_thread():
    """Run a test on one torch thread (tiny models: faster and steadier on a small shared CPU)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


FIRST_MODULES = ("test_dense_reference.py",)


def pytest_collection_modifyitems(session, config, items):
    """Move the dense-reference tests to the front, keeping the relative order of everything else."""
    def runs_first(item) -> bool:
        path = getattr(item, "path", None)
        name = path.name if path is not None else Path(str(item.fspath)).name
        return name in FIRST_MODULES

    items[:] = [i for i in items if runs_first(i)] + [i for i in items if not runs_first(i)]

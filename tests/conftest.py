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


@pytest.fixture(scope="session")
def seg_scans(tmp_path_factory):
    """Two synthetic scans in the ScanNet layout (seed 5, 12 frames of 48x36), their whole-scene crops at 10 cm
    (input fused from every frame, camera visibility as the known mask, val split = one scan) and their benchmark
    ground truth:
    {"root", "scans", "crops", "gt"} (paths; tests write their own outputs elsewhere)."""
    from data_tools import generate_scenes, preprocess, recipe_config
    from data_tools.scannet.benchmark_export import export_gt
    root = tmp_path_factory.mktemp("seg_scans")
    scans = str(root / "scans")
    generate_scenes(scans, 2, seed=5, n_frames=12, width=48, height=36)
    crops = str(root / "crops")
    s = preprocess(scans, crops, recipe_config("completion", placement="whole", voxel_size=0.1, input_fraction=1.0,
                                               segments=1, known="visibility"), progress=False, val_fraction=0.5)
    assert not s["failed"]
    gt = str(root / "gt")
    assert export_gt(scans, gt, progress=False)["failed"] == {}
    return {"root": root, "scans": scans, "crops": crops, "gt": gt}


@pytest.fixture
def predict_cli():
    """``run(argv) -> exit code`` of a parser holding only `sparse3d predict segmentation`."""
    import argparse

    from sparse3d.tasks.segmentation.benchmark_cli import register_predict
    from sparse3d.utils.argtypes import polish_help

    def run(argv):
        parser = argparse.ArgumentParser(prog="sparse3d")
        register_predict(parser.add_subparsers(dest="command", required=True).add_parser("predict").add_subparsers(
            dest="task", required=True))
        args = polish_help(parser).parse_args(argv)
        return int(args.func(args) or 0)
    return run


FIRST_MODULES = ("test_dense_reference.py",)


def pytest_collection_modifyitems(session, config, items):
    """Move the dense-reference tests to the front, keeping the relative order of everything else."""
    def runs_first(item) -> bool:
        path = getattr(item, "path", None)
        name = path.name if path is not None else Path(str(item.fspath)).name
        return name in FIRST_MODULES

    items[:] = [i for i in items if runs_first(i)] + [i for i in items if not runs_first(i)]

"""benchmarks/bm_fusion_gap.py: the fused-level statistics by hand, and the drift scaling of the kinect sensor."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from data_tools import crop_from_dense
from data_tools.synthetic.sensor import KINECT
from sparse3d.tasks.completion.dataset import sample_from_crop

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bm_fusion_gap.py"


@pytest.fixture(scope="module")
def bm():
    spec = importlib.util.spec_from_file_location("bm_fusion_gap", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _plane(shift: float):
    """16 x 12 x 10 voxels, target surface z = 4, 5 (tsdf = z - 4.5); the input sees x < 10, measured ``shift``
    voxels too high."""
    z = np.arange(10, dtype=np.float32)[None, None, :].repeat(16, 0).repeat(12, 1)
    target = np.clip(z - 4.5, -3, 3).astype(np.float32)
    seen = np.ones(target.shape, bool)
    seen[10:] = False
    measured = np.clip(z - 4.5 - shift, -3, 3).astype(np.float32)
    return sample_from_crop(crop_from_dense(np.where(seen, measured, 0).astype(np.float32), seen, target,
                                            np.ones(target.shape, bool), 0.05, 3.0, scene_id="plane"))


def test_fusion_stats_by_hand(bm):
    exact = bm.fusion_stats(_plane(0.0))
    assert exact["observed_iou"] == 1.0
    assert exact["input_iou"] == pytest.approx(10 / 16)              # the plane at x < 10 of 16 columns
    assert exact["near_share"] == pytest.approx(1 / 16)               # the column x = 10
    shifted = bm.fusion_stats(_plane(0.6))                           # z = 4 leaves the band, z = 6 enters it
    assert shifted["observed_iou"] == pytest.approx(1 / 3)
    assert shifted["near_share"] == exact["near_share"]


def test_drifted_scales_only_the_drift(bm):
    m = bm.drifted(8.0)
    assert m.drift_t == pytest.approx(8 * KINECT.drift_t) and m.drift_r == pytest.approx(8 * KINECT.drift_r)
    assert m.drift_rho == KINECT.drift_rho and m.noise_b == KINECT.noise_b
    assert bm.drifted(0.0).drift_t == 0.0

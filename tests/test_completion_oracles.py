"""The completion ceilings (sparse3d/tasks/completion/oracles.py): the observed oracle makes observed space exact and
adds nothing; the gap-filling oracle adds exactly the target surface within its reach, and its IoU grows with it."""
import numpy as np
import pytest

from data_tools import crop_from_dense
from sparse3d.tasks.completion.dataset import sample_from_crop
from sparse3d.tasks.completion.oracles import near_fill_oracle, observed_oracle
from sparse3d.tasks.completion.predict import score_prediction


def _noisy_plane_with_hole():
    """16 x 12 x 10 voxels, target surface = the layers z = 4, 5 (tsdf = z - 4.5), all known in the target. The input
    sees everything but x >= 10 and measures the plane 0.6 voxels too high at x < 3 (so z = 5 leaves the band there
    and z = 6 enters it: wrong observed voxels)."""
    z = np.arange(10, dtype=np.float32)[None, None, :].repeat(16, 0).repeat(12, 1)
    target = np.clip(z - 4.5, -3, 3).astype(np.float32)
    measured = target.copy()
    measured[:3] = np.clip(z[:3] - 5.1, -3, 3)
    seen = np.ones(target.shape, bool)
    seen[10:] = False
    return sample_from_crop(crop_from_dense(np.where(seen, measured, 0).astype(np.float32), seen, target,
                                            np.ones(target.shape, bool), 0.05, 3.0, scene_id="plane"))


def _scores(sample, pred):
    return score_prediction(sample, pred, with_chamfer=False)[0]


def test_observed_oracle_fixes_observed_space_and_adds_nothing():
    s = _noisy_plane_with_hole()
    r = _scores(s, observed_oracle(s))
    assert r["input"]["iou_observed"] < 1.0                      # the measurement is wrong at x < 3
    assert r["prediction"]["iou_observed"] == 1.0
    assert r["prediction"]["recall_unobserved"] == 0.0           # unobserved space stays empty
    p = observed_oracle(s)
    np.testing.assert_array_equal(p.coords, np.argwhere(p.occ))
    np.testing.assert_array_equal(p.scored, s.input_known)


@pytest.mark.parametrize("reach, columns", [(1.0, [10]), (2.0, [10, 11]), (4.5, [10, 11, 12, 13])])
def test_near_fill_oracle_adds_the_target_surface_within_reach(reach, columns):
    s = _noisy_plane_with_hole()
    p = near_fill_oracle(s, reach)
    seen = s.input_known
    np.testing.assert_array_equal(p.occ[seen], np.abs(s.input_tsdf[seen]) < 1)   # the measurement is kept
    added = np.unique(np.argwhere(p.occ & ~seen)[:, 0]).tolist()
    assert added == columns
    assert p.occ[columns][:, :, 4:6].all() and not p.occ[columns][:, :, :4].any()
    r = _scores(s, p)["prediction"]
    assert r["precision_unobserved"] == 1.0


def test_near_fill_oracle_iou_grows_with_reach_and_checks_it():
    s = _noisy_plane_with_hole()
    ious = [_scores(s, near_fill_oracle(s, d))["prediction"]["iou"] for d in (1, 2, 4, 8)]
    assert ious == sorted(ious) and ious[0] < ious[-1]
    with pytest.raises(ValueError, match="reach must be > 0 voxels, got 0"):
        near_fill_oracle(s, 0)

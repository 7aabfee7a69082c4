"""The classical hole-filling reference: it closes a 2-voxel gap in a plane, invents no surface away from it, keeps
observed voxels as measured and reaches only a few voxels into unobserved space."""
import numpy as np
import pytest

from data_tools import crop_from_dense
from sparse3d.tasks.completion.baselines import diffusion_fill
from sparse3d.tasks.completion.dataset import sample_from_crop
from sparse3d.tasks.completion.predict import input_prediction, score_prediction


def _plane_with_gap():
    """16 x 12 x 10 voxels, surface = the layers z = 4, 5 (tsdf = z - 4.5, clipped to 3), all known in the target;
    the input misses the slab x = 5, 6 (a gap in the plane) and everything at x >= 10."""
    z = np.arange(10, dtype=np.float32)[None, None, :].repeat(16, 0).repeat(12, 1)
    target = np.clip(z - 4.5, -3, 3).astype(np.float32)
    seen = np.ones(target.shape, bool)
    seen[5:7] = False
    seen[10:] = False
    return sample_from_crop(crop_from_dense(np.where(seen, target, 0).astype(np.float32), seen, target,
                                            np.ones(target.shape, bool), 0.05, 3.0, scene_id="gap"))


def test_diffusion_fill_closes_a_gap_and_invents_nothing_far_away():
    s = _plane_with_gap()
    p = diffusion_fill(s, sigma=1.0, min_weight=0.05, band=1.0)
    assert p.occ[5:7, :, 4:6].all()                  # the gap in the plane is closed
    assert not p.occ[5:7, :, :3].any() and not p.occ[5:7, :, 7:].any()  # nothing above or below it
    seen = s.input_known
    np.testing.assert_array_equal(p.tsdf[seen], s.input_tsdf[seen])      # observed voxels as measured
    np.testing.assert_array_equal(p.occ[seen], np.abs(s.input_tsdf[seen]) < 1)
    assert p.scored[10].all() and not p.scored[13:].any()  # reach: weight ~0.3 next to x = 9, ~2e-4 at 4 voxels
    assert p.occ[10, :, 4:6].all() and not p.occ[13:].any()
    np.testing.assert_array_equal(p.coords, np.argwhere(p.occ))
    base, filled = score_prediction(s, input_prediction(s), with_chamfer=False)[0], \
        score_prediction(s, p, with_chamfer=False)[0]
    assert filled["prediction"]["iou"] > base["prediction"]["iou"]
    assert filled["prediction"]["precision"] == 1.0


@pytest.mark.parametrize("kw, msg", [({"sigma": 0.0}, "sigma must be > 0"), ({"min_weight": 1.0}, "min_weight must be in"),
                                     ({"band": -1.0}, "band must be > 0")])
def test_diffusion_fill_rejects_bad_settings(kw, msg):
    with pytest.raises(ValueError, match=msg):
        diffusion_fill(_plane_with_gap(), **kw)

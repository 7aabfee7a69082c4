"""Gravity alignment of frame sources (data_tools.up_align)."""
import numpy as np
import pytest

from data_tools.up_align import UpAligned, mean_camera_up, rotation_to_z


def _rot(axis, deg):
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    return {"x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]), "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


@pytest.mark.parametrize("u", [[0, -1, 0], [0, 0, 1], [0, 0, -1], [0.3, -0.9, 0.2], [1, 0, 0]])
def test_rotation_to_z_is_a_rotation_that_maps_u_to_z(u):
    u = np.asarray(u, float) / np.linalg.norm(u)
    R = rotation_to_z(u)
    np.testing.assert_allclose(R @ u, [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0)


class _Frames:
    """Upright cameras (image rows down = -z world) looking around, in a world tilted by ``tilt``."""

    def __init__(self, tilt):
        self.intrinsic = np.eye(3)
        base = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], float)  # camera x = world x, camera y = -z, looks +y
        self.poses = []
        for yaw in range(0, 360, 30):
            p = np.eye(4)
            p[:3, :3] = tilt @ _rot("z", yaw) @ base
            p[:3, 3] = tilt @ np.array([1.0, 2.0, 1.5])
            self.poses.append(p)

    def __len__(self):
        return len(self.poses)

    def frame(self, k, with_color=True):
        return np.ones((2, 2), np.float32), None, self.poses[k]


def test_up_aligned_frames_have_z_up_again():
    tilt = _rot("x", 90) @ _rot("y", 10)  # a 7-Scenes-like world whose up is (almost) -y
    f = _Frames(tilt)
    assert abs(mean_camera_up(np.stack(f.poses))[2]) < 0.2
    a = UpAligned(f)
    ups = np.stack([-a.frame(k)[2][:3, 1] for k in range(len(a))])
    np.testing.assert_allclose(ups, np.tile([0, 0, 1.0], (len(a), 1)), atol=1e-9)
    assert np.all(a.frame(0)[2][3] == [0, 0, 0, 1])


def test_mean_camera_up_rejects_bad_poses():
    with pytest.raises(ValueError, match="poses: expected"):
        mean_camera_up(np.zeros((0, 4, 4)))
    p = np.tile(np.eye(4), (2, 1, 1))
    p[1, :3, 1] *= -1
    with pytest.raises(ValueError, match="cancel out"):
        mean_camera_up(p)

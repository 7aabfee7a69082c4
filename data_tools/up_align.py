"""Gravity alignment of a frame source whose world frame is not z-up (7-Scenes, many RGB-D folders).

Completion models here are trained on z-up rooms (ScanNet's convention) and augmented only by
rotations about z, so a scan whose world "up" is another axis must be rotated first. Cameras are
held roughly upright, so the mean of the cameras' up direction (the -y axis of each camera in the
world; image rows grow downwards) estimates the world's up; :class:`UpAligned` rotates the world
so that it becomes +z (the smallest such rotation).
"""
from __future__ import annotations

import numpy as np

from .frames import Frame, FrameSource


def mean_camera_up(poses: np.ndarray) -> np.ndarray:
    """Unit vector [3]: mean up direction (-y camera axis) of camera-to-world poses [N, 4, 4]."""
    poses = np.asarray(poses, np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4) or len(poses) == 0:
        raise ValueError(f"poses: expected [N, 4, 4] with N >= 1, got {list(poses.shape)}")
    up = (-poses[:, :3, 1]).sum(0)
    norm = np.linalg.norm(up)
    if not np.isfinite(norm) or norm < 1e-6:
        raise ValueError("poses: the cameras' up directions cancel out; cannot estimate the world's up")
    return up / norm


def rotation_to_z(u: np.ndarray) -> np.ndarray:
    """Rotation [3, 3] taking unit vector ``u`` [3] to +z by the smallest angle."""
    u = np.asarray(u, np.float64) / np.linalg.norm(u)
    z = np.array([0.0, 0.0, 1.0])
    c = float(u @ z)
    if c < -1 + 1e-9:  # u = -z: half a turn about x
        return np.diag([1.0, -1.0, -1.0])
    v = np.cross(u, z)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1 + c)


class UpAligned:
    """A `FrameSource` seen in a world rotated so the cameras' mean up is +z. ``rotation`` float64 [4, 4]
    is applied to every camera-to-world pose (aligned pose = rotation @ source pose); ``ids``, ``root`` /
    ``sens_path`` and ``close`` are the source's."""

    def __init__(self, frames: FrameSource) -> None:
        self.frames = frames
        self.intrinsic = frames.intrinsic
        poses = [frames.frame(k, with_color=False)[2] for k in range(len(frames))]
        poses = np.stack([p for p in poses if np.all(np.isfinite(p))]) if poses else np.zeros((0, 4, 4))
        self.rotation = np.eye(4)
        self.rotation[:3, :3] = rotation_to_z(mean_camera_up(poses))
        for name in ("ids", "root", "sens_path"):
            if hasattr(frames, name):
                setattr(self, name, getattr(frames, name))

    def __len__(self) -> int:
        return len(self.frames)

    def frame(self, k: int, with_color: bool = True) -> Frame:
        depth, color, pose = self.frames.frame(k, with_color=with_color)
        return depth, color, self.rotation @ pose

    def close(self) -> None:
        close = getattr(self.frames, "close", None)
        if close is not None:
            close()

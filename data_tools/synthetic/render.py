"""CPU RGB-D rendering of a triangle mesh with Open3D's RaycastingScene, and camera trajectories.

Pinhole convention (ScanNet / OpenCV): camera x right, y down, z forward; pixel (u, v) looks
along K^-1 [u, v, 1] (pixel centres at integer coordinates, as in ScanNet's intrinsics).
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import open3d as o3d

from .appearance import FrameLight, ObjectTextures


def look_at_pose(position: np.ndarray, yaw: float, pitch: float) -> np.ndarray:
    """float64 [4,4] camera-to-world for a camera at `position` [3] looking along (yaw, pitch), +Z up."""
    f = np.array([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), np.sin(pitch)])
    right = np.cross(f, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(f, right)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, down, f, position
    return pose


def room_trajectory(size: Tuple[float, float, float], n_frames: int, seed: int) -> np.ndarray:
    """float64 [n_frames,4,4] camera-to-world poses: a loop inside a W x D x H room, looking around.

    The camera walks an ellipse around the room centre at ~1.4 m height, yawing so that it
    sees walls, furniture and the room centre; small seeded jitter.
    """
    if n_frames < 1:
        raise ValueError(f"n_frames: expected >= 1, got {n_frames}")
    rng = np.random.default_rng(seed)
    W, D, _ = size
    phase = rng.uniform(0, 2 * np.pi)
    out = np.zeros((n_frames, 4, 4))
    for i in range(n_frames):
        th = phase + 2 * np.pi * i / n_frames
        pos = np.array([W / 2 + 0.3 * W * np.cos(th), D / 2 + 0.3 * D * np.sin(th), 1.4 + 0.15 * np.sin(3 * th)])
        pos[:2] += rng.normal(0, 0.02, 2)
        yaw = th + np.pi / 2 + 0.9 * np.sin(2 * th) + rng.normal(0, 0.02)
        pitch = -0.45 + 0.15 * np.sin(5 * th)
        out[i] = look_at_pose(pos, yaw, pitch)
    return out


class MeshRenderer:
    """Renders depth (metres), colour and per-pixel triangle ids of a mesh.

    vertices float [N,3]; faces int [M,3]; face_colors uint8 [M,3]; optional per-pixel solid textures:
    textures (one per object) with face_object int [M] (the object of each face). Textures and lighting
    change colour only: depth and triangle ids do not depend on them.
    """

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, face_colors: np.ndarray,
                 textures: Optional[ObjectTextures] = None, face_object: Optional[np.ndarray] = None):
        self.scene = o3d.t.geometry.RaycastingScene()
        self.scene.add_triangles(o3d.core.Tensor(np.asarray(vertices, np.float32)),
                                 o3d.core.Tensor(np.asarray(faces, np.uint32)))
        self.face_colors = np.asarray(face_colors, np.uint8)
        if (textures is None) != (face_object is None):
            raise ValueError("textures and face_object must be given together (or neither)")
        if face_object is not None and len(face_object) != len(faces):
            raise ValueError(f"face_object: expected one object per face ({len(faces)}), got {len(face_object)}")
        self.textures = textures
        self.face_object = None if face_object is None else np.asarray(face_object, np.int64)
        self._rays_key = None

    def _camera_rays(self, K: np.ndarray, width: int, height: int) -> Tuple[np.ndarray, np.ndarray]:
        """(directions float64 [H*W,3] with unit z in the camera frame, 1 / their norms float32 [H*W]), cached."""
        key = (K.tobytes(), width, height)
        if self._rays_key != key:
            u, v = np.meshgrid(np.arange(width), np.arange(height))
            d = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u, float)], -1).reshape(-1, 3)
            self._rays = (d, (1.0 / np.linalg.norm(d, axis=1)).astype(np.float32))
            self._rays_key = key
        return self._rays

    def render(self, intrinsic: np.ndarray, camera_to_world: np.ndarray, width: int, height: int,
               depth_max: float = 10.0, shade: bool = True, light: Optional[FrameLight] = None
               ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(depth float32 [H,W] metres along the optical axis (0 = no hit), color uint8 [H,W,3],
        triangle id int64 [H,W] (-1 = no hit)). light: the frame's lighting (needs shade=True); None = a
        head light (0.55 + 0.45 |cos|)."""
        if light is not None and not shade:
            raise ValueError("light needs shade=True (an unshaded render has no lighting)")
        K = np.asarray(intrinsic, np.float64)[:3, :3]
        d_cam, inv_norm = self._camera_rays(K, width, height)
        R, t = camera_to_world[:3, :3], camera_to_world[:3, 3]
        rays = np.empty((len(d_cam), 6), np.float32)
        rays[:, :3] = t
        rays[:, 3:] = d_cam @ R.T
        ans = self.scene.cast_rays(o3d.core.Tensor(rays))
        z = ans["t_hit"].numpy()  # unnormalised directions with unit z: t_hit is the z-depth
        tri = ans["primitive_ids"].numpy().astype(np.int64)
        hit = np.isfinite(z) & (z < depth_max)
        tri[~hit] = -1
        depth = np.where(hit, z, 0).astype(np.float32).reshape(height, width)
        color = np.zeros((height * width, 3), np.uint8)
        idx = np.flatnonzero(hit)
        if len(idx):
            c = self.face_colors[tri[idx]].astype(np.float32)
            if self.textures is not None:
                pts = rays[idx, :3].astype(np.float64) + z[idx, None].astype(np.float64) * rays[idx, 3:]
                c = self.textures.apply(c, pts, self.face_object[tri[idx]])
            if shade:
                n = ans["primitive_normals"].numpy()[idx]
                cos = np.abs(np.einsum("ij,ij->i", n, rays[idx, 3:])) * inv_norm[idx]
                if light is None:
                    c *= (0.55 + 0.45 * cos)[:, None]
                else:
                    c *= light.shade(n, cos)
            color[idx] = np.clip(c, 0, 255).astype(np.uint8)
        return depth, color.reshape(height, width, 3), tri.reshape(height, width)

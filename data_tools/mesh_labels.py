"""Per-voxel semantic labels from a labelled mesh (closest triangle, Open3D RaycastingScene)."""
from __future__ import annotations

import numpy as np
import open3d as o3d


class MeshLabeler:
    """Closest-triangle labels. vertices float [V,3]; faces int [F,3]; vertex_labels int [V]
    (a triangle takes the label of the majority of its vertices, ties -> first vertex)."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, vertex_labels: np.ndarray):
        vertices, faces, vl = np.asarray(vertices), np.asarray(faces), np.asarray(vertex_labels)
        if vl.shape != (len(vertices),):
            raise ValueError(f"vertex_labels: expected [{len(vertices)}], got {list(vl.shape)}")
        if len(faces) == 0:
            raise ValueError("faces: expected at least one triangle, got 0")
        self.scene = o3d.t.geometry.RaycastingScene()
        self.scene.add_triangles(o3d.core.Tensor(vertices.astype(np.float32)), o3d.core.Tensor(faces.astype(np.uint32)))
        l = vl[faces]
        tri = l[:, 0].copy()
        maj = (l[:, 1] == l[:, 2]) & (l[:, 1] != l[:, 0])
        tri[maj] = l[maj, 1]
        self.triangle_labels = tri

    def closest(self, points: np.ndarray):
        """(labels [N], distance float32 [N] metres) of the closest triangle to points float [N,3]."""
        pts = np.asarray(points, np.float32).reshape(-1, 3)
        if len(pts) == 0:
            return self.triangle_labels[:0], np.zeros(0, np.float32)
        ans = self.scene.compute_closest_points(o3d.core.Tensor(pts))
        prim = ans["primitive_ids"].numpy().astype(np.int64)
        d = np.linalg.norm(ans["points"].numpy() - pts, axis=1).astype(np.float32)
        return self.triangle_labels[prim], d

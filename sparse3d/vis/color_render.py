"""Panels whose voxels or vertices carry their own RGB colour (fused voxel colour, colour lifted from the
frames, an error colouring) side by side: a headless PNG with each panel's title above it.

    p = voxel_color_panel("voxel colour", coords, rgb)                   # coords int [N, 3], rgb uint8 [N, 3]
    render_colors([p, voxel_color_panel("lifted, 3 views", coords, lifted)], "colour.png")

Same camera, shading and layout as the labelled pictures (:mod:`sparse3d.vis.label_render`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from sparse3d.vis.label_render import _annotate, place, raycast_vertex_colors
from sparse3d.vis.labels import check_coords, voxel_mesh
from sparse3d.vis.render import _font, _strip_height, write_png


@dataclass(frozen=True)
class ColorPanel:
    """One panel: a mesh whose vertices carry colours. verts float [V, 3], faces int [F, 3], colors uint8 [V, 3]."""
    title: str
    verts: np.ndarray
    faces: np.ndarray
    colors: np.ndarray


def check_colors(colors, n: int, name: str = "colors") -> np.ndarray:
    """``colors`` as uint8 [n, 3]: integers 0..255 (any int dtype) or floats in [0, 1]; else a ValueError naming it."""
    c = np.asarray(colors)
    if c.ndim != 2 or c.shape != (n, 3):
        raise ValueError(f"{name} must be [{n}, 3] (one RGB per voxel or vertex), got shape {list(c.shape)}")
    if np.issubdtype(c.dtype, np.floating):
        if not (np.isfinite(c).all() and c.min(initial=0) >= 0 and c.max(initial=0) <= 1):
            raise ValueError(f"{name}: float colours must be finite and in [0, 1]")
        return np.round(c * 255).astype(np.uint8)
    if not np.issubdtype(c.dtype, np.integer):
        raise ValueError(f"{name} must hold integers 0..255 or floats in [0, 1], got dtype {c.dtype}")
    if len(c) and (c.min() < 0 or c.max() > 255):
        raise ValueError(f"{name}: integer colours must be in 0..255, got {c.min()}..{c.max()}")
    return c.astype(np.uint8)


def voxel_color_panel(title: str, coords, colors, voxel_size: float = 1.0,
                      origin: Sequence[float] = (0.0, 0.0, 0.0)) -> ColorPanel:
    """A panel of voxel cubes (coords int [N, 3]) coloured ``colors`` [N, 3] (see :func:`check_colors`)."""
    c = check_coords(coords)
    rgb = check_colors(colors, len(c))
    v, f, row = voxel_mesh(c, np.arange(len(c)), voxel_size, origin)  # each face vertex carries its voxel's row
    return ColorPanel(title, v, f, rgb[row])


def render_colors(panels: Sequence[ColorPanel], png: str, width: int = 1200, height: int = 500,
                  elevation_deg: float = 60.0, azimuth_deg: float = 20.0, clip_top: float = 0.0,
                  annotate: bool = True) -> str:
    """Render ``panels`` side by side to a ``width`` x ``height`` PNG (atomic write) with each panel's title
    above it (``annotate``, pictures >= 100 pixels high); returns the path."""
    for name, v in (("width", width), ("height", height)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int (pixels), got {v!r}")
    for p in panels:
        check_colors(p.colors, len(p.verts), f"colors of panel {p.title!r}")
    placed = place(panels, clip_top)
    strip = _strip_height(height) if annotate else 0
    if height - strip < 16:
        raise ValueError(f"height {height} leaves no room for the picture under the title strip: pass a larger height")
    img, ids = raycast_vertex_colors(placed, [p.colors for p in placed], width, height - strip, elevation_deg,
                                     azimuth_deg)
    if strip:
        font = _font(max(9, int(strip * 0.7)))
        img = _annotate(img, ids, [p.title for p in placed], [len(p.faces) for p in placed], [], strip, font)
    write_png(png, img)
    return png


def view_colors(panels: Sequence[ColorPanel], title: str = "sparse3d", width: int = 1400, height: int = 700) -> None:
    """Open an Open3D window with the coloured panels side by side (keys 1-9 toggle a panel, A shows all;
    needs a display)."""
    from sparse3d.vis.render import _o3d
    from sparse3d.vis.viewer import run_window
    o3d = _o3d()
    geoms = []
    for p in place(panels):
        m = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(np.asarray(p.verts, np.float64)),
                                      o3d.utility.Vector3iVector(np.asarray(p.faces, np.int32)))
        m.compute_vertex_normals()
        m.vertex_colors = o3d.utility.Vector3dVector(check_colors(p.colors, len(p.verts)) / 255.0)
        geoms.append(m)
    run_window(geoms, title, width, height)

"""Headless rendering (Open3D OffscreenRenderer; on a CPU machine Mesa's software drivers do it).

    render_side_by_side([("input", verts, faces), ("prediction", ...), ("target", ...)], "out.png")

Meshes are placed left to right along x with a gap, shaded, coloured per panel and by height,
and seen from a fixed oblique camera, moved back until it frames them all. Each panel gets its
title (with its colour swatch) above it, and a key below says what the shading means.
"""
from __future__ import annotations

import os
from typing import List, Optional, Sequence, Tuple

import numpy as np

Panel = Tuple[str, np.ndarray, np.ndarray]  # (title, verts float [V, 3], faces int [F, 3])

PALETTE = {"input": (0.55, 0.65, 0.85), "prediction": (0.85, 0.6, 0.4), "target": (0.55, 0.8, 0.55)}
DEFAULT_COLOR = (0.7, 0.7, 0.7)  # panels whose title is not in PALETTE
FOV_DEG = 50.0  # horizontal field of view of the camera


def _o3d():
    try:
        import open3d as o3d
    except ImportError as e:  # pragma: no cover - open3d is a dependency
        raise ImportError("open3d is required for sparse3d.vis (pip install open3d==0.20.0)") from e
    return o3d


def to_o3d_mesh(verts: np.ndarray, faces: np.ndarray, color: Sequence[float] = (0.7, 0.7, 0.7)):
    """Open3D TriangleMesh with normals and height-shaded vertex colours."""
    o3d = _o3d()
    m = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(np.asarray(verts, np.float64)),
                                  o3d.utility.Vector3iVector(np.asarray(faces, np.int32)))
    m.compute_vertex_normals()
    v = np.asarray(verts, np.float64)
    if len(v):
        z = v[:, 2]
        t = (z - z.min()) / max(float(np.ptp(z)), 1e-6)
        col = np.asarray(color)[None] * (0.65 + 0.35 * t[:, None])
        m.vertex_colors = o3d.utility.Vector3dVector(np.clip(col, 0, 1))
    return m


def layout(panels: Sequence[Panel], gap: float = 0.15) -> List[Tuple[str, np.ndarray, np.ndarray]]:
    """Shift each panel along +x so that they sit side by side (common minimum corner)."""
    allv = [p[1] for p in panels if len(p[1])]
    if not allv:
        return list(panels)
    lo = np.min([v.min(0) for v in allv], 0)
    width = max(float(np.ptp(v[:, 0])) for v in allv)
    out = []
    for i, (title, v, f) in enumerate(panels):
        shift = np.array([i * width * (1 + gap), 0, 0]) - np.array([lo[0], lo[1], lo[2]])
        out.append((title, v + shift if len(v) else v, f))
    return out


def _camera(pts: np.ndarray, elevation_deg: float, azimuth_deg: float):
    lo, hi = pts.min(0), pts.max(0)
    center = (lo + hi) / 2
    ext = float(np.max(hi - lo))
    el, az = np.radians(elevation_deg), np.radians(azimuth_deg)
    direction = np.array([np.sin(az) * np.cos(el), -np.cos(az) * np.cos(el), np.sin(el)])
    return center, center + direction * ext * 1.3


def clip_top_panels(panels: Sequence[Panel], clip_top: float) -> List[Panel]:
    """Drop the triangles whose centroid lies in the top ``clip_top`` fraction of the height of all
    panels together (a scan's ceiling hides the room from above); used by the PNG renderer and the window."""
    if not 0 <= clip_top < 1:
        raise ValueError(f"clip_top must be in [0, 1), got {clip_top}")
    panels = list(panels)
    allv = [v for _, v, f in panels if len(f)]
    if clip_top == 0 or not allv:
        return panels
    zs = np.concatenate([v[:, 2] for v in allv])
    zmax = zs.min() + (1 - clip_top) * np.ptp(zs)
    return [(t, v, f[v[f].mean(1)[:, 2] <= zmax] if len(f) else f) for t, v, f in panels]


def render_side_by_side(panels: Sequence[Panel], png: str, width: int = 1200, height: int = 500,
                        elevation_deg: float = 60.0, azimuth_deg: float = 20.0, clip_top: float = 0.0,
                        renderer: str = "raycast", annotate: bool = True) -> str:
    """Render the meshes of ``panels`` side by side to a ``width`` x ``height`` ``png`` (atomic write);
    returns the path.

    renderer: "raycast" (Open3D RaycastingScene + Lambert shading: fast on any CPU) or "filament"
    (Open3D's OffscreenRenderer; on a CPU-only machine it runs on Mesa's llvmpipe and is slow:
    minutes per image here). clip_top: drop triangles in the top ``clip_top`` fraction of the
    height (a scan's ceiling hides the room from above). annotate: a title strip above the meshes
    (each panel's title and colour) and a key strip below (what the shading means), taken from
    the picture's height.
    """
    if renderer not in ("raycast", "filament"):
        raise ValueError(f"renderer must be 'raycast' or 'filament', got {renderer!r}")
    placed = clip_top_panels(layout(panels), clip_top)
    pts = [v for _, v, f in placed if len(f)]
    p = np.concatenate(pts) if pts else np.array([[0.0, 0, 0], [1.0, 1, 1]])
    center, eye = _camera(p, elevation_deg, azimuth_deg)
    strip = _strip_height(height) if annotate else 0
    body_h = height - 2 * strip
    scene, colors = _scene(placed)
    eye = _fit_eye(scene, width, body_h, center, eye)
    img, ids = _raycast(scene, colors, width, body_h, center, eye)
    if renderer == "filament":
        img = _filament(placed, width, body_h, center, eye)
    if strip:
        img = annotate_panels(img[..., :3], ids, [t for t, _, _ in placed], [len(f) for _, _, f in placed], strip)
    write_png(png, img)
    return png


def _strip_height(height: int) -> int:
    """Pixels of the title strip and of the key strip (0 when the picture is too small for text)."""
    return max(14, round(height * 0.06)) if height >= 100 else 0


def _font(size: int):
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # pragma: no cover - Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def annotate_panels(img: np.ndarray, ids: np.ndarray, titles: Sequence[str], n_faces: Sequence[int],
                    strip: int) -> np.ndarray:
    """``img`` uint8 [H, W, 3] with a white ``strip``-pixel band added above (each panel's title over its
    pixels, after a swatch of its colour; "(empty)" when it has no triangles) and below (the shading key).
    ids: int [H, W], the panel index seen at each pixel (-1: background). Returns uint8 [H + 2 strip, W, 3]."""
    from PIL import Image, ImageDraw
    h, w = img.shape[:2]
    canvas = Image.new("RGB", (w, h + 2 * strip), (255, 255, 255))
    canvas.paste(Image.fromarray(np.ascontiguousarray(img)), (0, strip))
    draw = ImageDraw.Draw(canvas)
    font = _font(max(9, int(strip * 0.7)))
    sw = max(6, int(strip * 0.55))  # swatch side
    for i, title in enumerate(titles):
        cols = np.nonzero((ids == i).any(0))[0]
        cx = float(np.median(cols)) if len(cols) else (i + 0.5) * w / max(len(titles), 1)
        text = title if n_faces[i] else f"{title} (empty)"
        tw = draw.textlength(text, font=font)
        x0 = int(np.clip(cx - (tw + sw + 6) / 2, 0, max(w - tw - sw - 6, 0)))
        y = (strip - sw) // 2
        rgb = tuple(int(255 * c) for c in PALETTE.get(title, DEFAULT_COLOR))
        draw.rectangle([x0, y, x0 + sw, y + sw], fill=rgb, outline=(60, 60, 60))
        draw.text((x0 + sw + 6, strip // 2), text, fill=(0, 0, 0), font=font, anchor="lm")
    # key: panel colours darken towards the floor (and away from the light)
    y0, x = h + strip, 4
    bar = max(20, strip * 3)
    for text, ramp in (("height: low", False), ("", True), ("high", False),
                       ("  (shading also follows the light)", False)):
        if ramp:
            for k in range(bar):
                g = int(255 * (0.35 + 0.6 * k / max(bar - 1, 1)))
                draw.line([x + k, y0 + strip // 4, x + k, y0 + 3 * strip // 4], fill=(g, g, g))
            x += bar + 4
            continue
        tw = int(draw.textlength(text, font=font))
        if x + tw > w:
            break
        draw.text((x, y0 + strip // 2), text, fill=(0, 0, 0), font=font, anchor="lm")
        x += tw + 4
    return np.asarray(canvas)


def _scene(placed):
    """Open3D RaycastingScene of the panels' meshes, and geometry id -> (panel index, colour, verts [V, 3])."""
    o3d = _o3d()
    scene = o3d.t.geometry.RaycastingScene()
    colors = {}
    for i, (title, v, f) in enumerate(placed):
        if len(f) == 0:
            continue
        m = o3d.t.geometry.TriangleMesh()
        m.vertex.positions = o3d.core.Tensor(np.asarray(v, np.float32))
        m.triangle.indices = o3d.core.Tensor(np.asarray(f, np.int32))
        gid = scene.add_triangles(m)
        colors[gid] = (i, np.asarray(PALETTE.get(title, DEFAULT_COLOR)), np.asarray(v))
    return scene, colors


def _cast(scene, width: int, height: int, center: np.ndarray, eye: np.ndarray):
    rays = scene.create_rays_pinhole(fov_deg=FOV_DEG, center=center.tolist(), eye=eye.tolist(), up=[0, 0, 1],
                                     width_px=width, height_px=height)
    return rays, scene.cast_rays(rays)


def _fit_eye(scene, width: int, height: int, center: np.ndarray, eye: np.ndarray, tries: int = 16) -> np.ndarray:
    """``eye`` moved back from ``center`` (x1.08 a step) until no mesh touches the picture's border,
    judged on a small cast of the same aspect."""
    w = 96
    h = max(8, round(w * height / max(width, 1)))
    for _ in range(tries):
        hit = np.isfinite(_cast(scene, w, h, center, eye)[1]["t_hit"].numpy())
        if not (hit[0].any() or hit[-1].any() or hit[:, 0].any() or hit[:, -1].any()):
            break
        eye = center + (eye - center) * 1.08
    return eye


def _raycast(scene, colors, width: int, height: int, center: np.ndarray,
             eye: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(image uint8 [H, W, 3], panel index int [H, W], -1 where no mesh is hit)."""
    rays, ans = _cast(scene, width, height, center, eye)
    hit = np.isfinite(ans["t_hit"].numpy())
    n = ans["primitive_normals"].numpy()
    gids = ans["geometry_ids"].numpy()
    d = rays.numpy()[..., 3:]
    d = d / np.linalg.norm(d, axis=-1, keepdims=True)
    light = np.array([0.3, -0.4, 0.85])
    light /= np.linalg.norm(light)
    lam = np.abs((n * light).sum(-1)) * 0.6 + np.abs((n * d).sum(-1)) * 0.3 + 0.15
    img = np.ones((height, width, 3))
    ids = np.full((height, width), -1, np.int64)
    t = ans["t_hit"].numpy()
    pos = rays.numpy()[..., :3] + d * np.where(hit, t * np.linalg.norm(rays.numpy()[..., 3:], axis=-1), 0)[..., None]
    for gid, (i, col, v) in colors.items():
        sel = hit & (gids == gid)
        z = pos[sel][:, 2]
        shade = 0.75 + 0.25 * (z - v[:, 2].min()) / max(float(np.ptp(v[:, 2])), 1e-6)
        img[sel] = np.clip(col[None] * (lam[sel] * shade)[:, None], 0, 1)
        ids[sel] = i
    # RaycastingScene rows/cols run opposite to an image
    return (img[::-1, ::-1] * 255).astype(np.uint8), ids[::-1, ::-1]


def _filament(placed, width: int, height: int, center: np.ndarray, eye: np.ndarray) -> np.ndarray:
    o3d = _o3d()
    rendering = o3d.visualization.rendering
    r = rendering.OffscreenRenderer(width, height)
    try:
        r.scene.set_background([1, 1, 1, 1])
        mat = rendering.MaterialRecord()
        mat.shader = "defaultLit"
        for i, (title, v, f) in enumerate(placed):
            if len(f):
                r.scene.add_geometry(f"{i}_{title}", to_o3d_mesh(v, f, PALETTE.get(title, DEFAULT_COLOR)), mat)
        # the raycast camera's FOV_DEG is horizontal, filament's is vertical: the same view, so titles fit
        vfov = 2 * np.degrees(np.arctan(np.tan(np.radians(FOV_DEG) / 2) * height / width))
        r.setup_camera(float(vfov), center.tolist(), eye.tolist(), [0.0, 0.0, 1.0])
        return np.asarray(r.render_to_image())
    finally:
        del r


def write_png(path: str, img: np.ndarray) -> None:
    """uint8 [H, W, 3|4] -> PNG, atomically."""
    from PIL import Image

    from sparse3d.utils.atomic_io import atomic_open
    with atomic_open(path, "wb") as f:
        Image.fromarray(np.ascontiguousarray(img)).save(f, format="PNG")


def read_mesh(path: str) -> Tuple[np.ndarray, np.ndarray]:
    """(verts [V, 3], faces [F, 3]) of a PLY/OBJ file; raises naming the file if unreadable."""
    o3d = _o3d()
    if not os.path.isfile(path):
        raise FileNotFoundError(f"mesh file {path!r} does not exist")
    m = o3d.io.read_triangle_mesh(path)
    return np.asarray(m.vertices), np.asarray(m.triangles)


def nonblank_fraction(img: np.ndarray, background: Optional[Sequence[int]] = None) -> float:
    """Fraction of pixels that differ from the background colour (default: the corner pixel)."""
    rgb = np.asarray(img)[..., :3].astype(np.int16)
    bg = rgb[0, 0] if background is None else np.asarray(background[:3], np.int16)
    return float((np.abs(rgb - bg).sum(-1) > 12).mean())

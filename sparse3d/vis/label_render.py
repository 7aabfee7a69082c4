"""Labelled panels (voxels or mesh vertices coloured by class) side by side: a headless PNG with a
legend of the classes present, or an Open3D window with the legend printed.

    pal = Palette(colors, names)
    render_labels([voxel_panel("prediction", c, pred, pal), voxel_panel("ground truth", c, gt, pal)], pal, "a.png")

The PNG: each panel's title above it, the meshes in the middle (the same camera as
:func:`sparse3d.vis.render.render_side_by_side`: Open3D RaycastingScene, light shading only so the
palette colours stay recognisable), and below, one swatch + name per class present, wrapped into rows.
"""
from __future__ import annotations

from dataclasses import replace
from typing import List, Sequence, Tuple, TypeVar

import numpy as np

from sparse3d.vis.labels import LabelPanel, Palette, check_labels, legend, legend_text
from sparse3d.vis.render import (_camera, _cast, _font, _o3d, _fit_eye, _strip_height, clip_top_panels, layout,
                                 write_png)

SHADE_MIN = 0.55  # darkest shading factor of a face (facing away from light and eye); 1.0 = the palette colour
P = TypeVar("P")  # a panel dataclass with title, verts, faces (LabelPanel, ColorPanel)


def place(panels: Sequence[P], clip_top: float = 0.0) -> List[P]:
    """The panels (dataclasses with ``title``, ``verts``, ``faces``) shifted side by side along x
    (:func:`layout`) with the top ``clip_top`` of the height cut; their other fields are kept."""
    placed = clip_top_panels(layout([(p.title, np.asarray(p.verts, np.float64), np.asarray(p.faces))
                                     for p in panels]), clip_top)
    return [replace(p, title=t, verts=v, faces=f) for (t, v, f), p in zip(placed, panels)]


def _raycast_labels(placed: Sequence[LabelPanel], palette: Palette, width: int, height: int,
                    elevation_deg: float, azimuth_deg: float) -> Tuple[np.ndarray, np.ndarray]:
    """(image uint8 [H, W, 3], panel index int [H, W], -1 where nothing is hit). A pixel takes the colour
    of the label of the hit triangle's vertex nearest to the hit (barycentric weights)."""
    lut = palette.lookup().astype(np.float64)
    return raycast_vertex_colors(placed, [lut[np.asarray(p.labels)] for p in placed], width, height,
                                 elevation_deg, azimuth_deg)


def raycast_vertex_colors(placed: Sequence[P], colors: Sequence[np.ndarray], width: int, height: int,
                          elevation_deg: float, azimuth_deg: float) -> Tuple[np.ndarray, np.ndarray]:
    """(image uint8 [H, W, 3], panel index int [H, W], -1 where nothing is hit) of the placed panels, panel i's
    vertices coloured ``colors[i]`` (float [V_i, 3], 0..255): a pixel takes the colour of the hit triangle's
    vertex nearest to the hit (barycentric weights), lightly shaded."""
    o3d = _o3d()
    scene = o3d.t.geometry.RaycastingScene()
    gid_panel = {}
    for i, p in enumerate(placed):
        if len(p.faces):
            m = o3d.t.geometry.TriangleMesh()
            m.vertex.positions = o3d.core.Tensor(np.asarray(p.verts, np.float32))
            m.triangle.indices = o3d.core.Tensor(np.asarray(p.faces, np.int32))
            gid_panel[scene.add_triangles(m)] = i
    pts = [p.verts for p in placed if len(p.faces)]
    allp = np.concatenate(pts) if pts else np.array([[0.0, 0, 0], [1.0, 1, 1]])
    center, eye = _camera(allp, elevation_deg, azimuth_deg)
    eye = _fit_eye(scene, width, height, center, eye)
    rays, ans = _cast(scene, width, height, center, eye)
    hit = np.isfinite(ans["t_hit"].numpy())
    n = ans["primitive_normals"].numpy()
    d = rays.numpy()[..., 3:]
    d = d / np.linalg.norm(d, axis=-1, keepdims=True)
    light = np.array([0.3, -0.4, 0.85])
    light /= np.linalg.norm(light)
    lam = 0.6 * np.abs((n * light).sum(-1)) + 0.4 * np.abs((n * d).sum(-1))
    shade = SHADE_MIN + (1 - SHADE_MIN) * np.clip(lam, 0, 1)
    gids, prims, uv = ans["geometry_ids"].numpy(), ans["primitive_ids"].numpy(), ans["primitive_uvs"].numpy()
    bary = np.stack([1 - uv[..., 0] - uv[..., 1], uv[..., 0], uv[..., 1]], -1)
    corner = bary.argmax(-1)
    img = np.full((height, width, 3), 255.0)
    ids = np.full((height, width), -1, np.int64)
    for gid, i in gid_panel.items():
        sel = hit & (gids == gid)
        p = placed[i]
        vert = np.asarray(p.faces)[prims[sel].astype(np.int64), corner[sel]]
        img[sel] = np.asarray(colors[i], np.float64)[vert] * shade[sel][:, None]
        ids[sel] = i
    # RaycastingScene rows/cols run opposite to an image
    return np.clip(img[::-1, ::-1], 0, 255).astype(np.uint8), ids[::-1, ::-1]


def _legend_rows(items: Sequence[Tuple[str, Tuple[int, int, int]]], width: int, strip: int, font) -> List[list]:
    """The legend items (name, rgb) wrapped into rows of [(x, name, rgb)] that fit ``width`` pixels."""
    from PIL import Image, ImageDraw
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    sw = max(6, int(strip * 0.55))
    rows, row, x = [], [], 4
    for name, rgb in items:
        w = sw + 4 + int(draw.textlength(name, font=font)) + 14
        if row and x + w > width:
            rows.append(row)
            row, x = [], 4
        row.append((x, name, rgb))
        x += w
    if row:
        rows.append(row)
    return rows


def render_labels(panels: Sequence[LabelPanel], palette: Palette, png: str, width: int = 1200, height: int = 600,
                  elevation_deg: float = 60.0, azimuth_deg: float = 20.0, clip_top: float = 0.0,
                  annotate: bool = True) -> str:
    """Render labelled ``panels`` side by side to a ``width`` x ``height`` PNG (atomic write); returns the path.

    Each panel's labels are checked against ``palette`` (class index 0..K-1 or ignore; one per vertex).
    annotate (pictures >= 100 pixels high): each panel's title above it and the legend below: a
    swatch of exactly the palette colour and the name of every class present in any panel (then
    ``palette.ignore_name`` when ignore-labelled geometry is shown), wrapped into rows.
    """
    for name, v in (("width", width), ("height", height)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int (pixels), got {v!r}")
    for p in panels:
        check_labels(p.labels, palette, f"labels of panel {p.title!r}", n=len(p.verts), of="vertex")
    placed = place(panels, clip_top)
    strip = _strip_height(height) if annotate else 0
    font = _font(max(9, int(strip * 0.7))) if strip else None
    items = [(name, rgb) for _, name, rgb, counts in legend(palette, placed) if any(counts)]
    rows = _legend_rows(items, width, strip, font) if strip else []
    body_h = height - strip * (1 + len(rows))
    if body_h < max(16, height // 3):
        raise ValueError(f"height {height} leaves no room for the pictures under the title and the "
                         f"{len(rows)} legend rows ({strip} pixels each; the pictures need a third of the "
                         f"height): pass a larger height or width")
    img, ids = _raycast_labels(placed, palette, width, body_h, elevation_deg, azimuth_deg)
    if strip:
        img = _annotate(img, ids, [p.title for p in placed], [len(p.faces) for p in placed], rows, strip, font)
    write_png(png, img)
    return png


def _annotate(img: np.ndarray, ids: np.ndarray, titles: Sequence[str], n_faces: Sequence[int], rows: List[list],
              strip: int, font) -> np.ndarray:
    """``img`` [H, W, 3] with a title strip above (each title centred over its panel's pixels) and the
    legend rows below (swatch in the exact palette colour, then the name)."""
    from PIL import Image, ImageDraw
    h, w = img.shape[:2]
    canvas = Image.new("RGB", (w, h + strip * (1 + len(rows))), (255, 255, 255))
    canvas.paste(Image.fromarray(np.ascontiguousarray(img)), (0, strip))
    draw = ImageDraw.Draw(canvas)
    for i, title in enumerate(titles):
        cols = np.nonzero((ids == i).any(0))[0]
        cx = float(np.median(cols)) if len(cols) else (i + 0.5) * w / max(len(titles), 1)
        text = title if n_faces[i] else f"{title} (empty)"
        tw = draw.textlength(text, font=font)
        x0 = int(np.clip(cx - tw / 2, 0, max(w - tw, 0)))
        draw.text((x0, strip // 2), text, fill=(0, 0, 0), font=font, anchor="lm")
    sw = max(6, int(strip * 0.55))
    for r, row in enumerate(rows):
        y0 = h + strip * (1 + r)
        for x, name, rgb in row:
            ys = y0 + (strip - sw) // 2
            draw.rectangle([x, ys, x + sw, ys + sw], fill=tuple(rgb), outline=tuple(rgb))
            draw.text((x + sw + 4, y0 + strip // 2), name, fill=(0, 0, 0), font=font, anchor="lm")
    return np.asarray(canvas)


def view_labels(panels: Sequence[LabelPanel], palette: Palette, title: str = "sparse3d segmentation",
                width: int = 1400, height: int = 700, clip_top: float = 0.0) -> str:
    """Open an Open3D window with the labelled panels side by side (keys 1-9 toggle a panel, A shows all;
    needs a display) after printing the legend (:func:`legend_text`), which is also returned."""
    from sparse3d.vis.viewer import run_window
    for p in panels:
        check_labels(p.labels, palette, f"labels of panel {p.title!r}", n=len(p.verts), of="vertex")
    placed = place(panels, clip_top)
    text = legend_text(palette, placed)
    print(text)
    o3d = _o3d()
    lut = palette.lookup().astype(np.float64) / 255
    geoms = []
    for p in placed:
        m = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(np.asarray(p.verts, np.float64)),
                                      o3d.utility.Vector3iVector(np.asarray(p.faces, np.int32)))
        m.compute_vertex_normals()
        m.vertex_colors = o3d.utility.Vector3dVector(lut[np.asarray(p.labels)])
        geoms.append(m)
    run_window(geoms, title, width, height)
    return text

"""Interactive Open3D window: input, prediction and target side by side (view), or any Open3D
geometries (run_window; the labelled panels of label_render.view_labels use it).

Keys: 1 / 2 / 3 toggle input / prediction / target, A shows all, Q or Esc closes.
"""
from __future__ import annotations

import os
import sys
from typing import Mapping, Optional, Sequence

from sparse3d.vis.render import DEFAULT_COLOR, PALETTE, Panel, _o3d, clip_top_panels, layout, to_o3d_mesh

NO_DISPLAY = ("no display to open a window on (neither DISPLAY nor WAYLAND_DISPLAY is set); render a "
              "picture instead with --png FILE, e.g. `sparse3d view ... --png view.png`")


def no_display_reason(environ: Optional[Mapping[str, str]] = None, platform: Optional[str] = None) -> Optional[str]:
    """Why a window cannot open here (Linux/BSD without DISPLAY or WAYLAND_DISPLAY), or None when it may.

    An X/Wayland-less Linux machine would otherwise make Open3D wait or fail deep inside GLFW."""
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if platform.startswith(("win", "darwin", "cygwin")):
        return None
    if environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"):
        return None
    return NO_DISPLAY


def view(panels: Sequence[Panel], title: str = "sparse3d completion", width: int = 1400, height: int = 700,
         clip_top: float = 0.0) -> None:
    """Open a ``width`` x ``height`` window (needs a display: RuntimeError without one); blocks until it
    is closed. clip_top: see :func:`clip_top_panels`."""
    placed = clip_top_panels(layout(panels), clip_top)
    run_window([to_o3d_mesh(v, f, PALETTE.get(t, DEFAULT_COLOR)) for t, v, f in placed], title, width, height)


def run_window(geoms: Sequence, title: str, width: int, height: int) -> None:
    """Show Open3D geometries in a ``width`` x ``height`` window (keys 1-9 toggle a geometry, A shows all,
    Q closes); blocks until it is closed. RuntimeError without a display."""
    for name, v in (("width", width), ("height", height)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int (pixels), got {v!r}")
    reason = no_display_reason()
    if reason is not None:
        raise RuntimeError(reason)
    o3d = _o3d()
    shown = [True] * len(geoms)
    vis = o3d.visualization.VisualizerWithKeyCallback()
    if not vis.create_window(window_name=title + "  [1/2/3 toggle, A all]", width=width, height=height):
        raise RuntimeError("cannot open an Open3D window (no display?); use `sparse3d view ... --png out.png`")
    for g in geoms:
        vis.add_geometry(g)

    def toggle(i):
        def cb(v):
            shown[i] = not shown[i]
            (v.add_geometry if shown[i] else v.remove_geometry)(geoms[i], reset_bounding_box=False)
            return True
        return cb

    def show_all(v):
        for i, g in enumerate(geoms):
            if not shown[i]:
                v.add_geometry(g, reset_bounding_box=False)
                shown[i] = True
        return True

    for i in range(min(len(geoms), 9)):
        vis.register_key_callback(ord(str(i + 1)), toggle(i))
    vis.register_key_callback(ord("A"), show_all)
    vis.run()
    vis.destroy_window()

"""`sparse3d view completion` and the picture options every view shares (the `view` group is made by
sparse3d/cli.py); `view segmentation` is made by :func:`sparse3d.vis.label_cli.register_segmentation` with the palette
its caller passes (vis knows no dataset).

    sparse3d view completion --dir OUT/predictions --scene scene0100_00            # window
    sparse3d view completion --dir OUT/predictions --scene scene0100_00 --png a.png  # headless
    sparse3d view completion --mesh a.ply --mesh b.ply --png a.png                  # any meshes

--width/--height/--clip-top apply to both the window and the PNG; --renderer only to --png
(the window is Open3D's legacy Visualizer, which has one renderer): passing it without --png
is an error rather than an ignored option. Without --png on a Linux machine with no display (neither
DISPLAY nor WAYLAND_DISPLAY set) the command stops with a one-line message saying to use --png.
"""
from __future__ import annotations

import os

from sparse3d.utils.argtypes import fraction, positive_int

PNG_SIZE = (1200, 500)  # default --width, --height of a PNG
WINDOW_SIZE = (1400, 700)  # default --width, --height of the window


def add_picture_options(p, png_size, window_size) -> None:
    """--png FILE, --width, --height of a view: a headless PNG of ``png_size`` (width, height) or a window of
    ``window_size`` by default."""
    p.add_argument("--png", default=None, metavar="FILE",
                   help="render headless to this PNG instead of opening a window")
    p.add_argument("--width", type=positive_int, default=None,
                   help=f"pixels (default {png_size[0]} for --png, {window_size[0]} for the window)")
    p.add_argument("--height", type=positive_int, default=None,
                   help=f"pixels (default {png_size[1]} for --png, {window_size[1]} for the window)")


def register_completion(vsub) -> None:
    """Add `view completion` to the `view` group's sub-parsers ``vsub``."""
    p = vsub.add_parser(
        "completion", help="show input / prediction / target meshes (window, or a PNG with --png)",
        description="Show meshes side by side: the input / prediction / target of a scene written by "
                    "`sparse3d predict` or `sparse3d demo`, or any mesh files. Opens an Open3D window "
                    "(keys 1/2/3 toggle the panels, A shows all); on a machine without a display, "
                    "--png renders a picture instead.",
        epilog="examples:\n"
               "  sparse3d view completion --dir out/demo/predictions --scene scene0100_00\n"
               "  sparse3d view completion --dir out/demo/predictions --scene scene0100_00 --png view.png\n"
               "  sparse3d view completion --mesh a.ply --mesh b.ply --png meshes.png\n")
    p.add_argument("--dir", default=None,
                   help="folder written by `sparse3d predict` / `sparse3d demo` (with --scene)")
    p.add_argument("--scene", default=None, help="scene name inside --dir: shows <scene>_{input,prediction,target}.ply")
    p.add_argument("--mesh", action="append", default=[], metavar="FILE",
                   help="a mesh file (.ply/.obj) to show instead of --dir/--scene; repeat for several panels")
    add_picture_options(p, PNG_SIZE, WINDOW_SIZE)
    p.add_argument("--renderer", choices=["raycast", "filament"], default=None,
                   help="--png only. raycast (default): Open3D RaycastingScene (fast on a CPU); filament: Open3D "
                        "OffscreenRenderer (Mesa llvmpipe on a CPU: minutes per picture)")
    p.add_argument("--clip-top", type=fraction, default=0.0,
                   help="drop the top fraction of the height (ceilings), in [0, 1) (default 0: keep all)")
    p.set_defaults(func=_view)


def _panels(args):
    from sparse3d.vis.render import read_mesh
    if args.mesh:
        return [(os.path.splitext(os.path.basename(m))[0], *read_mesh(m)) for m in args.mesh]
    if not (args.dir and args.scene):
        raise SystemExit("error: pass --dir and --scene, or --mesh FILE (one or more)")
    panels = []
    for k in ("input", "prediction", "target"):
        path = os.path.join(args.dir, f"{args.scene}_{k}.ply")
        if os.path.isfile(path):
            panels.append((k, *read_mesh(path)))
    if not panels:
        raise SystemExit(f"error: no {args.scene}_{{input,prediction,target}}.ply in {args.dir}")
    return panels


def _view(args) -> int:
    if not args.png and args.renderer is not None:
        raise SystemExit(f"error: --renderer {args.renderer} applies only to --png (headless rendering); the "
                         "window uses Open3D's own renderer: drop --renderer or add --png FILE")
    if not args.png:
        from sparse3d.vis.viewer import no_display_reason
        reason = no_display_reason()
        if reason is not None:
            raise SystemExit(f"error: {reason}")
    panels = _panels(args)
    if args.png:
        from sparse3d.vis.render import render_side_by_side
        render_side_by_side(panels, args.png, args.width or PNG_SIZE[0], args.height or PNG_SIZE[1],
                            clip_top=args.clip_top, renderer=args.renderer or "raycast")
        print(f"wrote {args.png}")
        return 0
    from sparse3d.vis.viewer import view
    names = ", ".join(f"{i + 1}: {title}" for i, (title, _, _) in enumerate(panels))
    print(f"window: panels left to right ({names}); keys 1-{min(len(panels), 9)} toggle a panel, A shows all, Q closes")
    view(panels, width=args.width or WINDOW_SIZE[0], height=args.height or WINDOW_SIZE[1], clip_top=args.clip_top)
    return 0

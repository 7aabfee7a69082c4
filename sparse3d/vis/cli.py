"""`sparse3d view`: look at completion results.

    sparse3d view --dir OUT/predictions --scene scene0100_00            # window
    sparse3d view --dir OUT/predictions --scene scene0100_00 --png a.png  # headless
    sparse3d view --mesh a.ply --mesh b.ply --png a.png                  # any meshes
"""
from __future__ import annotations

import os


def register(subparsers) -> None:
    p = subparsers.add_parser("view", help="show input / prediction / target meshes (window or --png)")
    p.add_argument("--dir", default=None, help="folder written by `sparse3d predict` / `sparse3d demo`")
    p.add_argument("--scene", default=None, help="scene name inside --dir (<scene>_{input,prediction,target}.ply)")
    p.add_argument("--mesh", action="append", default=[], help="mesh file(s) to show instead")
    p.add_argument("--png", default=None, help="render headless to this PNG instead of opening a window")
    p.add_argument("--width", type=int, default=1200)
    p.add_argument("--height", type=int, default=500)
    p.add_argument("--renderer", choices=["raycast", "filament"], default="raycast",
                   help="raycast: Open3D RaycastingScene (fast on a CPU); filament: Open3D OffscreenRenderer "
                        "(Mesa llvmpipe on a CPU: minutes per picture)")
    p.add_argument("--clip-top", type=float, default=0.0, help="drop the top fraction of the height (ceilings)")
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
    panels = _panels(args)
    if args.png:
        from sparse3d.vis.render import render_side_by_side
        render_side_by_side(panels, args.png, args.width, args.height, clip_top=args.clip_top,
                            renderer=args.renderer)
        print(f"wrote {args.png}")
        return 0
    from sparse3d.vis.viewer import view
    view(panels)
    return 0

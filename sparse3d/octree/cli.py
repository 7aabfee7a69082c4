"""`sparse3d view octree`: the octants of an octree built from a mesh, one panel per depth, as a headless PNG."""
from __future__ import annotations

import argparse
import os
from typing import Any

from sparse3d.utils.argtypes import nonneg_int, positive_int


def register_view(vsub: Any) -> None:
    """Add `sparse3d view octree` to the `view` group's sub-parsers."""
    p = vsub.add_parser(
        "octree", help="draw the octants of an octree built from a mesh, one panel per depth (PNG)",
        description="Build an octree from points sampled on a mesh's surface (O-CNN's full octree, "
                    "sparse3d.octree.Octree.from_mesh) and draw its non-empty octants per depth into a PNG "
                    "(matplotlib, no display needed).",
        epilog="example:\n  sparse3d view octree ../shared/data/meshes/bunny.ply --depth 6 --depths 3 4 5 6 "
               "--png octree.png\n")
    p.add_argument("mesh", metavar="MESH", help="a mesh file trimesh reads (.ply, .obj, .off, .stl)")
    p.add_argument("--depth", type=positive_int, default=6, help="depth of the leaves (default 6)")
    p.add_argument("--depths", type=nonneg_int, nargs="+", default=None,
                   help="depths to draw (default: up to four, ending at the leaves)")
    p.add_argument("--points", type=positive_int, default=100_000, help="surface samples (default 100000)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of the surface samples (default 0)")
    p.add_argument("--show-empty", action="store_true", help="also outline the empty octants of the full octree")
    p.add_argument("--png", required=True, metavar="FILE", help="the picture to write")
    p.add_argument("--width", type=positive_int, default=1400, help="pixels (default 1400)")
    p.add_argument("--height", type=positive_int, default=480, help="pixels (default 480)")
    p.set_defaults(func=_view)


def _view(args: argparse.Namespace) -> int:
    import trimesh

    from sparse3d.octree.draw import draw_octree
    from sparse3d.octree.structure import Octree
    if not os.path.isfile(args.mesh):
        raise SystemExit(f"error: MESH: no file {args.mesh}")
    try:
        mesh = trimesh.load(args.mesh, force="mesh")
    except Exception as e:  # trimesh raises many kinds on a bad file
        raise SystemExit(f"error: {args.mesh}: not a mesh trimesh can read ({type(e).__name__}: {e})") from None
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise SystemExit(f"error: {args.mesh}: no triangles")
    try:
        octree = Octree.from_mesh(mesh, args.depth, num_points=args.points, seed=args.seed)
        drawn = draw_octree(octree, args.png, args.depths, width=args.width, height=args.height,
                            show_empty=args.show_empty)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    print(", ".join(f"depth {d}: {n} non-empty octants" for d, n in drawn.items()))
    print(f"wrote {args.png}")
    return 0

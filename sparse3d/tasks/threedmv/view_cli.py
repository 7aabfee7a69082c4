"""`sparse3d view threedmv`: the colour of the frames lifted into a whole scene's voxels by the back-projection
(``sparse3d.ops.backproject``, the k greedily chosen views per box as 3DMV picks them) beside the colour fused
into the voxels, with the per-channel difference between the two printed.

    sparse3d view threedmv CROPS --scene scene0000_00 --views 3 --png lifted.png

The joint model's predicted labels are shown by `sparse3d view segmentation` on the folder written by
`sparse3d predict threedmv` (the same per-vertex format as the U-Net's).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from sparse3d.tasks.threedmv.data import Scene
from sparse3d.utils.argtypes import positive_float, positive_int

PNG_SIZE, WINDOW_SIZE = (1200, 520), (1400, 700)


@dataclass(frozen=True)
class LiftedColor:
    """lifted uint8 [N, 3]: the frames' colour at each voxel pooled over its views (0 where no view passes the
    depth test); n_views int32 [N]; views: frames per box; mad float [3]: mean |lifted - fused| per channel over
    the seen voxels (0..255)."""
    lifted: np.ndarray
    n_views: np.ndarray
    views: int
    mad: np.ndarray

    @property
    def seen(self) -> int:
        return int((self.n_views > 0).sum())


def lift_color(scene: Scene, views: int, pool: str = "mean", depth_thresh: Optional[float] = None,
               footprint: Sequence[int] = (48, 48)) -> LiftedColor:
    """The colour of ``scene``'s frames back-projected into its voxels: per box of ``footprint`` voxels (x, y), the
    ``views`` frames covering most of it; ``pool`` "mean" or "max" across views; depth_thresh metres (None = the
    voxel size)."""
    from sparse3d.tasks.threedmv.predict import lift_scene
    if views < 1:
        raise ValueError(f"views must be >= 1, got {views}")
    color = scene.frames.color

    def maps(idx: np.ndarray) -> torch.Tensor:  # [V, 3, H, W] in 0..1
        return torch.from_numpy(color[idx]).permute(0, 3, 1, 2).float() / 255

    lifted, n_views = lift_scene(scene, scene.sample, maps, views, footprint, depth_thresh, pool)
    rgb = np.clip(np.round(lifted.numpy() * 255), 0, 255).astype(np.uint8)
    nv = n_views.numpy().astype(np.int32)
    seen = nv > 0
    fused = np.asarray(scene.sample.color, np.float64)
    mad = np.abs(rgb[seen].astype(np.float64) - fused[seen]).mean(0) if seen.any() else np.full(3, np.nan)
    return LiftedColor(rgb, nv, views, mad)


def register_view(vsub) -> None:
    """Add `sparse3d view threedmv` to the `view` group's sub-parsers."""
    from sparse3d.vis.cli import add_picture_options
    p = vsub.add_parser(
        "threedmv", help="show the colour lifted from the frames into the voxels beside the fused voxel colour",
        description="Back-project the RGB frames of a whole-scene crop into its voxels (the views chosen per box as "
                    "3DMV does, the depth test of sparse3d.ops.backproject) and show the lifted colour beside the "
                    "colour fused into the voxels; voxels no chosen view sees are grey. Prints the mean absolute "
                    "difference per channel. Opens an Open3D window, or --png renders a picture.",
        epilog="example:\n  sparse3d view threedmv out/crops --scene scene0000_00 --views 3 --png lifted.png\n")
    p.add_argument("data", metavar="CROPS", help="a folder of whole-scene segmentation crops of ScanNet-layout scans "
                   "(`sparse3d preprocess --recipe segmentation --placement whole`)")
    p.add_argument("--scene", required=True, help="scene (scan) id of a crop in CROPS")
    p.add_argument("--views", type=positive_int, default=3, help="views per box (default 3)")
    p.add_argument("--pool", choices=("mean", "max"), default="mean", help="pooling across views (default mean)")
    p.add_argument("--frame-step", type=positive_int, default=1, help="use every n-th fused frame (default 1)")
    p.add_argument("--depth-step", type=positive_int, default=2, help="depth subsampling for the test (default 2)")
    p.add_argument("--depth-thresh", type=positive_float, default=None,
                   help="metres (default: the voxel size)")
    add_picture_options(p, PNG_SIZE, WINDOW_SIZE)
    p.set_defaults(func=_view)


def load_scene(root: str, scene_id: str, frame_step: int = 1, depth_step: int = 2) -> Scene:
    """The whole-scene crop of ``scene_id`` in ``root`` with its frames (no label images)."""
    from sparse3d.tasks.segmentation.dataset import SegmentationDataset
    from sparse3d.tasks.threedmv.frames import load_scene_frames, scene_record
    ds = SegmentationDataset(root, None)
    names = []
    for i, path in enumerate(ds.paths):
        names.append(str(scene_record(path).get("scene_id", "")))
        if names[-1] == scene_id:
            return Scene(ds[i], load_scene_frames(path, frame_step, depth_step, 1, None), path)
    raise ValueError(f"--scene: no crop of {scene_id!r} in {root} (scenes: {', '.join(sorted(names)[:10])})")


def _view(args: argparse.Namespace) -> int:
    if not args.png:
        from sparse3d.vis.viewer import no_display_reason
        reason = no_display_reason()
        if reason is not None:
            raise SystemExit(f"error: {reason}")
    try:
        scene = load_scene(args.data, args.scene, args.frame_step, args.depth_step)
        res = lift_color(scene, args.views, args.pool, args.depth_thresh)
    except (OSError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    n = len(res.n_views)
    print(f"{args.scene}: {res.seen} of {n} voxels seen by the chosen views ({args.views} per box, {args.pool} "
          f"pooling); mean |lifted - fused| R/G/B = {res.mad[0]:.2f} / {res.mad[1]:.2f} / {res.mad[2]:.2f} of 255")
    from sparse3d.vis.color_render import render_colors, view_colors, voxel_color_panel
    shown = np.where(res.n_views[:, None] > 0, res.lifted, 128).astype(np.uint8)
    c = scene.sample.coords
    panels = [voxel_color_panel("fused voxel colour", c, scene.sample.color),
              voxel_color_panel(f"lifted from {args.views} view(s) per box", c, shown)]
    if args.png:
        render_colors(panels, args.png, args.width or PNG_SIZE[0], args.height or PNG_SIZE[1])
        print(f"wrote {args.png}")
        return 0
    view_colors(panels, width=args.width or WINDOW_SIZE[0], height=args.height or WINDOW_SIZE[1])
    return 0

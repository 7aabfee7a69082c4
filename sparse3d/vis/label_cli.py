"""`sparse3d view segmentation`: a segmentation prediction beside its ground truth, coloured by class.

vis knows no dataset: the caller passes the palette (colours, class names, the file id of each class)
when it registers the command, e.g. with the ScanNet-20 palette of data_tools/scannet/labels.py::

    register_segmentation(view_subparsers, Palette(SCANNET20_COLORS, SCANNET20_NAMES, ignore=255,
                                                   class_ids=SCANNET20_NYU40_IDS))

Two kinds of input, both written by `sparse3d predict segmentation` into PRED_DIR:

* voxels (default): ``PRED_DIR/<scene>_voxels.npz`` with coords int [N, 3], labels uint8 [N] (class
  index; ignore = none) and optionally gt_labels uint8 [N] (the ground truth panel) and voxel_size.
* mesh vertices (``--mesh FILE``, the scene's ``_vh_clean_2.ply``): ``PRED_DIR/<scene>.txt``, one file
  id (nyu40) per line and vertex; ``--gt GT_DIR`` adds ``GT_DIR/<scene>.txt`` (same format) as the
  ground truth panel. Ids that are no class of the palette are drawn as unlabelled.
"""
from __future__ import annotations

import argparse
import os
from typing import List, Optional, Tuple

import numpy as np

from sparse3d.utils.argtypes import fraction
from sparse3d.vis.cli import add_picture_options
from sparse3d.vis.labels import LabelPanel, Palette, check_labels, mesh_panel, read_id_file, voxel_panel

PNG_SIZE = (1200, 600)  # default --width, --height of a PNG
WINDOW_SIZE = (1400, 700)  # default --width, --height of the window


def register_segmentation(vsub, palette: Palette) -> None:
    """Add `view segmentation` to the `view` group's sub-parsers ``vsub``, colouring with ``palette``
    (its class_ids are the ids of the per-vertex .txt files)."""
    if not isinstance(palette, Palette):
        raise TypeError(f"palette must be a sparse3d.vis.labels.Palette, got {type(palette).__name__}")
    p = vsub.add_parser(
        "segmentation", help="show predicted and ground-truth labels side by side, coloured by class",
        description="Show a segmentation result coloured by class beside its ground truth, with a legend of the "
                    "classes present: the voxels of PRED_DIR/<scene>_voxels.npz (labels | gt_labels), or with "
                    "--mesh the vertices of the scene's mesh coloured by PRED_DIR/<scene>.txt (one id per "
                    "vertex, the benchmark's submission format) and, with --gt, by GT_DIR/<scene>.txt. Opens an "
                    "Open3D window (the legend is printed; keys 1/2 toggle the panels, A shows all); --png "
                    "renders a picture instead (no display needed).",
        epilog="examples:\n"
               "  sparse3d view segmentation out/preds --scene scene0000_00 --png seg.png\n"
               "  sparse3d view segmentation out/preds --scene scene0000_00 --mesh "
               "scans/scene0000_00/scene0000_00_vh_clean_2.ply --gt out/gt --png seg_mesh.png\n")
    p.add_argument("pred_dir", metavar="PRED_DIR", help="folder written by `sparse3d predict segmentation`")
    p.add_argument("--scene", required=True, help="scene (scan) id: reads <scene>_voxels.npz or <scene>.txt")
    p.add_argument("--mesh", default=None, metavar="FILE",
                   help="the scene's mesh (.ply): colour its vertices by <scene>.txt instead of showing voxels")
    p.add_argument("--gt", default=None, metavar="GT_DIR",
                   help="--mesh only: folder of ground-truth <scene>.txt files (the benchmark's format) for a "
                        "second panel (voxels: the ground truth is gt_labels in the .npz)")
    p.add_argument("--hide-unlabelled", action="store_true",
                   help="leave out voxels / faces whose label is no class (e.g. the ceiling)")
    add_picture_options(p, PNG_SIZE, WINDOW_SIZE)
    p.add_argument("--clip-top", type=fraction, default=0.0,
                   help="drop the top fraction of the height (ceilings), in [0, 1) (default 0: keep all)")
    p.set_defaults(func=lambda args: view_segmentation(args, palette))


def segmentation_panels(pred_dir: str, scene: str, palette: Palette, mesh: Optional[str] = None,
                        gt_dir: Optional[str] = None, hide_ignored: bool = False
                        ) -> Tuple[List[LabelPanel], Optional[str]]:
    """(panels, note) of `view segmentation`: the panels "prediction", then "ground truth" when there is
    one (voxels: gt_labels in the .npz, unless every voxel is unlabelled; mesh: ``gt_dir``/<scene>.txt);
    the note gives the prediction's accuracy over the ground truth's labelled voxels / vertices (None
    without a ground truth). Errors name the missing or malformed file."""
    if mesh is None:
        if gt_dir is not None:
            raise ValueError("--gt applies to --mesh (vertex labels from .txt files); the voxel ground truth is "
                             "gt_labels inside <scene>_voxels.npz")
        path = os.path.join(pred_dir, f"{scene}_voxels.npz")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} does not exist (written by `sparse3d predict segmentation`; or pass "
                                    "--mesh FILE to colour the scene's mesh by <scene>.txt)")
        with np.load(path) as z:
            for key in ("coords", "labels"):
                if key not in z.files:
                    raise ValueError(f"{path}: no {key!r} array (has {sorted(z.files)})")
            coords, vs = z["coords"], float(z["voxel_size"]) if "voxel_size" in z.files else 1.0
            labels = {"prediction": (z["labels"], f"{path}: labels")}
            if "gt_labels" in z.files and (np.asarray(z["gt_labels"]) != palette.ignore).any():
                labels["ground truth"] = (z["gt_labels"], f"{path}: gt_labels")
        panels = [voxel_panel(t, coords, lab, palette, vs, name=n, hide_ignored=hide_ignored)
                  for t, (lab, n) in labels.items()]
        what = "voxels"
    else:
        from sparse3d.vis.render import read_mesh
        verts, faces = read_mesh(mesh)
        if len(verts) == 0:
            raise ValueError(f"mesh {mesh!r} has no vertices")
        labels, panels = {}, []
        for title, folder in (("prediction", pred_dir), ("ground truth", gt_dir)):
            if folder is not None:
                path = os.path.join(folder, f"{scene}.txt")
                lab = palette.from_ids(read_id_file(path, n=len(verts), what=f"vertices of {mesh}"), path)
                labels[title] = (lab, path)
                panels.append(mesh_panel(title, verts, faces, lab, palette, name=path, hide_ignored=hide_ignored))
        what = "vertices"
    if "ground truth" not in labels:
        return panels, None
    pred = check_labels(labels["prediction"][0], palette)
    gt = check_labels(labels["ground truth"][0], palette)
    valid = gt != palette.ignore
    acc = float((pred[valid] == gt[valid]).mean())
    return panels, f"accuracy of the prediction on the {int(valid.sum())} ground-truth-labelled {what}: {acc:.3f}"


def view_segmentation(args: argparse.Namespace, palette: Palette) -> int:
    """Run `view segmentation` (window or --png); a bad input ends in one error line naming the file."""
    if not args.png:
        from sparse3d.vis.viewer import no_display_reason
        reason = no_display_reason()
        if reason is not None:
            raise SystemExit(f"error: {reason}")
    try:
        panels, note = segmentation_panels(args.pred_dir, args.scene, palette, args.mesh, args.gt,
                                           args.hide_unlabelled)
    except (OSError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    from sparse3d.vis.labels import legend_text
    if args.png:
        from sparse3d.vis.label_render import render_labels
        print(legend_text(palette, panels))
        try:
            render_labels(panels, palette, args.png, args.width or PNG_SIZE[0], args.height or PNG_SIZE[1],
                          clip_top=args.clip_top)
        except ValueError as e:  # e.g. a picture too small for its legend
            raise SystemExit(f"error: {e}") from None
        if note:
            print(note)
        print(f"wrote {args.png}")
        return 0
    from sparse3d.vis.label_render import view_labels
    if note:
        print(note)
    view_labels(panels, palette, width=args.width or WINDOW_SIZE[0], height=args.height or WINDOW_SIZE[1],
                clip_top=args.clip_top)
    return 0

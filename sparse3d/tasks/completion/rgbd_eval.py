"""`sparse3d eval completion --rgbd FOLDER --checkpoint CKPT`: the real-data evaluation of a completion model
on any RGB-D folder (``data_tools.scannet.rgbd_folder``) or ScanNet scene folder.

    input  = TSDF fused from a seeded ~30% of the frames (contiguous runs; data_tools' completion recipe)
    target = TSDF fused from all the frames (the same recipe, placement whole: no duplicate fusion code)

and writes into ``--out``: the metrics table (printed) and ``<name>_metrics.json``, the meshes and sparse grid
of ``sparse3d predict completion``, and ``<name>.png``: four voxel panels, input / prediction / target surface
and the prediction's errors where the target is known, as the metrics count them (correct = in both,
invented = prediction only, missed = target only).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Dict, Tuple

import numpy as np

from sparse3d.tasks.completion.dataset import Sample, sample_from_crop, surface

# the error picture: class index -> (name, RGB)
ERROR_CLASSES = (("surface", (150, 160, 190)), ("correct (prediction and target)", (70, 170, 90)),
                 ("invented (prediction only)", (215, 60, 50)), ("missed (target only)", (240, 180, 40)))


def fuse_scan(path: str, voxel_size: float, trunc: float, input_fraction: float, segments: int, seed: int,
              align_up: bool = False) -> Sample:
    """A whole-scene Sample of a ScanNet scene / RGB-D folder: input from a seeded ``input_fraction`` of the
    frames in ``segments`` runs, target from all of them (``data_tools.build_crops``, completion recipe,
    placement whole; the same fusion as ``sparse3d preprocess --recipe completion --placement whole``)."""
    from data_tools import build_crops, recipe_config
    from sparse3d.tasks.completion.cli import _open_frames
    name = os.path.basename(os.path.normpath(path))
    crops: list = []
    build_crops(_open_frames(path, align_up), name, recipe_config(
        "completion", placement="whole", voxel_size=voxel_size, trunc_voxels=trunc, input_fraction=input_fraction,
        segments=segments, seed=seed), sink=lambda _, crop: crops.append(crop))
    if len(crops) != 1:
        raise ValueError(f"{path}: expected one whole-scene sample from the completion recipe, got {len(crops)}")
    return sample_from_crop(crops[0])


def error_labels(pred_occ: np.ndarray, target_occ: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """bool [X, Y, Z] each -> (coords int [N, 3] of prediction | target, labels [N]: 1 correct, 2 invented,
    3 missed; see :data:`ERROR_CLASSES`)."""
    both = pred_occ | target_occ
    coords = np.argwhere(both)
    idx = tuple(coords.T)
    p, t = pred_occ[idx], target_occ[idx]
    return coords, np.where(p & t, 1, np.where(p, 2, 3)).astype(np.int64)


def render_errors(sample: Sample, pred_occ: np.ndarray, png: str, occ_thresh: float = 1.0) -> str:
    """The four-panel picture of the module docstring (headless, :func:`sparse3d.vis.label_render.render_labels`;
    the top quarter, a scan's ceiling, is clipped away); returns ``png``."""
    from sparse3d.vis.label_render import render_labels
    from sparse3d.vis.labels import Palette, voxel_panel
    pal = Palette(np.array([c for _, c in ERROR_CLASSES], np.uint8), tuple(n for n, _ in ERROR_CLASSES))
    vs = float(sample.voxel_size)
    origin = tuple(float(v) * vs for v in np.asarray(sample.origin))
    base = surface(sample.input_tsdf, sample.input_known, occ_thresh)
    target = surface(sample.target_tsdf, sample.target_known, occ_thresh)
    panels = []
    for title, occ in (("input", base), ("prediction", pred_occ), ("target", target)):
        c = np.argwhere(occ)
        panels.append(voxel_panel(title, c, np.zeros(len(c), np.int64), pal, vs, origin))
    c, lab = error_labels(pred_occ & sample.target_known, target)
    panels.append(voxel_panel("errors (on known target space)", c, lab, pal, vs, origin))
    return render_labels(panels, pal, png, width=1600, height=520, clip_top=0.25)


def run_rgbd_eval(args: argparse.Namespace) -> int:
    """The command (see the module docstring); args of ``sparse3d eval completion``."""
    from sparse3d.tasks.completion.checkpoint import load_model
    from sparse3d.tasks.completion.predict import (evaluate_sample, format_pr_table, format_reach_table, format_table,
                                                   write_json, write_outputs)
    net, cfg = load_model(args.checkpoint, args.device)
    net.to(args.device)
    vs = getattr(net.config, "voxel_size", None)
    if vs is None:
        raise SystemExit(f"error: {args.checkpoint} does not record its training voxel size; evaluate a "
                         "`sparse3d preprocess FOLDER OUT --recipe completion --placement whole` dataset with --data")
    name = os.path.basename(os.path.normpath(args.rgbd))
    out = args.out or os.path.join("out", "rgbd_eval", name)
    print(f"fusing {args.rgbd}: input from {args.input_fraction:.0%} of the frames ({args.segments} runs, seed "
          f"{args.seed}), target from all; {vs * 100:g} cm voxels", file=sys.stderr)
    sample = fuse_scan(args.rgbd, vs, cfg.model.trunc, args.input_fraction, args.segments, args.seed, args.align_up)
    print(f"predicting {name} ({'x'.join(map(str, sample.shape))} voxels)", file=sys.stderr)
    report, pred, ms = evaluate_sample(net, sample, args.device, cfg.occ_thresh, frontier=cfg.frontier,
                                       keep_observed=not args.network_only, threshold=args.threshold,
                                       with_chamfer=not args.no_chamfer,  # the meshes are written either way
                                       tta=args.tta)
    paths = write_outputs(out, name, sample, pred, ms, cfg.occ_thresh)
    png = render_errors(sample, pred.occ, os.path.join(out, f"{name}.png"), cfg.occ_thresh)
    settings: Dict[str, Any] = {"checkpoint": args.checkpoint, "rgbd": args.rgbd, "threshold": args.threshold,
                                "tta": args.tta, "keep_observed": not args.network_only,
                                "input_fraction": args.input_fraction,
                                "segments": args.segments, "seed": args.seed, "align_up": args.align_up,
                                "voxel_size": vs, "chamfer": not args.no_chamfer}
    js = args.json or os.path.join(out, f"{name}_metrics.json")
    write_json(js, {"settings": settings, "samples": {name: report}})
    print(format_table({name: report}))
    print(format_pr_table({name: report}))
    print(format_reach_table({name: report}))
    print(f"wrote {js}, {png}, " + ", ".join(paths.values()))
    return 0

"""Commands of the ScanNet benchmark protocol for segmentation:

    sparse3d export-gt SCANNET_ROOT GT_DIR                       ground truth <scene>.txt (data_tools.benchmark_cli)
    sparse3d predict segmentation CKPT DATA --out PRED_DIR       per-vertex predictions <scene>.txt (+ _voxels.npz)
    sparse3d eval segmentation PRED_DIR GT_DIR [--out DIR]       the benchmark's scores, JSON + confusion PNG
"""
from __future__ import annotations

import argparse
import sys

from sparse3d.tasks.segmentation.sample import FLOORS
from sparse3d.utils.argtypes import device, positive_float, positive_int, report_failures

BACKENDS = ("native", "torch", "spconv")


def register_predict(psub: "argparse._SubParsersAction") -> None:
    """Add ``segmentation`` to the ``sparse3d predict`` tasks."""
    p = psub.add_parser(
        "segmentation", help="label whole scenes' mesh vertices in the ScanNet benchmark format",
        description="Run a segmentation checkpoint (the sparse U-Net, fully convolutional on each whole scene, or "
                    "the sliding-window baseline) on the whole-scene crops of DATA and write, per scan, "
                    "<OUT>/<scan>.txt (one nyu40 id per line, one line per vertex of the scan's _vh_clean_2.ply: "
                    "each vertex takes the label of its nearest voxel) and <OUT>/<scan>_voxels.npz (the per-voxel "
                    "prediction). Resumable; exits 1 if any scene failed.")
    p.add_argument("checkpoint", help="a checkpoint of `sparse3d train segmentation` or `train segmentation-window`")
    p.add_argument("data", help="a sparse3d.crops dataset of whole scenes (`sparse3d preprocess ... --placement "
                                "whole`), whose _scene.json records each scan folder")
    p.add_argument("--out", required=True, help="output folder for <scan>.txt and <scan>_voxels.npz")
    p.add_argument("--split", default=None, help="only the scenes of this split of the dataset, e.g. val "
                                                 "(default: every scene)")
    p.add_argument("--scenes", nargs="+", default=None, help="only these scene ids of the dataset")
    p.add_argument("--device", type=device, default="cpu", help="torch device: cpu, cuda or cuda:N")
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help="U-Net sparse convolution backend (default: the one it was trained with)")
    p.add_argument("--tta", type=positive_int, default=1,
                   help="U-Net test-time views (1..8): the scene turned by right angles about up, flipped and "
                        "shifted, class probabilities averaged per voxel (1 = the scene as it is)")
    p.add_argument("--vote-segments", action="store_true",
                   help="each segment of the scan's _vh_clean_2.0.010000.segs.json (the over-segmentation "
                        "ScanNet's annotators labelled, shipped with every scan) takes the argmax of its vertices' "
                        "summed U-Net class probabilities (the sliding window's: the majority of their labels)")
    p.add_argument("--max-abs-tsdf", type=positive_float, default=None,
                   help="near-surface band of voxels fed to the model, voxels (default: the checkpoint's "
                        "max_abs_tsdf, else 1)")
    p.add_argument("--floor", choices=FLOORS, default="zero",
                   help="where the U-Net's height feature starts: zero = the world's z = 0 (ScanNet, the synthetic "
                        "rooms); lowest = the 1st percentile of each scan's voxel heights, for scans whose z = 0 is "
                        "not the floor (7-Scenes, RGB-D folders; it assumes the floor or something near it was "
                        "scanned) (default: zero)")
    p.add_argument("--overwrite", action="store_true", help="predict scans whose <scan>.txt exists already")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_predict)


def register_eval(esub: "argparse._SubParsersAction") -> None:
    """Add ``segmentation`` to the ``sparse3d eval`` tasks."""
    p = esub.add_parser(
        "segmentation", help="score per-vertex label files as the ScanNet benchmark does",
        description="Score PRED_DIR/<scene>.txt against GT_DIR/<scene>.txt for every ground-truth scene, as the "
                    "ScanNet semantic-label benchmark does: vertices whose ground truth is one of the 20 benchmark "
                    "nyu40 ids; a prediction outside the 20 is a miss; IoU = TP / (TP + FP + FN). Prints the "
                    "per-class table, mIoU over the classes present and the accuracy; writes "
                    "segmentation_eval.json and confusion.png.")
    p.add_argument("pred_dir", help="folder of prediction files <scene>.txt (`sparse3d predict segmentation`)")
    p.add_argument("gt_dir", help="folder of ground-truth files <scene>.txt (`sparse3d export-gt`)")
    p.add_argument("--out", default=None, help="folder for segmentation_eval.json and confusion.png "
                                               "(default: PRED_DIR)")
    p.add_argument("--scenes", nargs="+", default=None, help="only these scene ids (default: every gt scene)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_eval)


def _predict(args: argparse.Namespace) -> int:
    from sparse3d.tasks.segmentation.predict import checkpoint_label_fn, predict_dataset
    try:
        fn, task, band = checkpoint_label_fn(args.checkpoint, args.device, args.backend, args.tta,
                                             scores=args.vote_segments)
        s = predict_dataset(args.data, args.out, fn, scenes=args.scenes, split=args.split, overwrite=args.overwrite,
                            progress=not args.quiet, max_abs_tsdf=args.max_abs_tsdf or band,
                            vote_segments=args.vote_segments, floor=args.floor)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for scan, r in sorted(s["done"].items()):
        if r["mesh"] is None:
            print(f"{scan}: no _vh_clean_2.ply in its source (an RGB-D folder): voxel labels of {r['n_voxels']} "
                  f"voxels only, in {scan}_voxels.npz ({r['seconds']:.1f} s)")
            continue
        print(f"{scan}: {r['n_vertices']} vertices from {r['n_voxels']} voxels (vertex-to-voxel distance mean "
              f"{r['mean_distance_voxels']:.2f}, max {r['max_distance_voxels']:.2f} voxels) in {r['seconds']:.1f} s")
    print(f"predict segmentation ({task}): {len(s['done'])} written, {len(s['skipped'])} skipped (already there), "
          f"{len(s['failed'])} failed; files in {args.out}")
    return report_failures(s["failed"])


def _eval(args: argparse.Namespace) -> int:
    from sparse3d.tasks.segmentation.benchmark import evaluate, write_report
    try:
        scores = evaluate(args.pred_dir, args.gt_dir, scenes=args.scenes, progress=not args.quiet)
    except (OSError, ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    paths = write_report(scores, args.out or args.pred_dir)
    print(scores.format_table())
    print(f"wrote {paths['json']}, {paths['png']}")
    return 0

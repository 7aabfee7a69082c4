"""Commands of 3DMV:

    sparse3d train threedmv-2d --data CROPS --out RUN2D [--val-data HELD_OUT]          pre-train the 2D net
    sparse3d train threedmv --data CROPS --net2d RUN2D/last.pt --views 3 [--fix-2d | --no-fix-2d] --out RUN
    sparse3d predict threedmv RUN/last.pt HELD_OUT --out PRED                          per-vertex <scan>.txt
    sparse3d eval segmentation PRED GT                                                 the benchmark's scores

CROPS: whole-scene crops of scans with frames (`sparse3d preprocess SCANS CROPS --recipe segmentation`); the
frames and the `<scan>_2d-label-filt.zip` label images are read from each crop's scan folder.
"""
from __future__ import annotations

import argparse
import sys
from typing import List

from sparse3d.tasks.segmentation.cli import box_size, in_features, widths
from sparse3d.tasks.segmentation.config import BACKENDS, CLASS_WEIGHTING, LR_SCHEDULES, ROTATIONS
from sparse3d.tasks.threedmv.config import Net2DTrainConfig, ThreeDMVModelConfig, ThreeDMVTrainConfig
from sparse3d.train.cli_options import LOOP_OPTIONS, Option, add_overrides, given_overrides, run_train_command
from sparse3d.utils.argtypes import device, positive_float, positive_int, report_failures

_OPTIONS: List[Option] = [
    ("data", str, None, "whole-scene crops (recipe segmentation) of scans with RGB-D frames; its train split"),
    ("val_data", str, None, "held-out scenes scored per voxel at the end (every split of this dataset)"),
    ("net2d", str, None, "pre-trained 2D net (`sparse3d train threedmv-2d`)"),
    ("views", positive_int, None, "frames lifted into each training box / prediction tile (greedy coverage)"),
    ("batch_size", positive_int, None, "boxes per step"),
    ("lr", positive_float, None, "AdamW learning rate of the 3D network"),
    ("lr_2d", positive_float, None, "learning rate of the 2D net when trained end to end"),
    ("lr_schedule", str, LR_SCHEDULES, "learning-rate schedule"),
    ("box", box_size, None, "training box X,Y,Z voxels (its X,Y is also the prediction tile)"),
    ("rotate", str, ROTATIONS, "rotation about up"),
    ("frame_step", positive_int, None, "use every n-th fused frame"),
    ("depth_step", positive_int, None, "depth pixels kept for the visibility test: every n-th in each direction"),
    ("color_step", positive_int, None, "colour pixels fed to the 2D net: every n-th in each direction"),
    ("label_tsv", str, None, "scannetv2-labels.combined.tsv (2D label ids); none = the synthetic rooms' table"),
    ("backend", str, BACKENDS, "sparse convolution backend"),
]
_MODEL_OPTIONS: List[Option] = [
    ("widths", widths, None, "U-Net channels per level, finest first"),
    ("in_features", in_features, None, "voxel input features joined by '+': height, normals, color, tsdf"),
]
_2D_OPTIONS: List[Option] = [
    ("data", str, None, "whole-scene crops of labelled scans; the frames of its train split"),
    ("val_data", str, None, "held-out scenes: pixel scores at the end"),
    ("batch_size", positive_int, None, "frames per step"),
    ("lr", positive_float, None, "AdamW learning rate"),
    ("frame_step", positive_int, None, "use every n-th fused frame"),
    ("color_step", positive_int, None, "colour pixels: every n-th in each direction"),
    ("label_tsv", str, None, "scannetv2-labels.combined.tsv; none = the synthetic rooms' table"),
    ("class_weighting", str, CLASS_WEIGHTING, "class weights of the pixel loss from the training pixel counts"),
]


def register_train(tsub) -> None:
    """Add ``threedmv`` and ``threedmv-2d`` to the ``sparse3d train`` tasks."""
    p = tsub.add_parser("threedmv", help="train the joint 3DMV network (geometry + back-projected 2D features)")
    p.add_argument("--config", default=None, help="YAML of training settings (configs/threedmv_default.yaml)")
    p.add_argument("--no-resume", action="store_true", help="start over even if <out>/last.pt exists")
    p.add_argument("--no-eval", action="store_true", help="skip scoring the held-out scenes at the end")
    fix = p.add_mutually_exclusive_group()
    fix.add_argument("--fix-2d", dest="fix_2d", action="store_true", default=None,
                     help="freeze the pre-trained 2D net (default)")
    fix.add_argument("--no-fix-2d", dest="fix_2d", action="store_false",
                     help="train the 2D net end to end with the 3D network")
    p.add_argument("--no-2d", action="store_true", help="a 3D-only network (model.use_2d false): no frames")
    add_overrides(p, ThreeDMVTrainConfig, _OPTIONS + LOOP_OPTIONS)
    add_overrides(p, ThreeDMVModelConfig, _MODEL_OPTIONS, dest_prefix="model_", metavar_upper=True)
    p.set_defaults(func=_train)
    q = tsub.add_parser("threedmv-2d", help="pre-train the 3DMV 2D net on the frames' per-pixel labels")
    q.add_argument("--config", default=None, help="YAML of 2D training settings (Net2DTrainConfig fields)")
    q.add_argument("--no-resume", action="store_true", help="start over even if <out>/last.pt exists")
    add_overrides(q, Net2DTrainConfig, _2D_OPTIONS + LOOP_OPTIONS)
    q.set_defaults(func=_train_2d)


def _train(args) -> int:
    from sparse3d.tasks.threedmv.config import load_config
    from sparse3d.tasks.threedmv.train import train
    overrides = given_overrides(args, _OPTIONS + LOOP_OPTIONS)
    overrides["model"] = given_overrides(args, _MODEL_OPTIONS, dest_prefix="model_")
    if args.fix_2d is not None:
        overrides["fix_2d"] = args.fix_2d
    if args.no_2d:
        overrides["model"]["use_2d"] = False
    if args.no_eval:
        overrides["eval_at_end"] = False
    return run_train_command(args, load_config, train, overrides)


def _train_2d(args) -> int:
    from sparse3d.tasks.threedmv.config import load_2d_config
    from sparse3d.tasks.threedmv.pretrain2d import train_2d
    return run_train_command(args, load_2d_config, train_2d, given_overrides(args, _2D_OPTIONS + LOOP_OPTIONS))


def register_predict(psub) -> None:
    """Add ``threedmv`` to the ``sparse3d predict`` tasks."""
    p = psub.add_parser("threedmv", help="label whole scenes' mesh vertices with a 3DMV checkpoint (benchmark "
                                         "format)",
                        description="Run a `sparse3d train threedmv` checkpoint on the whole-scene crops of DATA "
                                    "(views chosen per tile of the training box's footprint) and write "
                                    "<OUT>/<scan>.txt (one nyu40 id per vertex, scored by `sparse3d eval "
                                    "segmentation`) and "
                                    "<OUT>/<scan>_voxels.npz. Resumable; exits 1 if any scene failed.")
    p.add_argument("checkpoint", help="a checkpoint of `sparse3d train threedmv`")
    p.add_argument("data", help="whole-scene crops whose _scene.json records each scan folder (with its frames)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--split", default=None, help="only this split of the dataset (default: every scene)")
    p.add_argument("--scenes", nargs="+", default=None, help="only these scene ids")
    p.add_argument("--device", type=device, default="cpu", help="torch device")
    p.add_argument("--overwrite", action="store_true", help="predict scans whose <scan>.txt exists already")
    p.add_argument("--tta", type=positive_int, default=1,
                   help="test-time views of the 3D network (1..8): the scene turned, flipped and shifted, class "
                        "probabilities averaged per voxel; the lifted features stay with their voxels")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_predict)


def _predict(args: argparse.Namespace) -> int:
    from sparse3d.tasks.threedmv.predict import predict_checkpoint
    try:
        r = predict_checkpoint(args.checkpoint, args.data, args.out, args.split, args.scenes, args.overwrite,
                               not args.quiet, args.device, args.tta)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"predicted {len(r['done'])} scans, skipped {len(r['skipped'])} (done before), failed {len(r['failed'])}"
          f" -> {args.out}")
    return report_failures(r["failed"])

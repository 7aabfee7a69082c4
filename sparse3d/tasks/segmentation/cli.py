"""`sparse3d train segmentation`: train the sparse residual U-Net on whole-scene crops
(``sparse3d preprocess SCANS DIR --recipe segmentation --placement whole --val-fraction 0.2``)::

    sparse3d train segmentation --data DIR --out RUN [--config configs/segmentation_default.yaml] ...
    torchrun --nproc-per-node 2 -m sparse3d train segmentation --data DIR --out RUN --device cuda

The held-out scenes (the dataset's val split, or --val-data) are scored at the end into RUN/metrics.json.
"""
from __future__ import annotations

import argparse
from typing import List

from sparse3d.tasks.segmentation.config import (BACKENDS, BOX_CENTRES, CLASS_WEIGHTING, FEATURE_CHANNELS,
                                                LR_SCHEDULES, NORMS, ROTATIONS, SegmentationModelConfig,
                                                SegmentationTrainConfig)
from sparse3d.train.cli_options import LOOP_OPTIONS, Option, add_overrides, given_overrides, run_train_command
from sparse3d.utils.argtypes import nonneg_int, positive_float, positive_int


def box_size(s: str) -> List[int]:
    """``X,Y,Z`` (ints >= 8, voxels) or ``whole`` (= [0, 0, 0], whole scenes)."""
    if s.strip().lower() == "whole":
        return [0, 0, 0]
    try:
        v = [int(x) for x in s.replace("x", ",").split(",")]
    except ValueError:
        v = []
    if len(v) != 3 or min(v) < 8:
        raise argparse.ArgumentTypeError(f"expected X,Y,Z (three ints >= 8, voxels) or 'whole', got {s!r}")
    return v


def widths(s: str) -> List[int]:
    """Comma-separated ints >= 1 (channels per level, finest first)."""
    try:
        v = [int(x) for x in s.split(",")]
    except ValueError:
        v = []
    if not v or min(v) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated ints >= 1 like 32,48,64,96, got {s!r}")
    return v


def in_features(s: str) -> List[str]:
    """Feature groups joined by '+' (e.g. color+height)."""
    v = [f for f in s.replace(",", "+").split("+") if f]
    if not v or any(f not in FEATURE_CHANNELS for f in v):
        raise argparse.ArgumentTypeError(f"expected groups from {list(FEATURE_CHANNELS)} joined by '+', "
                                         f"like color+height, got {s!r}")
    return v


# options of `sparse3d train segmentation` beyond the loop's (sparse3d.train.cli_options.LOOP_OPTIONS)
_OPTIONS: List[Option] = [
    ("data", str, None, "a sparse3d.crops dataset of whole scenes; its train split is trained on (written by "
                        "`sparse3d preprocess SCANS DIR --recipe segmentation --placement whole`)"),
    ("val_data", str, None, "held-out scenes scored at the end (every split of this dataset); none = the val "
                            "split of --data"),
    ("batch_size", positive_int, None, "global batch of boxes; each torchrun process takes batch-size / processes"),
    ("lr", positive_float, None, "AdamW learning rate"),
    ("lr_schedule", str, LR_SCHEDULES, "learning-rate schedule"),
    ("box", box_size, None, "training box X,Y,Z voxels, or 'whole' for whole scenes"),
    ("box_centre", str, BOX_CENTRES, "box around a voxel of a uniformly drawn class, or of any voxel"),
    ("rotate", str, ROTATIONS, "rotation about up: right angles (exact), any angle (re-quantized), none"),
    ("translate", nonneg_int, None, "each training box starts at a random 0..translate-1 voxels per axis "
                                    "(varies the alignment of the U-Net's stride-2 grids; 0 = off)"),
    ("class_weighting", str, CLASS_WEIGHTING, "class weights of the loss from the training label frequencies"),
    ("backend", str, BACKENDS, "sparse convolution backend"),
]
_MODEL_OPTIONS: List[Option] = [
    ("widths", widths, None, "U-Net channels per level, finest first"),
    ("in_features", in_features, None, "input features joined by '+': color, height, normals, tsdf"),
    ("blocks", positive_int, None, "residual blocks per level, encoder and decoder"),
    ("norm", str, NORMS, "normalisation: batch (BatchNorm) or sample (each scene or box over its own voxels, in "
                         "training and prediction alike; for --box whole)"),
]


def register_train(tsub) -> None:
    """Add ``segmentation`` to the ``sparse3d train`` tasks."""
    p = tsub.add_parser("segmentation", help="train the sparse U-Net for ScanNet-20 semantic segmentation "
                                             "(torchrun for several processes)")
    p.add_argument("--config", default=None,
                   help="YAML file of training settings, any subset (configs/segmentation_default.yaml in the "
                        "source tree lists them all); options given here override it (default: built-in defaults)")
    p.add_argument("--no-resume", action="store_true", help="start over even if <out>/last.pt exists")
    p.add_argument("--no-eval", action="store_true", help="skip scoring the held-out scenes at the end")
    add_overrides(p, SegmentationTrainConfig, _OPTIONS + LOOP_OPTIONS)
    add_overrides(p, SegmentationModelConfig, _MODEL_OPTIONS, dest_prefix="model_", metavar_upper=True)
    p.set_defaults(func=_train)


def _train(args) -> int:
    from sparse3d.tasks.segmentation.config import load_config
    from sparse3d.tasks.segmentation.train import train
    overrides = given_overrides(args, _OPTIONS + LOOP_OPTIONS)
    overrides["model"] = given_overrides(args, _MODEL_OPTIONS, dest_prefix="model_")
    if args.no_eval:
        overrides["eval_at_end"] = False
    return run_train_command(args, load_config, train, overrides)

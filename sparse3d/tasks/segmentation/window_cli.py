"""`sparse3d train segmentation-window`: the ScanNet paper's sliding-window baseline
(sparse3d.tasks.segmentation.window_train).

    sparse3d train segmentation-window --data CROPS --out runs/seg_window --steps 300 [--config FILE.yaml]
"""
from __future__ import annotations

from typing import List

from sparse3d.tasks.segmentation.window_train import WindowTrainConfig
from sparse3d.train.cli_options import LOOP_OPTIONS, Option, add_overrides, given_overrides, run_train_command
from sparse3d.utils.argtypes import positive_float, positive_int

# options of `sparse3d train segmentation-window` beyond the loop's (sparse3d.train.cli_options.LOOP_OPTIONS)
_OPTIONS: List[Option] = [
    ("data", str, None, "a sparse3d.crops dataset folder of whole-scene crops (`sparse3d preprocess SCANS DIR "
                        "--recipe segmentation --placement whole`); its train split is used"),
    ("batch_size", positive_int, None, "columns (31x31x62 windows) per step, global"),
    ("lr", positive_float, None, "Adam learning rate"),
    ("max_abs_tsdf", positive_float, None, "keep the samples' voxels with |tsdf| <= this, voxels"),
]


def register_train(tsub) -> None:
    """Add ``segmentation-window`` to the ``sparse3d train`` tasks."""
    p = tsub.add_parser("segmentation-window",
                        help="train the ScanNet paper's sliding-window baseline (dense 3D CNN, 31x31x62 windows "
                             "labelling their 62-voxel centre column)")
    p.add_argument("--config", default=None,
                   help="YAML file of training settings, any subset of WindowTrainConfig "
                        "(sparse3d/tasks/segmentation/window_train.py); options given here override it "
                        "(default: the built-in defaults)")
    p.add_argument("--no-resume", action="store_true", help="start over even if <out>/last.pt exists")
    p.add_argument("--augment", choices=("on", "off"), default=None,
                   help="random 90-degree rotations about up and flips of each window (default: on)")
    add_overrides(p, WindowTrainConfig, _OPTIONS + LOOP_OPTIONS)
    p.set_defaults(func=_train)


def _train(args) -> int:
    from sparse3d.tasks.segmentation.window_train import load_config, train
    overrides = given_overrides(args, _OPTIONS + LOOP_OPTIONS)
    if args.augment is not None:
        overrides["augment"] = args.augment == "on"
    return run_train_command(args, load_config, train, overrides)

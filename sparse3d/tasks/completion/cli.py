"""Commands of scene completion:

    sparse3d preprocess ROOT OUT --recipe completion [--placement whole]   scans -> crops (data_tools; sparse3d.crops)
    sparse3d prepare-completion --scans ROOT --out DIR [--crops DIR]   old name of the above (alias, prints a notice)
    sparse3d train completion --config configs/completion_default.yaml [--data DIR --out DIR ...]
    sparse3d predict completion --checkpoint last.pt --input SCENE --out DIR    mesh (.ply) + sparse grid (.npz)
    sparse3d eval completion --checkpoint last.pt --data DIR [--json metrics.json] [--threshold 0.5]
    sparse3d eval completion --checkpoint last.pt --data DIR --tune-threshold [--split val]   pick --threshold
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, List

from data_tools.recipes import RECIPES
from sparse3d.tasks.completion.config import CompletionTrainConfig
from sparse3d.utils.test_time_views import TTA_MAX
from sparse3d.train.cli_options import LOOP_OPTIONS, Option, add_overrides, given_overrides, run_train_command
from sparse3d.utils.argtypes import device, nonneg_int, positive_float, positive_int, probability, unit_fraction

if TYPE_CHECKING:
    from data_tools.frames import FrameSource

INPUT_FRACTION = RECIPES["completion"]["input_fraction"]
SEGMENTS = RECIPES["completion"]["segments"]
BACKENDS = ("native", "torch", "spconv")


# options of `sparse3d train completion` beyond the loop's (sparse3d.train.cli_options.LOOP_OPTIONS)
_OPTIONS: List[Option] = [
    ("data", str, None, "a sparse3d.crops dataset folder, its train split (written by "
                        "`sparse3d preprocess SCANS DIR --recipe completion`)"),
    ("batch_size", positive_int, None, "global batch; each torchrun process takes batch-size / processes"),
    ("lr", positive_float, None, "Adam learning rate"),
    ("backend", str, BACKENDS, "sparse convolution backend"),
    ("val_every", nonneg_int, None, "steps between validations on the data's val split (0 = none): val.jsonl, "
                                    "the loss plot's validation panel, best.pt (the best mean IoU)"),
]

ALIGN_UP_HELP = ("rotate the scan so the cameras' mean up direction is +z (for RGB-D folders whose world is not "
                 "z-up, e.g. 7-Scenes; models are trained on z-up rooms)")
NETWORK_ONLY_HELP = ("score the network's output alone (default: observed voxels keep their measured distance "
                     "and the network fills the unobserved space)")
DEVICE_HELP = "torch device: cpu, cuda or cuda:N"


def open_unit_fraction(s: str) -> float:
    """An occupancy probability threshold: a number in (0, 1)."""
    v = probability(s)
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {v}")
    return v


TTA_HELP = ("test-time views (1..8): the scene turned about up, mirrored and shifted on the grid, the network run "
            "on each and every voxel's occupancy probability averaged (a view that pruned it counts 0); 1 = one "
            "run. Costs N forward passes")
THRESHOLD_HELP = ("occupancy probability above which a finest-level voxel the network scores is surface (0.5: the "
                  "training's decision; higher: less invented surface, lower recall; pick one with "
                  "`sparse3d eval completion --tune-threshold`)")


def register(subparsers) -> None:
    """Add ``prepare-completion`` to the ``sparse3d`` sub-commands."""
    p = subparsers.add_parser("prepare-completion",
                              help="old name of `sparse3d preprocess ROOT OUT --recipe completion` (prints the new command)")
    p.add_argument("--scans", required=True, help="ScanNet root (scene folders with .sens) or one RGB-D folder")
    p.add_argument("--out", required=True, help="folder for whole-scene samples (+ manifest.json)")
    p.add_argument("--crops", default=None, help="also write training crops here")
    p.add_argument("--crop-size", type=positive_int, default=32, help="edge of a training crop, voxels")
    p.add_argument("--crops-per-scene", type=nonneg_int, default=16, help="training crops per scan (at most)")
    p.add_argument("--voxel-size", type=positive_float, default=0.05, help="metres per voxel")
    p.add_argument("--trunc", type=positive_float, default=3.0, help="truncation, voxels")
    p.add_argument("--input-fraction", type=unit_fraction, default=INPUT_FRACTION,
                   help="fraction of each scan's frames fused into the partial input")
    p.add_argument("--segments", type=positive_int, default=SEGMENTS,
                   help="the input frames form this many contiguous runs of the trajectory")
    p.add_argument("--pairs", type=positive_int, default=1,
                   help="self-supervised pairs per scan: each fuses its own seeded input and target frame subsets")
    p.add_argument("--target-fraction", type=unit_fraction, default=1.0,
                   help="fraction of frames fused into the target (1 = all; < 1 = a random subset per pair)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of the frame subsets and crops")
    p.add_argument("--align-up", action="store_true", help=ALIGN_UP_HELP)
    p.set_defaults(func=_prepare)



def register_predict(psub) -> None:
    """Add ``completion`` to the ``sparse3d predict`` tasks."""
    p = psub.add_parser("completion", help="complete a whole scene with a trained completion model")
    p.add_argument("--checkpoint", required=True, help="a completion checkpoint (last.pt of `sparse3d train completion`)")
    p.add_argument("--input", required=True,
                   help="a crop / whole-scene sample .npz of a sparse3d.crops dataset, such a dataset folder (every "
                        "crop), a ScanNet scene folder or an RGB-D folder")
    p.add_argument("--out", required=True, help="output folder: <name>_{input,prediction,target}.ply, "
                                                "<name>_prediction_grid.npz, <name>_metrics.json")
    p.add_argument("--device", type=device, default="cpu", help=DEVICE_HELP)
    p.add_argument("--input-fraction", type=unit_fraction, default=INPUT_FRACTION,
                   help="for scan folders: fraction of frames fused as input")
    p.add_argument("--segments", type=positive_int, default=SEGMENTS, help="for scan folders: runs of input frames")
    p.add_argument("--seed", type=nonneg_int, default=0, help="for scan folders: seed of the input frame subset")
    p.add_argument("--network-only", action="store_true", help=NETWORK_ONLY_HELP)
    p.add_argument("--threshold", type=open_unit_fraction, default=0.5, help=THRESHOLD_HELP)
    p.add_argument("--tta", type=int, default=1, choices=range(1, TTA_MAX + 1), metavar="N", help=TTA_HELP)
    p.add_argument("--align-up", action="store_true", help="for scan folders: " + ALIGN_UP_HELP)
    p.set_defaults(func=_predict)



def register_eval(esub) -> None:
    """Add ``completion`` to the ``sparse3d eval`` tasks."""
    p = esub.add_parser("completion", help="metrics of a completion model on whole-scene samples")
    p.add_argument("--checkpoint", required=True, help="a completion checkpoint (last.pt of `sparse3d train completion`)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="a sparse3d.crops dataset folder (every split is scored), e.g. whole-scene samples")
    src.add_argument("--rgbd", help="an RGB-D folder or ScanNet scene folder: input fused from a seeded "
                                    "--input-fraction of the frames, target from all; writes a table, JSON, meshes "
                                    "and a picture (input / prediction / target / errors) to --out")
    p.add_argument("--out", default=None, help="with --rgbd: output folder (default: out/rgbd_eval/<folder name>)")
    p.add_argument("--input-fraction", type=unit_fraction, default=None,
                   help=f"with --rgbd: fraction of frames fused as input (default: {INPUT_FRACTION})")
    p.add_argument("--segments", type=positive_int, default=None,
                   help=f"with --rgbd: runs of input frames (default: {SEGMENTS})")
    p.add_argument("--seed", type=nonneg_int, default=None, help="with --rgbd: seed of the input frame subset (default: 0)")
    p.add_argument("--align-up", action="store_true", help="with --rgbd: " + ALIGN_UP_HELP)
    p.add_argument("--json", default=None, help="write the metrics here (default: <data>/metrics.json; with "
                                                 "--tune-threshold <data>/threshold.json; with --rgbd "
                                                 "<out>/<folder name>_metrics.json)")
    p.add_argument("--split", default=None, help="score only this split of the dataset (default: every split; "
                                                 "with --tune-threshold: val)")
    p.add_argument("--device", type=device, default="cpu", help=DEVICE_HELP)
    p.add_argument("--network-only", action="store_true", help=NETWORK_ONLY_HELP)
    p.add_argument("--threshold", type=open_unit_fraction, default=0.5, help=THRESHOLD_HELP)
    p.add_argument("--tta", type=int, default=1, choices=range(1, TTA_MAX + 1), metavar="N", help=TTA_HELP)
    p.add_argument("--tune-threshold", action="store_true",
                   help="instead of scoring: try --thresholds on --split and choose the one with the highest mean "
                        "IoU whose mean chamfer distance is not worse than the raw input's (writes the table to --json)")
    p.add_argument("--thresholds", type=open_unit_fraction, nargs="+", default=None,
                   help="candidates of --tune-threshold (default: 0.3 0.4 0.5 0.6 0.7 0.8)")
    p.add_argument("--no-chamfer", action="store_true", help="skip the chamfer distance (no meshing: faster)")
    p.set_defaults(func=_eval)


def register_train(tsub) -> None:
    """Add ``completion`` to the ``sparse3d train`` tasks."""
    p = tsub.add_parser("completion", help="train sparse scene completion (torchrun for several processes)")
    p.add_argument("--config", default=None,
                   help="YAML file of training settings, any subset (configs/completion_default.yaml in the source "
                        "tree lists them all); options given here override it (default: the built-in defaults)")
    p.add_argument("--no-resume", action="store_true", help="start over even if <out>/last.pt exists")
    add_overrides(p, CompletionTrainConfig, _OPTIONS + LOOP_OPTIONS)
    p.set_defaults(func=_train)


def _open_frames(path: str, align_up: bool = False) -> FrameSource:
    """The `data_tools.frames.FrameSource` of a ScanNet scene folder or an RGB-D folder, gravity-aligned with
    align_up (`data_tools.up_align`)."""
    from data_tools.scannet import RGBDFolder, ScanNetScene
    from data_tools.up_align import UpAligned
    name = os.path.basename(os.path.normpath(path))
    frames = ScanNetScene(path) if os.path.isfile(os.path.join(path, name + ".sens")) else RGBDFolder(path)
    return UpAligned(frames) if align_up else frames


def _prepare(args) -> int:
    """`prepare-completion`: an alias of `sparse3d preprocess ROOT OUT --recipe completion` (whole scenes to
    --out, random crops to --crops); prints the equivalent command."""
    from data_tools import preprocess, recipe_config
    common = dict(voxel_size=args.voxel_size, trunc_voxels=args.trunc, input_fraction=args.input_fraction,
                  segments=args.segments, seed=args.seed, pairs=args.pairs, target_fraction=args.target_fraction,
                  align_up=args.align_up)
    flags = (f" --voxel-size {args.voxel_size} --trunc-voxels {args.trunc} --input-fraction {args.input_fraction}"
             f" --segments {args.segments} --seed {args.seed} --pairs {args.pairs} --target-fraction "
             f"{args.target_fraction}" + (" --align-up" if args.align_up else "") + " --val-fraction 0")
    runs = [(args.out, " --placement whole", recipe_config("completion", placement="whole", **common))]
    if args.crops and args.crops_per_scene > 0:
        runs.append((args.crops, f" --crop-size {args.crop_size},{args.crop_size},{args.crop_size} --crops-per-scene "
                     f"{args.crops_per_scene}", recipe_config("completion", crop_size=(args.crop_size,) * 3,
                                                              crops_per_scene=args.crops_per_scene, **common)))
    for out, extra, cfg in runs:
        print(f"note: prepare-completion is now: sparse3d preprocess {args.scans} {out} --recipe completion{extra}{flags}",
              file=sys.stderr)
        s = preprocess(args.scans, out, cfg, val_fraction=0.0)
        if s["failed"]:
            for sid, msg in sorted(s["failed"].items()):
                print(f"  {sid}: {msg}", file=sys.stderr)
            return 1
    return 0


def _train(args) -> int:
    from sparse3d.tasks.completion.config import load_config
    from sparse3d.tasks.completion.train import train
    return run_train_command(args, load_config, train, given_overrides(args, _OPTIONS + LOOP_OPTIONS))


def _fuse_scan(args, net, cfg, path: str):
    """A whole-scene Sample of a scan folder (:func:`sparse3d.tasks.completion.rgbd_eval.fuse_scan`)."""
    from sparse3d.tasks.completion.rgbd_eval import fuse_scan
    vs = getattr(net.config, "voxel_size", None)
    if vs is None:
        raise SystemExit(f"error: {args.checkpoint} does not record its training voxel size; fuse the scan with "
                         "`sparse3d preprocess SCANS OUT --recipe completion --placement whole --voxel-size V` and pass a "
                         "crop .npz as --input")
    print(f"fusing {path}: input from {args.input_fraction:.0%} of the frames (seed {args.seed}), target from all",
          file=sys.stderr)
    return fuse_scan(path, vs, cfg.model.trunc, args.input_fraction, args.segments, args.seed, args.align_up)


def _predict(args) -> int:
    from tqdm import tqdm

    from sparse3d.tasks.completion.checkpoint import load_model
    from sparse3d.tasks.completion.dataset import CompletionDataset, load_data_tools_crop
    from sparse3d.tasks.completion.evaluate import sample_name
    from sparse3d.tasks.completion.predict import (NoSurfaceError, evaluate_sample, format_table, write_json,
                                                   write_outputs)
    net, cfg = load_model(args.checkpoint, args.device)
    net.to(args.device)
    if os.path.isfile(args.input):
        items = [(os.path.splitext(os.path.basename(args.input))[0], lambda: load_data_tools_crop(args.input))]
    elif os.path.isfile(os.path.join(args.input, "manifest.json")):  # a sparse3d.crops dataset: every crop
        ds = CompletionDataset(args.input, split=None)
        items = [(sample_name(p, args.input).replace(os.sep, "_"), lambda i=i: ds[i]) for i, p in enumerate(ds.paths)]
    else:
        items = [(os.path.basename(os.path.normpath(args.input)), lambda: _fuse_scan(args, net, cfg, args.input))]
    rows, failed = {}, {}
    for name, load in tqdm(items, desc="predict completion", unit="sample", disable=len(items) < 2):
        sample = load()
        try:
            report, pred, ms = evaluate_sample(net, sample, args.device, cfg.occ_thresh, frontier=cfg.frontier,
                                               keep_observed=not args.network_only, threshold=args.threshold,
                                               tta=args.tta)
        except NoSurfaceError as e:
            failed[name] = str(e)
            tqdm.write(f"{name}: no meshes written: {e}")
            continue
        paths = write_outputs(args.out, name, sample, pred, ms, cfg.occ_thresh)
        write_json(os.path.join(args.out, f"{name}_metrics.json"), {**report, "threshold": args.threshold,
                                                                          "tta": args.tta})
        rows[name] = report
        if len(items) == 1:
            print("wrote " + ", ".join(paths.values()))
    if rows:
        print(format_table(rows))
    if len(items) > 1:
        print(f"wrote {len(rows)} predictions to {args.out}" + (f"; {len(failed)} without meshes" if failed else ""))
    return 0 if rows else 1


def _eval(args) -> int:
    from sparse3d.tasks.completion.checkpoint import load_model
    from sparse3d.tasks.completion.evaluate import (DEFAULT_THRESHOLDS, evaluate_dataset, format_tuning,
                                                    tune_threshold)
    from sparse3d.tasks.completion.predict import format_pr_table, format_reach_table, format_table, write_json
    rgbd_only = [f"--{k.replace('_', '-')}" for k in ("out", "input_fraction", "segments", "seed", "align_up")
                 if getattr(args, k) not in (None, False)]
    if args.rgbd:
        if args.tune_threshold or args.split:
            raise SystemExit("error: --tune-threshold and --split need --data (a dataset with splits), not --rgbd")
        from sparse3d.tasks.completion.rgbd_eval import run_rgbd_eval
        args.input_fraction = INPUT_FRACTION if args.input_fraction is None else args.input_fraction
        args.segments = SEGMENTS if args.segments is None else args.segments
        args.seed = 0 if args.seed is None else args.seed
        return run_rgbd_eval(args)
    if rgbd_only:
        raise SystemExit(f"error: {', '.join(rgbd_only)} only apply with --rgbd (with --data the dataset's samples "
                         "are already fused)")
    net, cfg = load_model(args.checkpoint, args.device)
    net.to(args.device)
    if args.tune_threshold:
        tuned = tune_threshold(net, args.data, args.split or "val", args.thresholds or DEFAULT_THRESHOLDS,
                               args.device, cfg.occ_thresh, cfg.frontier, not args.network_only, tta=args.tta)
        out = args.json or os.path.join(args.data, "threshold.json")
        write_json(out, {"checkpoint": args.checkpoint, **tuned})
        print(format_tuning(tuned))
        print(f"wrote {out}")
        return 0
    result = evaluate_dataset(net, args.data, args.split, args.device, cfg.occ_thresh, cfg.frontier,
                              not args.network_only, args.threshold, with_chamfer=not args.no_chamfer,
                              tta=args.tta)
    result.settings["checkpoint"] = args.checkpoint
    out = args.json or os.path.join(args.data, "metrics.json")
    write_json(out, result.to_json())
    print(format_table(result.rows))
    print(format_pr_table(result.rows))
    print(format_reach_table(result.rows))
    print(result.summary())
    print(f"wrote {out}")
    return 0 if result.rows else 1

"""Commands of scene completion:

    sparse3d preprocess ROOT OUT --recipe completion [--placement whole]   scans -> crops (data_tools; sparse3d.crops)
    sparse3d prepare-completion --scans ROOT --out DIR [--crops DIR]   old name of the above (alias, prints a notice)
    sparse3d train completion --config configs/completion_default.yaml [--data DIR --out DIR ...]
    sparse3d predict completion --checkpoint last.pt --input SCENE --out DIR    mesh (.ply) + sparse grid (.npz)
    sparse3d eval completion --checkpoint last.pt --data DIR [--json metrics.json]
"""
from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, List

from data_tools.recipes import RECIPES
from sparse3d.tasks.completion.config import CompletionTrainConfig
from sparse3d.train.cli_options import LOOP_OPTIONS, Option, add_overrides, given_overrides, run_train_command
from sparse3d.utils.argtypes import device, nonneg_int, positive_float, positive_int, unit_fraction

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
]

ALIGN_UP_HELP = ("rotate the scan so the cameras' mean up direction is +z (for RGB-D folders whose world is not "
                 "z-up, e.g. 7-Scenes; models are trained on z-up rooms)")
NETWORK_ONLY_HELP = ("score the network's output alone (default: observed voxels keep their measured distance "
                     "and the network fills the unobserved space)")
DEVICE_HELP = "torch device: cpu, cuda or cuda:N"


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
                   help="a crop / whole-scene sample .npz of a sparse3d.crops dataset, a ScanNet scene folder or an "
                        "RGB-D folder")
    p.add_argument("--out", required=True, help="output folder: <name>_{input,prediction,target}.ply, "
                                                "<name>_prediction_grid.npz, <name>_metrics.json")
    p.add_argument("--device", type=device, default="cpu", help=DEVICE_HELP)
    p.add_argument("--input-fraction", type=unit_fraction, default=INPUT_FRACTION,
                   help="for scan folders: fraction of frames fused as input")
    p.add_argument("--segments", type=positive_int, default=SEGMENTS, help="for scan folders: runs of input frames")
    p.add_argument("--seed", type=nonneg_int, default=0, help="for scan folders: seed of the input frame subset")
    p.add_argument("--network-only", action="store_true", help=NETWORK_ONLY_HELP)
    p.add_argument("--align-up", action="store_true", help="for scan folders: " + ALIGN_UP_HELP)
    p.set_defaults(func=_predict)



def register_eval(esub) -> None:
    """Add ``completion`` to the ``sparse3d eval`` tasks."""
    p = esub.add_parser("completion", help="metrics of a completion model on whole-scene samples")
    p.add_argument("--checkpoint", required=True, help="a completion checkpoint (last.pt of `sparse3d train completion`)")
    p.add_argument("--data", required=True, help="a sparse3d.crops dataset folder (every split is scored), e.g. "
                                                 "whole-scene samples")
    p.add_argument("--json", default=None, help="write the metrics here (default: <data>/metrics.json)")
    p.add_argument("--device", type=device, default="cpu", help=DEVICE_HELP)
    p.add_argument("--network-only", action="store_true", help=NETWORK_ONLY_HELP)
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


def _predict(args) -> int:
    from sparse3d.tasks.completion.dataset import load_data_tools_crop, sample_from_crop
    from sparse3d.tasks.completion.checkpoint import load_model
    from sparse3d.tasks.completion.predict import evaluate_sample, format_table, write_json, write_outputs
    net, cfg = load_model(args.checkpoint, args.device)
    net.to(args.device)
    if os.path.isfile(args.input):
        sample, name = load_data_tools_crop(args.input), os.path.splitext(os.path.basename(args.input))[0]
    else:
        vs = getattr(net.config, "voxel_size", None)
        if vs is None:
            raise SystemExit(f"error: {args.checkpoint} does not record its training voxel size; fuse the scan with "
                             "`sparse3d preprocess SCANS OUT --recipe completion --placement whole --voxel-size V` and pass a "
                             "crop .npz as --input")
        from data_tools import build_crops, recipe_config
        name = os.path.basename(os.path.normpath(args.input))
        crops: list = []
        build_crops(_open_frames(args.input, args.align_up), name, recipe_config(
            "completion", placement="whole", voxel_size=vs, trunc_voxels=cfg.model.trunc,
            input_fraction=args.input_fraction, segments=args.segments, seed=args.seed),
            sink=lambda _, crop: crops.append(crop))
        sample = sample_from_crop(crops[0])
        name = os.path.basename(os.path.normpath(args.input))
    report, pred, ms = evaluate_sample(net, sample, args.device, cfg.occ_thresh, frontier=cfg.frontier,
                                       keep_observed=not args.network_only)
    paths = write_outputs(args.out, name, sample, pred, ms, cfg.occ_thresh)
    write_json(os.path.join(args.out, f"{name}_metrics.json"), report)
    print(format_table({name: report}))
    print("wrote " + ", ".join(paths.values()))
    return 0


def _eval(args) -> int:
    from sparse3d.tasks.completion.dataset import CompletionDataset
    from sparse3d.tasks.completion.checkpoint import load_model
    from sparse3d.tasks.completion.predict import evaluate_sample, format_table, write_json
    net, cfg = load_model(args.checkpoint, args.device)
    net.to(args.device)
    ds = CompletionDataset(args.data, split=None)
    rows = {}
    for i, p in enumerate(ds.paths):
        name = os.path.splitext(os.path.relpath(p, args.data))[0]
        rows[name], _, _ = evaluate_sample(net, ds[i], args.device, cfg.occ_thresh,
                                           frontier=cfg.frontier, keep_observed=not args.network_only)
    out = args.json or os.path.join(args.data, "metrics.json")
    write_json(out, rows)
    print(format_table(rows))
    print(f"wrote {out}")
    return 0

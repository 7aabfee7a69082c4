"""Command line: `sparse3d preprocess` / `sparse3d generate` (and `python -m data_tools ...`)."""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from sparse3d.utils.argtypes import (fraction, report_failures, int_triple, nonneg_float, nonneg_int, polish_help, positive_float,
                                     positive_int, probability, unit_fraction)


# CLI option -> CropConfig field; each option defaults to None = the recipe's value (shown in --help)
_FIELDS = {"voxel_size": "voxel_size", "trunc_voxels": "trunc_voxels", "crop_size": "crop_size",
           "crop_stride": "crop_stride", "levels": "n_levels", "input_frames": "input_frames",
           "drop_prob": "drop_prob", "drop_chunk": "drop_chunk", "input_fraction": "input_fraction",
           "segments": "segments", "known": "known", "placement": "placement", "crops_per_scene": "crops_per_scene",
           "min_surface": "min_surface", "pad_to": "pad_to", "frame_skip": "frame_skip", "depth_max": "depth_max",
           "min_target_voxels": "min_target_voxels", "min_input_voxels": "min_input_voxels", "target": "target",
           "seed": "seed", "target_fraction": "target_fraction", "pairs": "pairs"}


def dask_target(text: str) -> str:
    """argparse type of --dask: a scheduler address or local:N (checked by data_tools.pipeline.parse_dask)."""
    from .pipeline import parse_dask
    try:
        parse_dask(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("dask: ")) from e
    return text


def config_from_args(args):
    """The CropConfig of `args.recipe` with every option the user gave applied (ValueError if one is unused).
    With grid placement an unset --crop-stride is half the crop size."""
    from .recipes import RECIPES, recipe_config
    over = {f: getattr(args, a) for a, f in _FIELDS.items() if getattr(args, a, None) is not None}
    if args.align_up:
        over["align_up"] = True
    base = RECIPES[args.recipe]
    if over.get("placement", base["placement"]) == "grid" and "crop_stride" not in over:
        over["crop_stride"] = tuple(int(s) // 2 for s in over.get("crop_size", base["crop_size"]))
    return recipe_config(args.recipe, **over)


def _cmd_preprocess(args) -> int:
    from .pipeline import preprocess
    try:
        cfg = config_from_args(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        s = preprocess(args.root, args.out, cfg, workers=args.workers, split_dir=args.split_dir,
                       val_fraction=args.val_fraction, split_seed=cfg.seed, progress=not args.quiet,
                       force=args.force, label_tsv=args.label_tsv, dask=args.dask)
    except ValueError as e:
        if args.dask is None or not str(e).startswith("dask:"):
            raise
        print(f"error: --{e}", file=sys.stderr)  # no scheduler at the address, dask not installed
        return 2
    print(f"preprocess ({cfg.recipe} recipe): {len(s['done'])} done, {len(s['skipped'])} skipped (already done), "
          f"{len(s['failed'])} failed in {s['seconds']} s; manifest: {s['manifest']}")
    return report_failures(s["failed"])


def _cmd_generate(args) -> int:
    from tqdm import tqdm
    if args.n_scenes < 1 or args.frames < 1:
        print(f"error: --n-scenes and --frames must be >= 1, got {args.n_scenes}, {args.frames}", file=sys.stderr)
        return 2
    if args.sensor != "ideal" and args.depth_noise > 0:
        print(f"error: --depth-noise {args.depth_noise} is for the ideal sensor; --sensor {args.sensor} has its own "
              f"noise model", file=sys.stderr)
        return 2
    dirs = [_gen_one(args, k) for k in tqdm(range(args.n_scenes), desc="generate", unit="scene", disable=args.quiet)]
    print(f"generate: {len(dirs)} scenes in {args.out}")
    return 0


def _gen_one(args, k: int) -> str:
    """Scene k: same ids, seeds and room types as generate_scenes(out, n, seed, first_index=...)."""
    from .synthetic.writer import generate_scene, scene_room_type
    return generate_scene(args.out, f"scene{args.first_index + k:04d}_00", args.seed * 1000 + k, args.frames,
                          args.width, args.height, args.depth_noise, room_type=scene_room_type(args.first_index + k),
                          appearance=args.appearance, sensor=args.sensor, content=args.content)


def _d(field: str) -> str:
    """'(labels: X, completion: Y)' for a CropConfig field."""
    from .recipes import RECIPES
    from .config import CropConfig

    def show(v):
        return ",".join(str(x) for x in v) if isinstance(v, (tuple, list)) else str(v)
    vals = [f"{r}: {show(RECIPES[r].get(field, getattr(CropConfig, field)))}" for r in sorted(RECIPES)]
    return "(default " + "; ".join(vals) + ")"


def add_preprocess_parser(sub) -> None:
    from .config import CHOICES
    p = sub.add_parser(
        "preprocess", help="ScanNet root / RGB-D folder -> training crops (+ manifest.json), for any task",
        description="Fuse RGB-D scans into sparse TSDFs, label them from the mesh and cut crops in the sparse3d.crops "
                    "format (docs/dataset_format.md). --recipe labels: segmentation/SG-NN crops on a grid; "
                    "--recipe completion: the scene-completion pairs that `sparse3d train completion` and "
                    "`sparse3d demo` use (add --placement whole for whole-scene evaluation samples); --recipe "
                    "segmentation: whole complete scans with per-voxel ScanNet-20 labels. Every option "
                    "left out takes the recipe's value; an option the recipe's settings do not use is an error. "
                    "Resumable (also after kill -9); exits 1 if any scene failed. --dask runs the scenes on a Dask "
                    "cluster (docs/reliability.md).")
    p.add_argument("root", help="ScanNet root (scene folders or scans/), one scene folder, or RGB-D folder(s)")
    p.add_argument("out", help="output dataset folder")
    from .recipes import RECIPES
    p.add_argument("--recipe", choices=tuple(RECIPES), default="labels",
                   help="which samples: labels (SG-NN-style crops), completion (input/target pairs) or segmentation "
                        "(complete scans, whole scenes) (default labels)")
    run = p.add_mutually_exclusive_group()
    run.add_argument("--workers", type=positive_int, default=1, help="parallel processes, >= 1 (default 1)")
    run.add_argument("--dask", type=dask_target, default=None, metavar="SCHEDULER_ADDRESS|local:N",
                     help="run one task per scene on a Dask distributed cluster: the scheduler's address (e.g. "
                          "tcp://host:8786, from `dask scheduler`; ROOT and OUT must be at the same paths on every "
                          "worker) or local:N (a local cluster of N worker processes); needs dask[distributed]")
    p.add_argument("--voxel-size", type=positive_float, default=None, help="metres " + _d("voxel_size"))
    p.add_argument("--trunc-voxels", type=positive_float, default=None, help="tsdf truncation in voxels " + _d("trunc_voxels"))
    p.add_argument("--crop-size", type=int_triple, default=None, help="voxels X,Y,Z " + _d("crop_size"))
    p.add_argument("--crop-stride", type=int_triple, default=None,
                   help="grid placement: voxels X,Y,Z (default crop-size/2)")
    p.add_argument("--levels", type=positive_int, default=None, help="hierarchy levels " + _d("n_levels"))
    p.add_argument("--input-frames", choices=CHOICES["input_frames"], default=None,
                   help="input frames: drop (runs dropped at random), subset (contiguous runs) or all (input = target) "
                        + _d("input_frames"))
    p.add_argument("--drop-prob", type=probability, default=None,
                   help="input-frames drop: probability a run of frames is left out of the input " + _d("drop_prob"))
    p.add_argument("--drop-chunk", type=positive_int, default=None,
                   help="input-frames drop: frames are dropped in runs of this many " + _d("drop_chunk"))
    p.add_argument("--input-fraction", type=unit_fraction, default=None,
                   help="input-frames subset: fraction of frames fused into the input " + _d("input_fraction"))
    p.add_argument("--segments", type=positive_int, default=None,
                   help="input-frames subset: the input frames form this many contiguous runs " + _d("segments"))
    p.add_argument("--known", choices=CHOICES["known"], default=None,
                   help="known masks: camera visibility or the fused voxels " + _d("known"))
    p.add_argument("--placement", choices=CHOICES["placement"], default=None,
                   help="crops on a strided grid, at random, or one crop per whole scene " + _d("placement"))
    p.add_argument("--crops-per-scene", type=positive_int, default=None,
                   help="placement random: crops drawn per scene " + _d("crops_per_scene"))
    p.add_argument("--min-surface", type=nonneg_int, default=None,
                   help="placement random: keep crops with at least this many target surface voxels " + _d("min_surface"))
    p.add_argument("--pad-to", type=positive_int, default=None,
                   help="placement random/whole: scene grid dims rounded up to a multiple of this " + _d("pad_to"))
    p.add_argument("--frame-skip", type=positive_int, default=None, help="use every k-th frame " + _d("frame_skip"))
    p.add_argument("--depth-max", type=positive_float, default=None, help="metres " + _d("depth_max"))
    p.add_argument("--min-target-voxels", type=nonneg_int, default=None,
                   help="placement grid: skip crops with fewer target voxels " + _d("min_target_voxels"))
    p.add_argument("--min-input-voxels", type=nonneg_int, default=None,
                   help="placement grid: skip crops with fewer input voxels " + _d("min_input_voxels"))
    p.add_argument("--target", choices=CHOICES["target"], default=None, help="target from all frames or mesh "
                   + _d("target"))
    p.add_argument("--target-fraction", type=unit_fraction, default=None,
                   help="fuse the target from a seeded random subset of this fraction of the frames, the input from "
                        "those (self-supervised pairs) " + _d("target_fraction"))
    p.add_argument("--pairs", type=positive_int, default=None,
                   help="samples per scan, <scene>_pair<q>, each with its own seeded frames " + _d("pairs"))
    p.add_argument("--align-up", action="store_true",
                   help="rotate each scan so the cameras' mean up is +z (RGB-D folders whose world is not z-up, e.g. "
                        "7-Scenes)")
    p.add_argument("--split-dir", default=None, help="folder with scannetv2_{train,val,test}.txt")
    p.add_argument("--val-fraction", type=fraction, default=0.2,
                   help="hash split for unlisted scenes, in [0, 1) (default 0.2)")
    p.add_argument("--seed", type=int, default=None, help="seed of every random choice, combined with the scene id "
                   + _d("seed"))
    p.add_argument("--force", action="store_true", help="reprocess scenes that are already done")
    p.add_argument("--label-tsv", default=None,
                   help="scannetv2-labels.combined.tsv: labels scenes that have aggregation + segs json but no "
                        ".labels.ply (default: <root>/scannetv2-labels.combined.tsv if present)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_preprocess)


def add_generate_parser(sub) -> None:
    p = sub.add_parser("generate", help="write synthetic rooms in the exact ScanNet layout",
                       description="Write synthetic rooms (mesh, labels, an RGB-D trajectory as .sens) in the exact "
                                   "ScanNet layout, ready for `sparse3d preprocess`.")
    p.add_argument("out", help="output folder (scene folders are created in it)")
    p.add_argument("--n-scenes", type=positive_int, default=6, help="rooms to write")
    p.add_argument("--frames", type=positive_int, default=100, help="RGB-D frames per scene")
    p.add_argument("--width", type=positive_int, default=320, help="frame width, pixels")
    p.add_argument("--height", type=positive_int, default=240, help="frame height, pixels")
    p.add_argument("--depth-noise", type=nonneg_float, default=0.0, help="metres at 1 m (scales with z^2)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of the rooms (scene k uses seed * 1000 + k)")
    p.add_argument("--first-index", type=nonneg_int, default=0, help="scene ids start at scene<first-index>_00")
    p.add_argument("--appearance", choices=("plain", "textured"), default="plain",
                   help="plain: one colour per part; textured: per-instance textures finer than a voxel and "
                        "lighting that varies per frame (3DMV's data; same geometry, depth and poses)")
    p.add_argument("--sensor", choices=("ideal", "kinect"), default="ideal",
                   help="ideal depth (plus --depth-noise), or kinect: noise, disparity quantisation, dropouts at "
                        "edges, grazing angles and dark or specular surfaces, pose drift (data_tools/synthetic/sensor.py)")
    p.add_argument("--content", choices=("basic", "cluttered"), default="basic",
                   help="room content: basic, or cluttered (open shelves, lamps, coat racks, small objects)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_generate)


def register(subparsers) -> None:
    """Hook for sparse3d/cli.py: adds `preprocess` and `generate`."""
    add_preprocess_parser(subparsers)
    add_generate_parser(subparsers)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_tools", description="sparse3d data tools")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = polish_help(parser).parse_args(argv)
    return int(args.func(args) or 0)

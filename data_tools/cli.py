"""Command line: `sparse3d preprocess` / `sparse3d generate` (and `python -m data_tools ...`)."""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from sparse3d.argtypes import fraction, positive_int


def _triple(s: str):
    v = [int(x) for x in s.replace("x", ",").split(",")]
    if len(v) != 3:
        raise argparse.ArgumentTypeError(f"expected three integers like 32,32,64, got {s!r}")
    return tuple(v)


def _cmd_preprocess(args) -> int:
    from .pipeline import preprocess
    from .scene_crops import CropConfig
    cfg = CropConfig(voxel_size=args.voxel_size, trunc_voxels=args.trunc_voxels, crop_size=args.crop_size,
                     crop_stride=args.crop_stride or tuple(s // 2 for s in args.crop_size), n_levels=args.levels,
                     drop_prob=args.drop_prob, drop_chunk=args.drop_chunk, frame_skip=args.frame_skip, depth_max=args.depth_max,
                     min_target_voxels=args.min_target_voxels, min_input_voxels=args.min_input_voxels,
                     target=args.target, seed=args.seed)
    try:
        cfg.validate()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    s = preprocess(args.root, args.out, cfg, workers=args.workers, split_dir=args.split_dir,
                   val_fraction=args.val_fraction, split_seed=args.seed, progress=not args.quiet, force=args.force,
                   label_tsv=args.label_tsv)
    print(f"preprocess: {len(s['done'])} done, {len(s['skipped'])} skipped (already done), "
          f"{len(s['failed'])} failed in {s['seconds']} s; manifest: {s['manifest']}")
    if s["failed"]:
        print("failed scenes:", file=sys.stderr)
        for sid, msg in sorted(s["failed"].items()):
            print(f"  {sid}: {msg}", file=sys.stderr)
        return 1
    return 0


def _cmd_generate(args) -> int:
    from tqdm import tqdm
    if args.n_scenes < 1 or args.frames < 1:
        print(f"error: --n-scenes and --frames must be >= 1, got {args.n_scenes}, {args.frames}", file=sys.stderr)
        return 2
    dirs = [_gen_one(args, k) for k in tqdm(range(args.n_scenes), desc="generate", unit="scene", disable=args.quiet)]
    print(f"generate: {len(dirs)} scenes in {args.out}")
    return 0


def _gen_one(args, k: int) -> str:
    """Scene k: same ids and seeds as generate_scenes(out, n, seed, first_index=...)."""
    from .synthetic.writer import generate_scene
    return generate_scene(args.out, f"scene{args.first_index + k:04d}_00", args.seed * 1000 + k, args.frames,
                          args.width, args.height, args.depth_noise)


def add_preprocess_parser(sub) -> None:
    p = sub.add_parser("preprocess", help="ScanNet root / RGB-D folder -> training crops (+ manifest.json)",
                       description="Fuse RGB-D scans into sparse TSDFs, label them from the mesh and cut "
                                   "training crops. Resumable; exits 1 if any scene failed.")
    p.add_argument("root", help="ScanNet root (scene folders or scans/), one scene folder, or RGB-D folder(s)")
    p.add_argument("out", help="output dataset folder")
    p.add_argument("--workers", type=positive_int, default=1, help="parallel processes, >= 1 (default 1)")
    p.add_argument("--voxel-size", type=float, default=0.04, help="metres (default 0.04)")
    p.add_argument("--trunc-voxels", type=float, default=3.0, help="tsdf truncation in voxels (default 3)")
    p.add_argument("--crop-size", type=_triple, default=(32, 32, 64), help="voxels X,Y,Z (default 32,32,64)")
    p.add_argument("--crop-stride", type=_triple, default=None, help="voxels X,Y,Z (default crop-size/2)")
    p.add_argument("--levels", type=int, default=3, help="hierarchy levels (default 3)")
    p.add_argument("--drop-prob", type=float, default=0.5, help="probability a run of frames is left out of the input")
    p.add_argument("--drop-chunk", type=int, default=10, help="frames are dropped in runs of this many")
    p.add_argument("--frame-skip", type=int, default=1, help="use every k-th frame")
    p.add_argument("--depth-max", type=float, default=5.0, help="metres")
    p.add_argument("--min-target-voxels", type=int, default=200, help="skip crops with fewer target voxels")
    p.add_argument("--min-input-voxels", type=int, default=50, help="skip crops with fewer input voxels")
    p.add_argument("--target", choices=("fusion", "mesh"), default="fusion", help="target from all frames or mesh")
    p.add_argument("--split-dir", default=None, help="folder with scannetv2_{train,val,test}.txt")
    p.add_argument("--val-fraction", type=fraction, default=0.2,
                   help="hash split for unlisted scenes, in [0, 1) (default 0.2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="reprocess scenes that are already done")
    p.add_argument("--label-tsv", default=None,
                   help="scannetv2-labels.combined.tsv: labels scenes that have aggregation + segs json but no "
                        ".labels.ply (default: <root>/scannetv2-labels.combined.tsv if present)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_preprocess)


def add_generate_parser(sub) -> None:
    p = sub.add_parser("generate", help="write synthetic rooms in the exact ScanNet layout")
    p.add_argument("out", help="output folder (scene folders are created in it)")
    p.add_argument("--n-scenes", type=int, default=6)
    p.add_argument("--frames", type=int, default=100, help="RGB-D frames per scene")
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--depth-noise", type=float, default=0.0, help="metres at 1 m (scales with z^2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--first-index", type=int, default=0, help="scene ids start at scene<first-index>_00")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_generate)


def register(subparsers) -> None:
    """Hook for sparse3d/cli.py: adds `preprocess` and `generate`."""
    add_preprocess_parser(subparsers)
    add_generate_parser(subparsers)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_tools", description="sparse3d data tools")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)

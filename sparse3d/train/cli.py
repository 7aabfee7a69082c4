"""Commands of scene completion:

    sparse3d prepare-completion --scans ROOT --out DIR [--crops DIR]   scans -> whole-scene + crop samples
    sparse3d train completion --config configs/completion_default.yaml [--data DIR --out DIR ...]
    sparse3d predict --checkpoint last.pt --input SCENE --out DIR    mesh (.ply) + sparse grid (.npz)
    sparse3d eval --checkpoint last.pt --data DIR [--json metrics.json]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import List

from sparse3d.data.completion_prep import INPUT_FRACTION, SEGMENTS

_TRAIN_OVERRIDES = [("data", str), ("out", str), ("init", str), ("seed", int), ("steps", int),
                    ("batch_size", int), ("lr", float), ("device", str), ("backend", str),
                    ("checkpoint_every", int), ("threads", int), ("amp", str)]


ALIGN_UP_HELP = ("rotate the scan so the cameras' mean up direction is +z (for RGB-D folders whose world is not "
                 "z-up, e.g. 7-Scenes; models are trained on z-up rooms)")
NETWORK_ONLY_HELP = ("score the network's output alone (default: observed voxels keep their measured distance "
                     "and the network fills the unobserved space)")


def register(subparsers) -> None:
    p = subparsers.add_parser("prepare-completion", help="fuse RGB-D scans into completion samples")
    p.add_argument("--scans", required=True, help="ScanNet root (scene folders with .sens) or one RGB-D folder")
    p.add_argument("--out", required=True, help="folder for whole-scene samples (+ manifest.json)")
    p.add_argument("--crops", default=None, help="also write training crops here")
    p.add_argument("--crop-size", type=int, default=32)
    p.add_argument("--crops-per-scene", type=int, default=16)
    p.add_argument("--voxel-size", type=float, default=0.05)
    p.add_argument("--trunc", type=float, default=3.0, help="truncation, voxels")
    p.add_argument("--input-fraction", type=float, default=INPUT_FRACTION)
    p.add_argument("--segments", type=int, default=SEGMENTS,
                   help=f"the input frames form this many contiguous runs (default {SEGMENTS})")
    p.add_argument("--pairs", type=int, default=1,
                   help="self-supervised pairs per scan: each fuses its own seeded input and target frame subsets")
    p.add_argument("--target-fraction", type=float, default=1.0,
                   help="fraction of frames fused into the target (1 = all; < 1 = a random subset per pair)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--align-up", action="store_true", help=ALIGN_UP_HELP)
    p.set_defaults(func=_prepare)

    p = subparsers.add_parser("predict", help="complete a whole scene with a trained completion model")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--input", required=True, help="a completion sample .npz, a ScanNet scene folder or an RGB-D folder")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--device", default="cpu")
    p.add_argument("--input-fraction", type=float, default=INPUT_FRACTION, help="for scan folders: frames fused as input")
    p.add_argument("--segments", type=int, default=SEGMENTS, help="for scan folders: runs of input frames")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--network-only", action="store_true", help=NETWORK_ONLY_HELP)
    p.add_argument("--align-up", action="store_true", help="for scan folders: " + ALIGN_UP_HELP)
    p.set_defaults(func=_predict)

    p = subparsers.add_parser("eval", help="metrics of a completion model on whole-scene samples")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True, help="folder of whole-scene samples")
    p.add_argument("--json", default=None, help="write the metrics here (default <data>/metrics.json)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--network-only", action="store_true", help=NETWORK_ONLY_HELP)
    p.set_defaults(func=_eval)


def register_train(tsub) -> None:
    p = tsub.add_parser("completion", help="train sparse scene completion (torchrun for several processes)")
    p.add_argument("--config", default=None, help="YAML file (defaults: configs/completion_default.yaml)")
    p.add_argument("--no-resume", action="store_true", help="start over even if <out>/last.pt exists")
    for name, typ in _TRAIN_OVERRIDES:
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=typ, default=None)
    p.set_defaults(func=_train)


def _open_frames(path: str, align_up: bool = False):
    """The frame source of a ScanNet scene folder or an RGB-D folder (see sparse3d.data.up_align)."""
    from data_tools.scannet import RGBDFolder, ScanNetScene
    from sparse3d.data.up_align import UpAligned
    name = os.path.basename(os.path.normpath(path))
    frames = ScanNetScene(path) if os.path.isfile(os.path.join(path, name + ".sens")) else RGBDFolder(path)
    return UpAligned(frames) if align_up else frames


def scan_folders(root: str) -> List[str]:
    from data_tools.scannet.scene import find_scenes
    if os.path.isfile(os.path.join(root, "camera-intrinsics.txt")):
        return [root]
    scenes = find_scenes(root)
    if not scenes:
        raise ValueError(f"--scans {root!r}: no ScanNet scene folders (<name>/<name>.sens) and no RGB-D folder")
    return scenes


def _prepare(args) -> int:
    from tqdm import tqdm

    from sparse3d.data.completion_dataset import save_sample, write_manifest
    from sparse3d.data.completion_prep import random_crops, scan_sample
    os.makedirs(args.out, exist_ok=True)
    names, crop_names = [], []
    scenes = scan_folders(args.scans)
    import numpy as np
    jobs = [(d, q) for d in scenes for q in range(args.pairs)]
    for k, (d, q) in enumerate(tqdm(jobs, desc="prepare completion")):
        sid = os.path.basename(os.path.normpath(d)) + (f"_pair{q:02d}" if args.pairs > 1 else "")
        frames = _open_frames(d, args.align_up)
        seed = args.seed * 1000 + k
        target_idx = None
        if args.target_fraction < 1:
            rng = np.random.default_rng([seed, 1])
            target_idx = np.sort(rng.choice(len(frames), max(1, int(args.target_fraction * len(frames))),
                                            replace=False)).tolist()
        s = scan_sample(frames, args.voxel_size, args.trunc, args.input_fraction, args.segments, seed,
                        target_indices=target_idx)
        save_sample(os.path.join(args.out, sid + ".npz"), s)
        names.append(sid + ".npz")
        if args.crops:
            os.makedirs(args.crops, exist_ok=True)
            for j, c in enumerate(random_crops(s, args.crop_size, args.crops_per_scene, seed)):
                n = f"{sid}_crop{j:03d}.npz"
                save_sample(os.path.join(args.crops, n), c)
                crop_names.append(n)
    write_manifest(args.out, names, voxel_size=args.voxel_size, trunc=args.trunc)
    if args.crops:
        write_manifest(args.crops, crop_names, voxel_size=args.voxel_size, trunc=args.trunc)
    print(f"wrote {len(names)} scene samples to {args.out}" + (f", {len(crop_names)} crops to {args.crops}"
                                                               if args.crops else ""))
    return 0


def _train(args) -> int:
    from sparse3d.train.config import load_config
    from sparse3d.train.loop import train
    cfg = load_config(args.config, {k: getattr(args, k) for k, _ in _TRAIN_OVERRIDES})
    if not cfg.data:
        print("error: no training data: pass --data DIR or set data: in the config", file=sys.stderr)
        return 2
    t0 = time.time()
    logs = train(cfg, resume=not args.no_resume)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"trained {cfg.steps} steps in {time.time() - t0:.1f}s; last loss {logs.get('loss', float('nan')):.4f}; "
              f"checkpoint {os.path.join(cfg.out, 'last.pt')}")
    return 0


def _predict(args) -> int:
    from sparse3d.data.completion_dataset import load_sample
    from sparse3d.data.completion_prep import scan_sample
    from sparse3d.train.checkpoint import load_model
    from sparse3d.train.predict import evaluate_sample, format_table, write_json, write_outputs
    net, cfg = load_model(args.checkpoint, args.device)
    net.to(args.device)
    if os.path.isfile(args.input):
        sample, name = load_sample(args.input), os.path.splitext(os.path.basename(args.input))[0]
    else:
        vs = getattr(net.config, "voxel_size", None)
        if vs is None:
            raise SystemExit(f"error: {args.checkpoint} does not record its training voxel size; fuse the scan with "
                             "`sparse3d prepare-completion` at that voxel size and pass the .npz as --input")
        sample = scan_sample(_open_frames(args.input, args.align_up), voxel_size=vs, trunc=cfg.trunc,
                             input_fraction=args.input_fraction, segments=args.segments, seed=args.seed)
        name = os.path.basename(os.path.normpath(args.input))
    report, pred, ms = evaluate_sample(net, sample, args.device, cfg.occ_thresh, frontier=cfg.frontier,
                                       keep_observed=not args.network_only)
    paths = write_outputs(args.out, name, sample, pred, ms, cfg.occ_thresh)
    write_json(os.path.join(args.out, f"{name}_metrics.json"), report)
    print(format_table({name: report}))
    print("wrote " + ", ".join(paths.values()))
    return 0


def _eval(args) -> int:
    from sparse3d.data.completion_dataset import CompletionDataset
    from sparse3d.train.checkpoint import load_model
    from sparse3d.train.predict import evaluate_sample, format_table, write_json
    net, cfg = load_model(args.checkpoint, args.device)
    net.to(args.device)
    ds = CompletionDataset(args.data)
    rows = {}
    for p in ds.paths:
        name = os.path.splitext(os.path.basename(p))[0]
        rows[name], _, _ = evaluate_sample(net, ds[ds.paths.index(p)], args.device, cfg.occ_thresh,
                                           frontier=cfg.frontier, keep_observed=not args.network_only)
    out = args.json or os.path.join(args.data, "metrics.json")
    write_json(out, rows)
    print(format_table(rows))
    print(f"wrote {out}")
    return 0

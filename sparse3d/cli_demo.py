"""`sparse3d demo`: the main job, end to end on built-in synthetic scenes (or a real ScanNet root).

    generate rooms (ScanNet layout) -> fuse input (~30% of frames) and target (all frames)
    -> training crops -> train sparse completion -> predict held-out scenes
    -> IoU / L1 / chamfer table (raw input vs target, prediction vs target) -> meshes + PNGs

Everything lands under ``--out``; every stage is skipped when its outputs exist (resumable).
"""
from __future__ import annotations

import argparse
import os
import time
from typing import Dict, List

from sparse3d.data.completion_prep import INPUT_FRACTION, SEGMENTS


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="the main job: synthetic scenes -> train completion -> metrics + pictures")
    p.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    p.add_argument("--scannet-root", default=None,
                   help="use the scenes of a real ScanNet root (folders <scene>/<scene>.sens) instead of synthetic ones")
    p.add_argument("--quick", action="store_true", help="tiny run (about 2 minutes) to check the set-up")
    p.add_argument("--train-scenes", type=int, default=None)
    p.add_argument("--test-scenes", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--input-fraction", type=float, default=INPUT_FRACTION,
                   help=f"fraction of each scan's frames fused into the partial input (default {INPUT_FRACTION})")
    p.add_argument("--segments", type=int, default=SEGMENTS,
                   help=f"the input frames form this many contiguous runs of the trajectory (default {SEGMENTS})")
    p.add_argument("--device", default="cpu")
    p.add_argument("--config", default=None, help="training YAML (default: built-in demo settings)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch/OpenMP threads (default 1: on a small shared CPU, more threads oversubscribe "
                        "the cores and a training step gets >10x slower)")
    p.set_defaults(func=run_demo)


def _log(msg: str, t0: float) -> None:
    print(f"[demo {time.time() - t0:6.1f}s] {msg}", flush=True)


def _prepare(scene_dirs: List[str], out: str, crops: str | None, seed: int, voxel_size: float,
             crops_per_scene: int, crop_size: int, input_fraction: float, segments: int) -> List[str]:
    from tqdm import tqdm

    from data_tools.scannet import ScanNetScene
    from sparse3d.data.completion_dataset import save_sample, write_manifest
    from sparse3d.data.completion_prep import random_crops, scan_sample
    os.makedirs(out, exist_ok=True)
    names, crop_names = [], []
    for k, d in enumerate(tqdm(scene_dirs, desc=f"fuse {os.path.basename(out)}")):
        sid = os.path.basename(os.path.normpath(d))
        path = os.path.join(out, sid + ".npz")
        sample = None
        if not os.path.isfile(path):
            sc = ScanNetScene(d)
            sample = scan_sample(sc, voxel_size=voxel_size, input_fraction=input_fraction, segments=segments,
                                 seed=seed * 1000 + k)
            sc.close()
            save_sample(path, sample)
        names.append(sid + ".npz")
        if crops:
            os.makedirs(crops, exist_ok=True)
            if sample is None:
                from sparse3d.data.completion_dataset import load_sample
                sample = load_sample(path)
            for j, c in enumerate(random_crops(sample, crop_size, crops_per_scene, seed * 1000 + k)):
                n = f"{sid}_crop{j:03d}.npz"
                if not os.path.isfile(os.path.join(crops, n)):
                    save_sample(os.path.join(crops, n), c)
                crop_names.append(n)
    write_manifest(out, names, voxel_size=voxel_size)
    if crops:
        write_manifest(crops, crop_names, voxel_size=voxel_size)
    return [os.path.join(out, n) for n in names]


def run_demo(args: argparse.Namespace) -> int:
    import torch

    from sparse3d.data.completion_dataset import load_sample
    from sparse3d.train.checkpoint import load_model
    from sparse3d.train.config import load_config
    from sparse3d.train.loop import train
    from sparse3d.train.predict import evaluate_sample, format_table, write_json, write_outputs
    from sparse3d.vis.render import render_side_by_side

    t0 = time.time()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    quick = args.quick
    n_train = args.train_scenes or (3 if quick else 16)
    n_test = args.test_scenes or (1 if quick else 2)
    steps = args.steps or (60 if quick else 2000)
    voxel_size = 0.05
    torch.set_num_threads(args.threads)

    # 1. scenes
    if args.scannet_root:
        from data_tools.scannet.scene import find_scenes
        dirs = find_scenes(args.scannet_root)
        if len(dirs) < 2:
            raise SystemExit(f"error: --scannet-root {args.scannet_root!r} holds {len(dirs)} scene(s); need >= 2")
        n_test = min(n_test, max(1, len(dirs) // 5))
        train_dirs, test_dirs = dirs[:-n_test][:n_train], dirs[-n_test:]
        _log(f"ScanNet root {args.scannet_root}: {len(train_dirs)} train / {len(test_dirs)} test scenes", t0)
    else:
        from data_tools.synthetic import generate_scenes
        scans = os.path.join(out, "scans")
        _log(f"generating {n_train} train + {n_test} held-out synthetic rooms (ScanNet layout) in {scans}", t0)
        train_dirs = generate_scenes(scans, n_train, seed=args.seed, n_frames=60, width=160, height=120)
        test_dirs = generate_scenes(scans, n_test, seed=args.seed + 1, n_frames=60, width=160, height=120,
                                    first_index=100)
    # 2. fuse + crops
    _log(f"fusing input (~{args.input_fraction:.0%} of frames, {args.segments} runs) and target (all frames) "
         "TSDFs at 5 cm", t0)
    frames = dict(input_fraction=args.input_fraction, segments=args.segments)
    _prepare(train_dirs, os.path.join(out, "samples", "train"), os.path.join(out, "samples", "crops"), args.seed,
             voxel_size, 24, 32, **frames)
    test_paths = _prepare(test_dirs, os.path.join(out, "samples", "test"), None, args.seed + 1, voxel_size, 0, 32,
                          **frames)
    # 3. train
    cfg = load_config(args.config, {"data": os.path.join(out, "samples", "crops"), "out": os.path.join(out, "run"),
                                    "steps": steps, "seed": args.seed, "device": args.device,
                                    "threads": args.threads,
                                    **({} if args.config else {"batch_size": 4, "lr": 2e-3,
                                                               "checkpoint_every": 50})})
    _log(f"training {cfg.steps} steps (batch {cfg.batch_size}, channels {cfg.channels}) -> {cfg.out}", t0)
    t_train = time.time()
    train(cfg, resume=True)
    train_s = time.time() - t_train
    # 4. predict + metrics + pictures
    net, cfg = load_model(os.path.join(cfg.out, "last.pt"), args.device)
    net.to(args.device)
    pred_dir = os.path.join(out, "predictions")
    rows: Dict[str, Dict] = {}
    for p in test_paths:
        name = os.path.splitext(os.path.basename(p))[0]
        sample = load_sample(p)
        report, pred, ms = evaluate_sample(net, sample, args.device, cfg.occ_thresh, frontier=cfg.frontier)
        write_outputs(pred_dir, name, sample, pred, ms, cfg.occ_thresh)
        png = os.path.join(out, "pictures", f"{name}.png")
        render_side_by_side([(k, *ms[k]) for k in ("input", "prediction", "target")], png, clip_top=0.25)
        rows[name] = report
        _log(f"{name}: IoU input {report['input']['iou']:.3f} -> prediction {report['prediction']['iou']:.3f}; "
             f"picture {png}", t0)
    write_json(os.path.join(out, "metrics.json"), {"scenes": rows, "train_seconds": train_s,
                                                  "total_seconds": time.time() - t0, "steps": cfg.steps})
    print()
    print("held-out scenes: raw input vs target and prediction vs target")
    print(format_table(rows))
    print(f"\nmeshes + sparse grids: {pred_dir}\npictures: {os.path.join(out, 'pictures')}\n"
          f"loss curve: {os.path.join(cfg.out, 'loss.png')}\nmetrics: {os.path.join(out, 'metrics.json')}\n"
          f"total {time.time() - t0:.0f}s (training {train_s:.0f}s)")
    return 0

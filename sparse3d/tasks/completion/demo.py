"""`sparse3d demo completion`: the main job, end to end on built-in synthetic scenes (or a real ScanNet root).

    generate rooms (ScanNet layout) -> fuse input (~30% of frames) and target (all frames)
    -> training samples: whole rooms (default) or random crops (``--train-on crops``) (+ the val split: one more
    room) -> train sparse completion (validated every VAL_EVERY steps: val.jsonl, best.pt) -> predict held-out scenes
    -> IoU / L1 / chamfer table (raw input vs target, prediction vs target) -> meshes + PNGs

Everything lands under ``--out``; every stage is skipped when its outputs exist (resumable).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from typing import Dict, List, Sequence

from data_tools.recipes import RECIPES
from sparse3d.tasks.completion.model import DECODERS
from sparse3d.utils.test_time_views import TTA_MAX
from sparse3d.utils.argtypes import device, nonneg_int, positive_int, unit_fraction


INPUT_FRACTION = RECIPES["completion"]["input_fraction"]
SEGMENTS = RECIPES["completion"]["segments"]
# validation of the main job: every VAL_EVERY steps on up to VAL_CROPS samples of VAL_SCENES extra rooms (crops with
# --train-on crops, ~1.6 s a validation; with rooms the one val room whole; ~2% of the training time on 2 cores)
VAL_SCENES, VAL_EVERY, VAL_CROPS = 1, 500, 8
# what the network trains on, and its defaults (steps, batch size): whole rooms (one a step) or 24 random 32^3 crops
# a room (four a step). At the same training time whole rooms give held-out IoU 0.759 against 0.720 on six rooms
# (docs/completion.md, "Training on whole rooms"): the network sees the room-scale context it must complete at
# prediction.
TRAIN_ON = {"rooms": dict(steps=700, batch_size=1, placement="whole", data="rooms", run="run"),
            "crops": dict(steps=2000, batch_size=4, placement="random", data="crops", run="run_crops")}
# test-time views of the held-out predictions: 1 (on six synthetic held-out rooms 8 views lower the whole-room model's
# IoU from 0.759 to 0.696 while cutting L1 and the chamfer distance; on the real scan they cut the chamfer penalty:
# docs/completion.md)
DEMO_TTA = 1


def register(dsub) -> None:
    """Add ``completion`` to the ``sparse3d demo`` tasks."""
    p = dsub.add_parser("completion", help="the main job: synthetic scenes -> train completion -> metrics + pictures")
    p.add_argument("--out", default="out/demo", help="output folder (stages whose outputs exist are skipped)")
    p.add_argument("--scannet-root", default=None,
                   help="use the scenes of a real ScanNet root (folders <scene>/<scene>.sens) instead of synthetic ones")
    p.add_argument("--quick", action="store_true", help="tiny run (about 2 minutes) to check the set-up")
    p.add_argument("--train-scenes", type=positive_int, default=None,
                   help="training scenes (default: 16; 3 with --quick)")
    p.add_argument("--test-scenes", type=positive_int, default=None,
                   help="held-out scenes (default: 2; 1 with --quick)")
    p.add_argument("--train-on", choices=sorted(TRAIN_ON), default="rooms",
                   help="train on whole rooms (one a step; samples/rooms, run/) or on 24 random 32^3 crops a room "
                        "(four a step; samples/crops, run_crops/)")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="training steps (default: 700 with --train-on rooms, 2000 with crops; 60 with --quick)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of the scenes, frame subsets, crops and training")
    p.add_argument("--input-fraction", type=unit_fraction, default=INPUT_FRACTION,
                   help="fraction of each scan's frames fused into the partial input")
    p.add_argument("--segments", type=positive_int, default=SEGMENTS,
                   help="the input frames form this many contiguous runs of the trajectory")
    p.add_argument("--sensor", choices=("ideal", "kinect"), default="ideal",
                   help="depth of the synthetic frames: ideal, or kinect (noise, quantisation, dropouts, pose drift "
                        "fitted to the 7-Scenes sample: data_tools/synthetic/sensor.py)")
    p.add_argument("--content", choices=("basic", "cluttered"), default="basic",
                   help="synthetic room content: basic, or cluttered (open shelves, lamps, small objects)")
    p.add_argument("--decoder", choices=DECODERS, default=None,
                   help="the network's decoder: sparse (generative transposed convs + pruning) or octree (octree "
                        "generation, OGN / O-CNN); default: the config's (sparse)")
    p.add_argument("--device", type=device, default="cpu", help="torch device: cpu, cuda or cuda:N")
    p.add_argument("--tta", type=int, default=DEMO_TTA, choices=range(1, TTA_MAX + 1), metavar="N",
                   help=f"test-time views of the held-out predictions (1..{TTA_MAX}; default {DEMO_TTA}): the scene "
                        "turned about up, mirrored and shifted, each voxel's occupancy probability averaged; 1 = one run")
    p.add_argument("--config", default=None, help="training YAML (default: the built-in demo settings)")
    p.add_argument("--threads", type=positive_int, default=_cores(),
                   help="torch/OpenMP threads (default: the cores this process may use; on the 2-core machine 2 "
                        "threads train 1.35x faster than 1; fewer when other jobs share the cores, since more "
                        "threads than free cores oversubscribe them)")
    p.set_defaults(func=run_demo)


def _cores() -> int:
    """Cores this process may run on (its CPU affinity; os.cpu_count() where affinity is unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _check_run_data(run: str, data: str) -> None:
    """Refuse to resume a run folder whose config.json names other training data (an earlier demo's crops run
    would otherwise be taken as finished)."""
    path = os.path.join(run, "config.json")
    if not os.path.isfile(path):
        return
    with open(path) as f:
        found = json.load(f).get("data")
    if found is not None and os.path.abspath(found) != os.path.abspath(data):
        raise SystemExit(f"error: {run} holds a run trained on {found}, not on {data}; use another --out or remove "
                         f"{run} to train again")


def _log(msg: str, t0: float) -> None:
    print(f"[demo {time.time() - t0:6.1f}s] {msg}", flush=True)


def _prepare(scene_dirs: List[str], out: str, seed: int, input_fraction: float, segments: int,
             placement: str, val_dirs: Sequence[str] = ()) -> List[str]:
    """Preprocess the scenes with data_tools' completion recipe (resumable) -> the crop paths of the train
    split, by scene; ``val_dirs``: further scenes whose crops form the val split (a scannetv2_val.txt)."""
    from data_tools import load_manifest, preprocess, recipe_config
    from sparse3d.utils.atomic_io import atomic_write_text
    root = os.path.dirname(os.path.normpath(scene_dirs[0]))
    cfg = recipe_config("completion", seed=seed, input_fraction=input_fraction, segments=segments,
                        placement=placement)
    split_dir = None
    if val_dirs:
        split_dir = os.path.join(out, "splits")
        os.makedirs(split_dir, exist_ok=True)
        atomic_write_text(os.path.join(split_dir, "scannetv2_val.txt"),
                          "".join(os.path.basename(os.path.normpath(d)) + "\n" for d in val_dirs))
    s = preprocess(root, out, cfg, scenes=[os.path.basename(os.path.normpath(d)) for d in [*scene_dirs, *val_dirs]],
                   val_fraction=0.0, split_dir=split_dir)
    if s["failed"]:
        raise SystemExit("error: preprocessing failed for " + "; ".join(f"{k}: {v}" for k, v in s["failed"].items()))
    return [os.path.join(out, f) for f in load_manifest(out)["splits"]["train"]]


def run_demo(args: argparse.Namespace) -> int:
    import torch

    from sparse3d.tasks.completion.dataset import load_data_tools_crop
    from sparse3d.tasks.completion.checkpoint import load_model
    from sparse3d.tasks.completion.config import load_config
    from sparse3d.tasks.completion.train import train
    from sparse3d.tasks.completion.predict import evaluate_sample, format_table, write_json, write_outputs
    from sparse3d.vis.render import render_side_by_side

    t0 = time.time()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    quick = args.quick
    n_train = args.train_scenes or (3 if quick else 16)
    n_test = args.test_scenes or (1 if quick else 2)
    mode = TRAIN_ON[args.train_on]
    steps = args.steps or (60 if quick else mode["steps"])
    torch.set_num_threads(args.threads)
    stages: Dict[str, float] = {}  # stage -> seconds (where the time goes; printed and in metrics.json)
    t_stage = time.time()

    # 1. scenes
    if args.scannet_root:
        from data_tools.scannet.scene import find_scenes
        dirs = find_scenes(args.scannet_root)
        if len(dirs) < 2:
            raise SystemExit(f"error: --scannet-root {args.scannet_root!r} holds {len(dirs)} scene(s); need >= 2")
        n_test = min(n_test, max(1, len(dirs) // 5))
        train_dirs, test_dirs = dirs[:-n_test][:n_train], dirs[-n_test:]
        val_dirs: List[str] = []  # a real root's scenes all train (or test)
        _log(f"ScanNet root {args.scannet_root}: {len(train_dirs)} train / {len(test_dirs)} test scenes", t0)
    else:
        from data_tools.synthetic import generate_scenes
        scans = os.path.join(out, "scans")
        _log(f"generating {n_train} train + {n_test} held-out + {VAL_SCENES} validation synthetic rooms (ScanNet layout) "
             f"in {scans}", t0)
        look = dict(n_frames=60, width=160, height=120, sensor=args.sensor, content=args.content)
        train_dirs = generate_scenes(scans, n_train, seed=args.seed, **look)
        test_dirs = generate_scenes(scans, n_test, seed=args.seed + 1, first_index=100, **look)
        val_dirs = generate_scenes(scans, VAL_SCENES, seed=args.seed + 2, first_index=200, **look)
    stages["scenes"] = time.time() - t_stage
    t_stage = time.time()
    # 2. fuse: training rooms (whole or cut into crops), held-out rooms whole
    _log(f"fusing input (~{args.input_fraction:.0%} of frames, {args.segments} runs) and target (all frames) "
         "TSDFs at 5 cm", t0)
    frames = dict(input_fraction=args.input_fraction, segments=args.segments)
    data = os.path.join(out, "samples", mode["data"])
    _prepare(train_dirs, data, args.seed, placement=mode["placement"], val_dirs=val_dirs, **frames)
    test_paths = _prepare(test_dirs, os.path.join(out, "samples", "test"), args.seed + 1, placement="whole", **frames)
    stages["preprocess"] = time.time() - t_stage
    # 3. train
    cfg = load_config(args.config, {"data": data, "out": os.path.join(out, mode["run"]),
                                    "steps": steps, "seed": args.seed, "device": args.device,
                                    "threads": args.threads, "val_every": VAL_EVERY, "val_crops": VAL_CROPS,
                                    **({"model": {"decoder": args.decoder}} if args.decoder else {}),
                                    **({} if args.config else {"batch_size": mode["batch_size"], "lr": 2e-3,
                                                               "checkpoint_every": 50})})
    _check_run_data(cfg.out, cfg.data)
    _log(f"training {cfg.steps} steps (batch {cfg.batch_size}, channels {list(cfg.model.channels)}) -> {cfg.out}", t0)
    t_train = time.time()
    train(cfg, resume=True)
    train_s = stages["train"] = time.time() - t_train
    t_stage = time.time()
    # 4. predict + metrics + pictures
    net, cfg = load_model(os.path.join(cfg.out, "last.pt"), args.device)
    net.to(args.device)
    pred_dir = os.path.join(out, "predictions")
    rows: Dict[str, Dict] = {}
    for p in test_paths:
        name = os.path.basename(os.path.dirname(p))  # the scene id: <test>/<scene>/crop_*.npz
        sample = load_data_tools_crop(p)
        report, pred, ms = evaluate_sample(net, sample, args.device, cfg.occ_thresh, frontier=cfg.frontier,
                                           tta=args.tta)
        write_outputs(pred_dir, name, sample, pred, ms, cfg.occ_thresh)
        png = os.path.join(out, "pictures", f"{name}.png")
        render_side_by_side([(k, *ms[k]) for k in ("input", "prediction", "target")], png, clip_top=0.25)
        rows[name] = report
        _log(f"{name}: IoU input {report['input']['iou']:.3f} -> prediction {report['prediction']['iou']:.3f}; "
             f"picture {png}", t0)
    stages["predict + pictures"] = time.time() - t_stage
    write_json(os.path.join(out, "metrics.json"), {"scenes": rows, "train_seconds": train_s,
                                                  "total_seconds": time.time() - t0, "steps": cfg.steps,
                                                  "tta": args.tta, "threads": args.threads, "val_every": VAL_EVERY,
                                                  "train_on": args.train_on, "batch_size": cfg.batch_size,
                                                  "val_crops": VAL_CROPS,
                                                  "stage_seconds": {k: round(v, 1) for k, v in stages.items()}})
    print()
    print(f"held-out scenes: raw input vs target and prediction ({args.tta} test-time view"
          f"{'s' if args.tta > 1 else ''}) vs target")
    print(format_table(rows))
    print(f"\nmeshes + sparse grids: {pred_dir}\npictures: {os.path.join(out, 'pictures')}\n"
          f"loss curve: {os.path.join(cfg.out, 'loss.png')}\nmetrics: {os.path.join(out, 'metrics.json')}\n"
          f"total {time.time() - t0:.0f}s with {args.threads} thread(s): "
          + ", ".join(f"{k} {v:.0f}s" for k, v in stages.items()))
    return 0

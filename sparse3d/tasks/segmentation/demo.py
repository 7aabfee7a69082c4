"""`sparse3d demo segmentation`: semantic segmentation end to end on built-in synthetic rooms.

    generate rooms of five types holding the 20 ScanNet benchmark classes (ScanNet layout)
    -> fuse every frame into whole-scene crops at 5 cm (recipe "segmentation")
    -> train the sparse residual U-Net and the ScanNet paper's sliding-window dense baseline
    -> predict the held-out rooms (per-vertex `<scene>.txt` submissions) -> score them as the benchmark does
    -> per-class IoU table, whole-scene inference time and memory of both models, pictures

Everything lands under ``--out``; every stage is skipped when its outputs exist (resumable).
"""
from __future__ import annotations

import argparse
import os
import time
from typing import Dict, List, Optional, Tuple

from sparse3d.utils.argtypes import device, nonneg_int, positive_int

FRAMES, WIDTH, HEIGHT = 60, 160, 120  # per room: what the completion demo renders too
TRAIN_SCENES = 120  # training rooms (docs/segmentation.md: 60 -> 120 with 2x the steps)
HELD_OUT_FIRST = 100  # held-out rooms are scene0100_00, scene0101_00, ...
EXTRA_FIRST = 1000  # training rooms past the 100th are scene1000_00, ... (scene0100_00 on are held out)
MAX_TEST_SCENES = EXTRA_FIRST - HELD_OUT_FIRST  # more held-out rooms would reach scene1000_00


def room_plan(n_train: int, n_test: int, seed: int) -> Dict[str, List[Tuple[int, int, int]]]:
    """{"train": [...], "test": [...]}: the ``generate_scenes`` calls (first_index, count, seed) of the demo's
    rooms. Training rooms are scene0000_00.. (seed), and past the 100th scene1000_00.. (seed + 2); held-out rooms
    are scene0100_00.. (seed + 1). Scene numbers never repeat, and neither do room seeds (generate_scenes gives
    room k of a call the seed ``seed * 1000 + k``), so no held-out room is a training room. ValueError when
    n_test > 900 (the held-out rooms would reach scene1000_00)."""
    if n_test > MAX_TEST_SCENES:
        raise ValueError(f"test_scenes must be <= {MAX_TEST_SCENES}, got {n_test}")
    train = [(0, min(n_train, HELD_OUT_FIRST), seed)]
    if n_train > HELD_OUT_FIRST:
        train.append((EXTRA_FIRST, n_train - HELD_OUT_FIRST, seed + 2))
    return {"train": train, "test": [(HELD_OUT_FIRST, n_test, seed + 1)]}


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _test_scenes(s: str) -> int:
    """--test-scenes: an integer 1..900 (:func:`room_plan`)."""
    v = positive_int(s)
    if v > MAX_TEST_SCENES:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_TEST_SCENES} held-out rooms, got {v}")
    return v


def register(dsub) -> None:
    """Add ``segmentation`` to the ``sparse3d demo`` tasks."""
    p = dsub.add_parser("segmentation",
                        help="segmentation end to end: 20-class synthetic rooms -> sparse U-Net and the "
                             "sliding-window baseline -> ScanNet benchmark scores + pictures")
    p.add_argument("--out", default="out/segmentation_demo", help="output folder (stages whose outputs exist are skipped)")
    p.add_argument("--quick", action="store_true", help="tiny run (a few minutes) to check the set-up")
    p.add_argument("--train-scenes", type=positive_int, default=None, help=f"training rooms (default: {TRAIN_SCENES}; 5 with --quick)")
    p.add_argument("--test-scenes", type=_test_scenes, default=None,
                   help="held-out rooms, at most 900 (default: 5; 2 with --quick)")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="U-Net training steps (default: the config's; 40 with --quick)")
    p.add_argument("--window-steps", type=nonneg_int, default=None,
                   help="sliding-window baseline training steps, 0 = no baseline (default: the config's; 30 with "
                        "--quick)")
    p.add_argument("--config", default=None, help="U-Net training YAML (default: configs/segmentation_default.yaml's "
                                                  "values, built in)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of the rooms and the training")
    p.add_argument("--tta", type=positive_int, default=8,
                   help="also score the U-Net with this many test-time views (right-angle turns, flips, shifts; "
                        "class probabilities averaged), as a third column; 1 = only the plain U-Net (default: 8)")
    p.add_argument("--no-vote", action="store_true",
                   help="leave out the column where each segment of a room's segs json takes the class of "
                        "the last U-Net column by summed class probabilities (`predict segmentation --vote-segments`)")
    p.add_argument("--device", type=device, default="cpu", help="torch device: cpu, cuda or cuda:N")
    p.add_argument("--threads", type=positive_int, default=_cores(),
                   help="torch/OpenMP threads (the cores this process may use)")
    p.set_defaults(func=run_demo)


def _log(msg: str, t0: float) -> None:
    print(f"[demo {time.time() - t0:6.1f}s] {msg}", flush=True)


def _preprocess(scene_dirs: List[str], out: str, seed: int) -> None:
    """Whole-scene crops of the scenes (recipe "segmentation"; resumable)."""
    from data_tools import preprocess, recipe_config
    root = os.path.dirname(os.path.normpath(scene_dirs[0]))
    s = preprocess(root, out, recipe_config("segmentation", seed=seed),
                   scenes=[os.path.basename(os.path.normpath(d)) for d in scene_dirs], val_fraction=0.0)
    if s["failed"]:
        raise SystemExit("error: preprocessing failed for " + "; ".join(f"{k}: {v}" for k, v in s["failed"].items()))


def _predict(label_fn, data: str, out: str, max_abs_tsdf: float, vote_segments: bool) -> Dict[str, Dict]:
    """Per-vertex submissions of every held-out scene, with the whole-scene inference time and peak memory
    of each scene (scenes already written are measured again: the cost is part of the table); vote_segments: see
    predict_dataset."""
    from sparse3d.tasks.segmentation.predict import predict_dataset
    from sparse3d.utils.measure import measure
    costs: Dict[str, Dict] = {}

    def timed(sample):
        labels, cost = measure(lambda: label_fn(sample))
        costs[sample.scene_id] = cost
        return labels

    r = predict_dataset(data, out, timed, overwrite=True, progress=False, max_abs_tsdf=max_abs_tsdf,
                        vote_segments=vote_segments)
    if r["failed"]:
        raise SystemExit("error: prediction failed for " + "; ".join(f"{k}: {v}" for k, v in r["failed"].items()))
    return costs


def _median(xs: List[float]) -> Optional[float]:
    import statistics
    return float(statistics.median(xs)) if xs else None


def run_demo(args: argparse.Namespace) -> int:
    import torch

    from data_tools.scannet.benchmark_export import export_gt
    from data_tools.scannet.labels import SCANNET20_NAMES
    from data_tools.synthetic import generate_scenes
    from sparse3d.tasks.segmentation import window_train
    from sparse3d.tasks.segmentation.benchmark import evaluate, write_report
    from sparse3d.tasks.segmentation.config import load_config
    from sparse3d.tasks.segmentation.predict import checkpoint_label_fn
    from sparse3d.tasks.segmentation.train import train
    from sparse3d.utils.atomic_io import atomic_write_json

    t0 = time.time()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    n_train = args.train_scenes or (5 if args.quick else TRAIN_SCENES)
    n_test = args.test_scenes or (2 if args.quick else 5)
    torch.set_num_threads(args.threads)
    stages: Dict[str, float] = {}
    t_stage = time.time()

    # 1. rooms
    scans = os.path.join(out, "scans")
    _log(f"generating {n_train} train + {n_test} held-out rooms (bedroom, living room, office, kitchen, bathroom; "
         f"ScanNet layout) in {scans}", t0)
    plan = room_plan(n_train, n_test, args.seed)
    train_dirs, test_dirs = ([d for first, n, seed in plan[part]
                              for d in generate_scenes(scans, n, seed=seed, n_frames=FRAMES, width=WIDTH,
                                                       height=HEIGHT, first_index=first)]
                             for part in ("train", "test"))
    stages["scenes"] = time.time() - t_stage
    t_stage = time.time()
    # 2. whole-scene crops
    _log("fusing every frame of each room into whole-scene crops at 5 cm (recipe segmentation)", t0)
    train_data, test_data = os.path.join(out, "data", "train"), os.path.join(out, "data", "test")
    _preprocess(train_dirs, train_data, args.seed)
    _preprocess(test_dirs, test_data, args.seed + 1)
    test_ids = [os.path.basename(os.path.normpath(d)) for d in test_dirs]
    gt_dir = os.path.join(out, "ground_truth")
    export_gt(scans, gt_dir, scenes=test_ids, progress=False)
    stages["preprocess"] = time.time() - t_stage
    # 3. the sparse U-Net
    overrides = {"data": train_data, "val_data": test_data, "out": os.path.join(out, "runs", "unet"),
                 "seed": args.seed, "device": args.device, "threads": args.threads}
    if args.steps or args.quick:
        overrides["steps"] = args.steps or 40
    cfg = load_config(args.config, overrides)
    _log(f"training the sparse U-Net {cfg.steps} steps (widths {list(cfg.model.widths)}, boxes {cfg.box}, "
         f"batch {cfg.batch_size}) -> {cfg.out}", t0)
    t_stage = time.time()
    train(cfg, resume=True)
    stages["train U-Net"] = time.time() - t_stage
    # 4. the sliding-window baseline
    wcfg = None
    window_steps = args.window_steps if args.window_steps is not None else (30 if args.quick else None)
    if window_steps != 0:
        w_over = {"data": train_data, "out": os.path.join(out, "runs", "window"), "seed": args.seed,
                  "device": args.device, "threads": args.threads}
        if window_steps:
            w_over["steps"] = window_steps
        wcfg = window_train.load_config(None, w_over)
        _log(f"training the sliding-window baseline (31x31x62 windows -> the 62-voxel centre column) {wcfg.steps} "
             f"steps -> {wcfg.out}", t0)
        t_stage = time.time()
        window_train.train(wcfg, resume=True)
        stages["train baseline"] = time.time() - t_stage
    # 5. predict + score: (checkpoint, test-time views, segment vote, predictions folder) per model
    unet = os.path.join(cfg.out, "last.pt")
    models = {"sparse U-Net": (unet, 1, False, "segmentation")}
    if args.tta > 1:
        models[f"U-Net, {args.tta} views"] = (unet, args.tta, False, f"segmentation_tta{args.tta}")
    if not args.no_vote:
        models["+ segment vote"] = (unet, args.tta, True, f"segmentation_tta{args.tta}_vote")
    if wcfg is not None:
        models["sliding window"] = (os.path.join(wcfg.out, "last.pt"), 1, False, "segmentation-window")
    results: Dict[str, Dict] = {}
    for name, (ckpt, tta, vote, folder) in models.items():
        t_stage = time.time()
        label_fn, task, band = checkpoint_label_fn(ckpt, args.device, tta=tta, scores=vote)
        pred_dir = os.path.join(out, "predictions", folder)
        _log(f"{name}: predicting {len(test_ids)} held-out rooms -> {pred_dir}", t0)
        costs = _predict(label_fn, test_data, pred_dir, band, vote)
        scores = evaluate(pred_dir, gt_dir, scenes=test_ids)
        report = write_report(scores, os.path.join(out, "scores", folder))
        results[name] = {"task": task, "folder": folder, "tta": tta, "vote_segments": vote, "scores": scores,
                         "report": report, "costs": costs,
                         "seconds_median": _median([c["seconds"] for c in costs.values()]),
                         "peak_mib_median": _median([c["peak_rss_mib"] for c in costs.values()
                                                     if c.get("peak_rss_mib") is not None])}
        stages[f"predict {name}"] = time.time() - t_stage
    # 6. pictures: ground truth | U-Net | baseline on each held-out room's mesh
    t_stage = time.time()
    from sparse3d.vis.label_render import render_labels
    from sparse3d.tasks.segmentation.view_cli import SCANNET20_PALETTE
    from sparse3d.vis.labels import mesh_panel, read_id_file
    from sparse3d.vis.render import read_mesh
    palette = SCANNET20_PALETTE
    pictures = os.path.join(out, "pictures")
    for sid, d in zip(test_ids, test_dirs):
        mesh = os.path.join(d, sid + "_vh_clean_2.ply")
        verts, faces = read_mesh(mesh)
        panels = [mesh_panel("ground truth", verts, faces,
                             palette.from_ids(read_id_file(os.path.join(gt_dir, sid + ".txt"), n=len(verts))),
                             palette)]
        for name, r in results.items():
            path = os.path.join(out, "predictions", r["folder"], sid + ".txt")
            panels.append(mesh_panel(name, verts, faces, palette.from_ids(read_id_file(path, n=len(verts))), palette))
        render_labels(panels, palette, os.path.join(pictures, f"{sid}.png"), width=400 * len(panels), height=420,
                      clip_top=0.3)
    stages["pictures"] = time.time() - t_stage
    # 7. table
    table = format_comparison(results, SCANNET20_NAMES)
    summary = {name: {"scores": r["scores"].to_dict(), "tta": r["tta"], "vote_segments": r["vote_segments"],
                      "inference_seconds_median": r["seconds_median"],
                      "inference_peak_mib_median": r["peak_mib_median"], "per_scene": r["costs"]}
               for name, r in results.items()}
    total = time.time() - t0
    atomic_write_json(os.path.join(out, "metrics.json"), {
        "models": summary, "train_scenes": n_train, "test_scenes": test_ids, "threads": args.threads,
        "total_seconds": round(total, 1), "stage_seconds": {k: round(v, 1) for k, v in stages.items()}})
    print()
    print(f"held-out rooms {', '.join(test_ids)}: ScanNet benchmark scores over mesh vertices")
    print(table)
    print(f"\nsubmissions: {os.path.join(out, 'predictions')}\nscores + confusion matrices: "
          f"{os.path.join(out, 'scores')}\npictures: {pictures}\nmetrics: {os.path.join(out, 'metrics.json')}\n"
          f"total {total:.0f}s with {args.threads} thread(s): " + ", ".join(f"{k} {v:.0f}s" for k, v in stages.items()))
    return 0


def format_comparison(results: Dict[str, Dict], names) -> str:
    """A per-class IoU table with one column per model, then mIoU, accuracy and whole-scene inference cost."""
    models = list(results)
    head = f"{'class':<16}" + "".join(f"{m:>16}" for m in models)
    lines = [head, "-" * len(head)]
    for k, c in enumerate(names):
        cells = []
        for m in models:
            sc = results[m]["scores"]
            cells.append(f"{sc.iou[k]:>16.3f}" if sc.present[k] else f"{'not present':>16}")
        lines.append(f"{c:<16}" + "".join(cells))
    lines.append("-" * len(head))
    lines.append(f"{'mIoU':<16}" + "".join(f"{results[m]['scores'].miou:>16.3f}" for m in models))
    lines.append(f"{'accuracy':<16}" + "".join(f"{results[m]['scores'].accuracy:>16.3f}" for m in models))
    lines.append(f"{'infer s/room':<16}" + "".join(
        f"{results[m]['seconds_median']:>16.2f}" if results[m]['seconds_median'] is not None else f"{'-':>16}"
        for m in models))
    lines.append(f"{'peak MiB/room':<16}" + "".join(
        f"{results[m]['peak_mib_median']:>16.0f}" if results[m]['peak_mib_median'] is not None else f"{'-':>16}"
        for m in models))
    return "\n".join(lines)


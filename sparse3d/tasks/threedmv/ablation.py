"""The 3DMV ablation table on held-out synthetic rooms (the segmentation benchmark protocol):

    python -m sparse3d.tasks.threedmv.ablation --out out/threedmv_ablation --steps 300 \
        --json benchmarks/results/threedmv_ablation.json

Stages (each resumable: a row whose outputs exist is skipped; the rooms, crops, checkpoints and predictions
live under --out):

1. rooms: --train-scenes + --test-scenes textured synthetic rooms (`generate_scenes(appearance="textured")`:
   per-instance textures finer than a voxel, per-frame lighting, label images), seeds as the segmentation demo
   (train: seed, scenes 0..; held out: seed + 1, scenes 100..);
2. whole-scene crops (recipe segmentation, 5 cm) and the held-out ground truth (`export_gt`);
3. the 2D net pre-trained on the training rooms' label images (`sparse3d train threedmv-2d`);
4. rows, each trained with the same steps / batch / box, predicted per vertex and scored by the benchmark's
   scoring (`sparse3d eval segmentation`):
     2d_1view, 2d_3views        the pre-trained 2D net's class probabilities back-projected (mean over the
                                views chosen per tile), argmax; voxels no chosen view sees take their
                                nearest seen voxel's label
     geometry                   3D only: the U-Net on height + normals
     geometry_color             3D only: the U-Net on height + normals + voxel colour
     joint_{1,3,5}views_fixed   geometry + lifted 2D features, 2D net frozen
     joint_{1,3,5}views_e2e     geometry + lifted 2D features, 2D net trained end to end
   with --tta N, every trained row is also scored with N test-time views of its 3D network ("tta_vertex_miou").
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from sparse3d.utils.atomic_io import atomic_write_json

ROWS = ("2d_1view", "2d_3views", "geometry", "geometry_color", "joint_1view_fixed", "joint_3views_fixed",
        "joint_5views_fixed", "joint_1view_e2e", "joint_3views_e2e", "joint_5views_e2e")
FRAMES, WIDTH, HEIGHT = 40, 320, 240


def _log(msg: str, t0: float) -> None:
    print(f"[threedmv ablation {time.time() - t0:7.1f}s] {msg}", flush=True)


def make_data(out: str, n_train: int, n_test: int, seed: int) -> Dict[str, str]:
    """Rooms, whole-scene crops and ground truth under ``out`` (resumable); returns their paths."""
    from data_tools import preprocess, recipe_config
    from data_tools.scannet.benchmark_export import export_gt
    from data_tools.synthetic import generate_scenes
    scans = os.path.join(out, "scans")
    train_dirs = generate_scenes(scans, n_train, seed=seed, n_frames=FRAMES, width=WIDTH, height=HEIGHT,
                                 appearance="textured")
    test_dirs = generate_scenes(scans, n_test, seed=seed + 1, n_frames=FRAMES, width=WIDTH, height=HEIGHT,
                                first_index=100, appearance="textured")
    paths = {"scans": scans, "train": os.path.join(out, "data", "train"), "test": os.path.join(out, "data", "test"),
             "gt": os.path.join(out, "ground_truth")}
    for dirs, dst, s in ((train_dirs, paths["train"], seed), (test_dirs, paths["test"], seed + 1)):
        r = preprocess(scans, dst, recipe_config("segmentation", seed=s),
                       scenes=[os.path.basename(os.path.normpath(d)) for d in dirs], val_fraction=0.0)
        if r["failed"]:
            failed = "; ".join(f"{k}: {v}" for k, v in r["failed"].items())
            raise SystemExit(f"error: preprocessing failed for {failed}")
    test_ids = [os.path.basename(os.path.normpath(d)) for d in test_dirs]
    if not all(os.path.isfile(os.path.join(paths["gt"], t + ".txt")) for t in test_ids):
        export_gt(scans, paths["gt"], scenes=test_ids, progress=False)
    return paths


def row_settings(row: str) -> Dict[str, Any]:
    """The config overrides of a trained row (`sparse3d train threedmv`), or {"k": views} of a 2D-only row."""
    if row.startswith("2d_"):
        return {"k": int(row[3])}
    if row == "geometry":
        return {"model": {"use_2d": False, "in_features": ["height", "normals"]}}
    if row == "geometry_color":
        return {"model": {"use_2d": False, "in_features": ["color", "height", "normals"]}}
    if row.startswith("joint_"):
        return {"views": int(row[6]), "fix_2d": row.endswith("_fixed"),
                "model": {"use_2d": True, "in_features": ["height", "normals"]}}
    raise ValueError(f"row must be one of {list(ROWS)}, got {row!r}")


def _vertex_scores(pred_dir: str, gt_dir: str) -> Dict[str, Any]:
    from sparse3d.tasks.segmentation.benchmark import evaluate
    sc = evaluate(pred_dir, gt_dir)
    return {"vertex_miou": float(sc.miou), "vertex_accuracy": float(sc.accuracy),
            "vertex_iou": [None if not p else round(float(v), 4) for v, p in zip(sc.iou, sc.present)]}


def run_row(row: str, paths: Dict[str, str], out: str, steps: int, seed: int, threads: int, net2d: str,
            box: Sequence[int], batch_size: int, widths: Optional[Sequence[int]] = None) -> Dict[str, Any]:
    """Train (resumable), predict the held-out rooms per vertex (resumable) and score one row. out: the folder
    of this table's runs/ and predictions/ (the data may live elsewhere: ``paths``); widths: the 3D U-Net's
    (None = the threedmv config's default)."""
    from sparse3d.tasks.segmentation.predict import predict_dataset
    from sparse3d.tasks.threedmv.config import load_config
    from sparse3d.tasks.threedmv.data import load_scenes
    from sparse3d.tasks.threedmv.predict import labels_2d, predict_checkpoint, scene_label_fn
    from sparse3d.tasks.threedmv.pretrain2d import load_net2d
    from sparse3d.tasks.threedmv.train import train
    pred = os.path.join(out, "predictions", row)
    st = row_settings(row)
    result: Dict[str, Any] = {"row": row}
    t0 = time.time()
    if row.startswith("2d_"):
        net = load_net2d(net2d)
        scenes = load_scenes(paths["test"], None, 1.0, 1, 2, 2, "", with_labels=False)
        seen: Dict[str, float] = {}
        conf = []

        def fn(scene, sample):
            lab, frac = labels_2d(net, scene, st["k"], box[:2], sample=sample)
            seen[sample.scene_id] = frac
            conf.append((lab, sample.labels))
            return lab
        r = predict_dataset(paths["test"], pred, scene_label_fn(scenes, fn), overwrite=True, progress=False)
        if r["failed"]:
            raise RuntimeError(f"row {row}: prediction failed: {r['failed']}")
        from sparse3d.tasks.segmentation.benchmark import class_confusion, scores_from_confusion
        c = sum(class_confusion(a, b) for a, b in conf)
        result.update({"views": st["k"], "voxel_miou": float(scores_from_confusion(c).miou),
                       "voxel_fraction_seen": round(float(np.mean(list(seen.values()))), 4)})
    else:
        run = os.path.join(out, "runs", row)
        over = {"data": paths["train"], "val_data": paths["test"], "out": run, "steps": steps, "seed": seed,
                "threads": threads, "net2d": net2d, "box": list(box), "batch_size": batch_size, **st}
        if widths:
            over["model"] = {**over["model"], "widths": list(widths)}
        cfg = load_config(None, over)
        metrics = os.path.join(run, "metrics.json")
        if not os.path.isfile(metrics):
            train(cfg, resume=True, progress=False)
        with open(metrics) as f:
            m = json.load(f)
        result.update({"voxel_miou": m["miou"], "train_seconds": m.get("train_seconds"), "steps": steps,
                       "views": cfg.views if cfg.model.use_2d else 0,
                       "fix_2d": cfg.fix_2d if cfg.model.use_2d else None,
                       "in_features": list(cfg.model.in_features)})
        r = predict_checkpoint(os.path.join(run, "last.pt"), paths["test"], pred, progress=False)
        if r["failed"]:
            raise RuntimeError(f"row {row}: prediction failed: {r['failed']}")
    result.update(_vertex_scores(pred, paths["gt"]))
    result["seconds"] = round(time.time() - t0, 1)
    return result


def add_tta(row: str, result: Dict[str, Any], paths: Dict[str, str], out: str, tta: int) -> Dict[str, Any]:
    """A trained row's result with its held-out scores under ``tta`` test-time views added ("tta", "tta_vertex_miou",
    "tta_vertex_accuracy", "tta_vertex_iou"; predictions in <out>/predictions/<row>_tta<N>); 2D-only rows and
    tta 1 are returned as they are."""
    from sparse3d.tasks.threedmv.predict import predict_checkpoint
    if row.startswith("2d_") or tta == 1 or result.get("tta") == tta:
        return result
    pred = os.path.join(out, "predictions", f"{row}_tta{tta}")
    r = predict_checkpoint(os.path.join(out, "runs", row, "last.pt"), paths["test"], pred, progress=False, tta=tta)
    if r["failed"]:
        raise RuntimeError(f"row {row}: prediction with tta {tta} failed: {r['failed']}")
    sc = _vertex_scores(pred, paths["gt"])
    return {**result, "tta": tta, **{"tta_" + k: v for k, v in sc.items()}}


def _net2d(paths: Dict[str, str], out: str, steps: int, seed: int, threads: int, weighting: str) -> Dict[str, Any]:
    from sparse3d.tasks.threedmv.config import load_2d_config
    from sparse3d.tasks.threedmv.pretrain2d import train_2d
    run = os.path.join(out, "runs", "net2d")
    cfg = load_2d_config(None, {"data": paths["train"], "val_data": paths["test"], "out": run, "steps": steps,
                                "batch_size": 8, "seed": seed, "threads": threads, "class_weighting": weighting})
    if not os.path.isfile(os.path.join(run, "metrics.json")):
        train_2d(cfg, resume=True, progress=False)
    with open(os.path.join(run, "metrics.json")) as f:
        m = json.load(f)
    return {"checkpoint": os.path.join(run, "last.pt"), "pixel_miou": m["miou"], "pixel_accuracy": m["accuracy"],
            "steps": steps, "train_seconds": m.get("train_seconds")}


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description="The 3DMV ablation table (module docstring); resumable.")
    p.add_argument("--out", default="out/threedmv_ablation")
    p.add_argument("--json", default="benchmarks/results/threedmv_ablation.json")
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS)
    p.add_argument("--train-scenes", type=int, default=15)
    p.add_argument("--test-scenes", type=int, default=5)
    p.add_argument("--steps", type=int, default=200, help="training steps of every 3D row")
    p.add_argument("--steps-2d", type=int, default=500, help="2D pre-training steps")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--box", type=int, nargs=3, default=[32, 32, 64])
    p.add_argument("--widths", type=int, nargs="+", default=None,
                   help="channels per level of every 3D row's U-Net (default: the threedmv config's, 16 32 48 64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tag", default="", help="keep this table's runs, predictions and results under <out>/<tag> "
                                             "(the rooms and crops stay in <out>)")
    from sparse3d.utils.test_time_views import TTA_MAX
    p.add_argument("--tta", type=int, default=1, choices=range(1, TTA_MAX + 1), metavar="N",
                   help=f"also score every trained row with N test-time views (1..{TTA_MAX}; rows done before get "
                        "them added)")
    p.add_argument("--class-weighting-2d", default="none", choices=("none", "median_freq", "inv_log"),
                   help="class weights of the 2D net's pixel loss")
    a = p.parse_args(argv)
    import torch
    torch.set_num_threads(a.threads)
    t0 = time.time()
    _log(f"rooms + crops under {a.out}", t0)
    paths = make_data(a.out, a.train_scenes, a.test_scenes, a.seed)
    n2d: Dict[str, Any] = {}
    if any(r.startswith(("2d_", "joint_")) for r in a.rows):
        _log("2D net pre-training", t0)
        n2d = _net2d(paths, _table_dir(a), a.steps_2d, a.seed, a.threads, a.class_weighting_2d)
        _log(f"2D net: held-out pixel mIoU {n2d['pixel_miou']:.3f}", t0)
    for row in a.rows:
        done = os.path.join(_table_dir(a), "results", row + ".json")
        if os.path.isfile(done):
            with open(done) as fh:
                res = json.load(fh)
            _log(f"row {row}: done before ({done})", t0)
        else:
            _log(f"row {row}", t0)
            res = run_row(row, paths, _table_dir(a), a.steps, a.seed, a.threads, n2d.get("checkpoint", ""), a.box,
                          a.batch_size, a.widths)
            atomic_write_json(done, res)
            _log(f"row {row}: vertex mIoU {res['vertex_miou']:.3f}, voxel mIoU {res['voxel_miou']:.3f}", t0)
        with_tta = add_tta(row, res, paths, _table_dir(a), a.tta)
        if with_tta is not res:
            atomic_write_json(done, with_tta)
            _log(f"row {row}: vertex mIoU with {a.tta} test-time views {with_tta['tta_vertex_miou']:.3f}", t0)
        write_table(a)
    write_table(a)
    return 0


def write_table(a: argparse.Namespace) -> None:
    """--json's table ``a.tag or "default"``, from every row's result file under <out>[/<tag>]/results (rows in ROWS
    order; missing rows absent); the file's other tables are kept (the update holds <json>.lock)."""
    import fcntl
    from sparse3d.tasks.threedmv.config import ThreeDMVModelConfig
    rows = {}
    for row in ROWS:
        f = os.path.join(_table_dir(a), "results", row + ".json")
        if os.path.isfile(f):
            with open(f) as fh:
                rows[row] = json.load(fh)
    table = {"protocol": {"train_scenes": a.train_scenes, "test_scenes": a.test_scenes, "frames": FRAMES,
                          "image": [WIDTH, HEIGHT], "steps": a.steps, "batch_size": a.batch_size, "box": a.box,
                          "widths": list(a.widths or ThreeDMVModelConfig().widths),
                          "seed": a.seed, "threads": a.threads, "steps_2d": a.steps_2d,
                          "class_weighting_2d": a.class_weighting_2d, "tta": a.tta,
                          "command": "python -m sparse3d.tasks.threedmv.ablation " + " ".join(sys.argv[1:])},
             "net2d": _net2d_record(_table_dir(a)), "rows": rows}
    os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
    with open(os.path.abspath(a.json) + ".lock", "w") as lock:  # beside the JSON: runs with other --out share it
        fcntl.flock(lock, fcntl.LOCK_EX)
        doc: Dict[str, Any] = {"tables": {}}
        if os.path.isfile(a.json):
            with open(a.json) as fh:
                doc = json.load(fh)
        doc.setdefault("tables", {})[a.tag or "default"] = table
        atomic_write_json(a.json, doc)


def _table_dir(a: argparse.Namespace) -> str:
    return os.path.join(a.out, a.tag) if a.tag else a.out


def _net2d_record(out: str) -> Optional[Dict[str, Any]]:
    f = os.path.join(out, "runs", "net2d", "metrics.json")
    if not os.path.isfile(f):
        return None
    with open(f) as fh:
        m = json.load(fh)
    return {"pixel_miou": m["miou"], "pixel_accuracy": m["accuracy"], "steps": m.get("steps"),
            "train_seconds": m.get("train_seconds"),
            "pixel_iou": [None if v is None else round(v, 4) for v in m["iou"]]}


if __name__ == "__main__":
    raise SystemExit(main())

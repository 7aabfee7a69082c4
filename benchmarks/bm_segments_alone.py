"""How much the segs json alone tells about the labels of the synthetic rooms (a check on the data, not a model).

    python benchmarks/bm_segments_alone.py [--demo out/segmentation_demo] [--checkpoint runs/unet/last.pt]
        [--tta 8] [--seed 0] [--train CROPS [--train-split S]] [--test CROPS [--test-split S]]

DEMO: the folder of `sparse3d demo segmentation`: its data/train are the training rooms and its data/test the
held-out rooms, unless --train / --test name other whole-scene crop datasets (and splits); the scans are found
through the crops, as `sparse3d predict segmentation` finds them. Every segment of a
room's `_vh_clean_2.0.010000.segs.json` is described by a few numbers read off its mesh vertices, with no
network: the log of its vertex count; its lowest, highest and mean height above the room's lowest vertex; the
distance of its centroid to the nearest side of the room's horizontal bounding box; its principal extents (3D
and horizontal); how horizontal its thinnest axis is; and (variant "geometry + colour") the mean and spread of
its vertex colours. A gradient-boosted tree classifier (scikit-learn's HistGradientBoostingClassifier, seeded)
learns the segment's majority ScanNet-20 label from the training rooms, weighted by the square root of the
segment's vertex count, and labels every segment of the held-out rooms; the held-out vertices are scored as the
benchmark does (sparse3d.tasks.segmentation.benchmark). With ``--checkpoint`` the U-Net with ``--tta`` views and
the segment vote (`sparse3d predict segmentation --tta N --vote-segments`) is scored on the same rooms beside it.

Why: `--vote-segments` gains far more on the synthetic rooms than it can on real scans. The synthetic segs
json has one segment per box part of an object, separate from every other piece of the mesh, so a segment's
shape and size nearly give its class away. Real ScanNet segments are cut from one connected reconstruction by
surface normals: smaller, and a poster flush with a wall can share the wall's segment. A score near 1 here
says the segments carry the labels; any change that makes the synthetic segments realistic should bring it down.
Writes benchmarks/results/segments_alone.json.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import machine_info, print_table, write_json  # noqa: E402
from data_tools.scannet.benchmark_export import scene_gt_labels  # noqa: E402
from data_tools.scannet.labels import IGNORE, SCANNET20_NAMES, SCANNET20_NYU40_IDS, nyu40_to_scannet20  # noqa: E402
from data_tools.scannet.ply import read_ply  # noqa: E402

GEOMETRY = ("log vertices", "z min", "z max", "z mean", "to room side", "extent 1", "extent 2", "extent 3",
            "horizontal extent 1", "horizontal extent 2", "thinnest axis |z|")
COLOUR = ("r mean", "g mean", "b mean", "r std", "g std", "b std")
N_CLASSES = len(SCANNET20_NYU40_IDS)


def segment_features(vertices: np.ndarray, colors: np.ndarray, segments: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(segment ids int64 [S], features float64 [S, len(GEOMETRY) + len(COLOUR)]) of a room: vertices float [V, 3]
    (metres, z up), colors uint8 [V, >= 3], segments int [V] (the segs json)."""
    v = np.asarray(vertices, np.float64)
    c = np.asarray(colors, np.float64)[:, :3] / 255.0
    lo, hi = v.min(0), v.max(0)
    ids, inv = np.unique(np.asarray(segments), return_inverse=True)
    order = np.argsort(inv, kind="stable")
    bounds = np.searchsorted(inv[order], np.arange(len(ids) + 1))
    feats = np.zeros((len(ids), len(GEOMETRY) + len(COLOUR)))
    for k in range(len(ids)):
        idx = order[bounds[k]:bounds[k + 1]]
        p, centre = v[idx], v[idx].mean(0)
        if len(idx) >= 3:
            ev, evec = np.linalg.eigh(np.cov((p - centre).T))
            hv = np.linalg.eigvalsh(np.cov((p[:, :2] - centre[:2]).T))
        else:
            ev, evec, hv = np.zeros(3), np.eye(3), np.zeros(2)
        ext = np.sqrt(np.clip(ev[::-1], 0, None))
        hext = np.sqrt(np.clip(hv[::-1], 0, None))
        side = min(centre[0] - lo[0], hi[0] - centre[0], centre[1] - lo[1], hi[1] - centre[1])
        feats[k] = np.concatenate([[np.log(len(idx)), p[:, 2].min() - lo[2], p[:, 2].max() - lo[2], centre[2] - lo[2],
                                    side], ext, hext, [abs(evec[2, 0])], c[idx].mean(0), c[idx].std(0)])
    return ids, feats


def segment_labels(gt_nyu40: np.ndarray, segments: np.ndarray, ids: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(majority ScanNet-20 class of each segment int64 [S], IGNORE where none of its vertices has one of the 20;
    its vertex count int64 [S])."""
    g = nyu40_to_scannet20(np.asarray(gt_nyu40)).astype(np.int64)
    inv = np.searchsorted(ids, np.asarray(segments))
    counts = np.zeros((len(ids), N_CLASSES), np.int64)
    ok = g != IGNORE
    np.add.at(counts, (inv[ok], g[ok]), 1)
    y = np.where(counts.sum(1) > 0, counts.argmax(1), IGNORE)
    return y, np.bincount(inv, minlength=len(ids))


def room(scan_dir: str) -> Dict[str, np.ndarray]:
    """vertices, colors, segments and nyu40 ground truth of one scan folder in the ScanNet layout."""
    from sparse3d.tasks.segmentation.segment_vote import scene_segments
    sid = os.path.basename(os.path.normpath(scan_dir))
    mesh_path = os.path.join(scan_dir, sid + "_vh_clean_2.ply")
    m = read_ply(mesh_path)
    if m.colors is None:
        raise ValueError(f"{mesh_path}: no vertex colours")
    return {"vertices": m.vertices, "colors": m.colors, "segments": scene_segments(mesh_path, len(m.vertices)),
            "gt": scene_gt_labels(scan_dir)}


def scored(confusion: np.ndarray) -> Dict:
    from sparse3d.tasks.segmentation.benchmark import scores_from_confusion
    d = scores_from_confusion(confusion).to_dict()
    return {"miou": d["miou"], "accuracy": d["accuracy"],
            "iou": {name: d["classes"][name]["iou"] for name in SCANNET20_NAMES}}  # None: not in the ground truth


def classify(train: Sequence[Dict], test: Sequence[Dict], columns: np.ndarray, seed: int) -> Tuple[np.ndarray, int]:
    """(benchmark confusion of the held-out rooms, training segments) of the segment classifier on ``columns``."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sparse3d.tasks.segmentation.benchmark import scene_confusion
    xs, ys, ws = [], [], []
    for r in train:
        y, n = segment_labels(r["gt"], r["segments"], r["ids"])
        keep = y != IGNORE
        xs.append(r["feats"][keep][:, columns]), ys.append(y[keep]), ws.append(np.sqrt(n[keep]))
    clf = HistGradientBoostingClassifier(max_iter=300, random_state=seed)
    clf.fit(np.concatenate(xs), np.concatenate(ys), sample_weight=np.concatenate(ws))
    nyu = np.asarray(SCANNET20_NYU40_IDS)
    confusion = 0
    for r in test:
        pred = clf.predict(r["feats"][:, columns])
        confusion = confusion + scene_confusion(r["gt"], nyu[pred[np.searchsorted(r["ids"], r["segments"])]])
    return confusion, int(sum(len(y) for y in ys))


def unet_vote(data: str, split: Optional[str], checkpoint: str, tta: int) -> np.ndarray:
    """Benchmark confusion of the U-Net with ``tta`` views and the segment vote on the held-out rooms (the
    whole-scene crops of ``data``, ``split`` or all)."""
    from sparse3d.tasks.segmentation.benchmark import scene_confusion
    from sparse3d.tasks.segmentation.predict import (checkpoint_label_fn, dataset_scenes, predict_scene,
                                                      scene_mesh_path)
    from sparse3d.tasks.segmentation.sample import load_sample
    from sparse3d.tasks.segmentation.segment_vote import scene_segments
    fn, task, band = checkpoint_label_fn(checkpoint, tta=tta, scores=True)
    if task != "segmentation":
        raise SystemExit(f"error: --checkpoint {checkpoint!r} is a {task!r} checkpoint, expected the U-Net's")
    confusion = 0
    for _, crop in dataset_scenes(data, split=split):
        _, mesh_path = scene_mesh_path(crop)
        if mesh_path is None:
            raise SystemExit(f"error: {crop}: its scan has no mesh")
        vertices = read_ply(mesh_path).vertices
        _, nyu, _ = predict_scene(load_sample(crop, band), fn, vertices, scene_segments(mesh_path, len(vertices)))
        confusion = confusion + scene_confusion(scene_gt_labels(os.path.dirname(mesh_path)), nyu)
    return confusion


def scan_dirs(data: str, split: Optional[str]) -> List[str]:
    """The scan folders of the whole-scene crops of ``data`` (``split``, or all)."""
    from sparse3d.tasks.segmentation.predict import dataset_scenes, scene_mesh_path
    out = []
    for _, crop in dataset_scenes(data, split=split):
        _, mesh_path = scene_mesh_path(crop)
        if mesh_path is None:
            raise SystemExit(f"error: {crop}: its scan has no mesh")
        out.append(os.path.dirname(mesh_path))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--demo", default="out/segmentation_demo", help="`sparse3d demo segmentation`'s --out folder")
    ap.add_argument("--train", default=None, help="training rooms: whole-scene crops (default: DEMO/data/train)")
    ap.add_argument("--train-split", default=None, help="only this split of --train (default: all)")
    ap.add_argument("--test", default=None, help="held-out rooms: whole-scene crops (default: DEMO/data/test)")
    ap.add_argument("--test-split", default=None, help="only this split of --test (default: all)")
    ap.add_argument("--checkpoint", default=None, help="also score this U-Net checkpoint with the segment vote")
    ap.add_argument("--tta", type=int, default=8, help="the U-Net's test-time views (1..8)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the classifier")
    ap.add_argument("--out-dir", default=None, help="where the JSON goes (default: benchmarks/results)")
    a = ap.parse_args(argv)
    t0 = time.time()
    if a.checkpoint:
        from sparse3d.utils.test_time_views import tta_views
        try:
            tta_views(a.tta)
        except ValueError as e:
            ap.error(f"--tta: {e}")
    sources = {"train": (a.train or os.path.join(a.demo, "data", "train"), a.train_split),
               "test": (a.test or os.path.join(a.demo, "data", "test"), a.test_split)}
    for role, (data, _) in sources.items():
        if not os.path.isfile(os.path.join(data, "manifest.json")):
            ap.error(f"--{role}: {data!r} is not a crops dataset (no manifest.json; run `sparse3d demo segmentation "
                     f"--out {a.demo}` first, or name one with --{role})")
    rooms: Dict[str, List[Dict]] = {}
    for role, (data, split) in sources.items():
        rooms[role] = []
        for d in scan_dirs(data, split):
            r = room(d)
            r["ids"], r["feats"] = segment_features(r["vertices"], r["colors"], r["segments"])
            rooms[role].append(r)
    variants = {"segments: geometry + colour": np.arange(len(GEOMETRY) + len(COLOUR)),
                "segments: geometry": np.arange(len(GEOMETRY))}
    results: Dict[str, Dict] = {}
    for name, cols in variants.items():
        confusion, n_train = classify(rooms["train"], rooms["test"], cols, a.seed)
        results[name] = dict(scored(confusion), features=[(GEOMETRY + COLOUR)[i] for i in cols],
                             training_segments=n_train)
    if a.checkpoint:
        results[f"U-Net, {a.tta} views + segment vote"] = dict(scored(unet_vote(*sources["test"], a.checkpoint, a.tta)),
                                                               checkpoint=os.path.abspath(a.checkpoint))
    print_table(["labels from", "held-out vertex mIoU", "accuracy"],
                [[k, f"{v['miou']:.3f}", f"{v['accuracy']:.3f}"] for k, v in results.items()])
    print_table(["class"] + list(results), [[c] + ["-" if v["iou"][c] is None else f"{v['iou'][c]:.3f}"
                                                  for v in results.values()] for c in SCANNET20_NAMES])
    payload = {"machine": machine_info(), "train": [os.path.abspath(sources["train"][0]), sources["train"][1]],
               "test": [os.path.abspath(sources["test"][0]), sources["test"][1]], "seed": a.seed,
               "rooms": {k: len(v) for k, v in rooms.items()},
               "segments_per_room": [int(len(r["ids"])) for r in rooms["train"] + rooms["test"]],
               "results": results, "seconds": round(time.time() - t0, 1)}
    print("wrote", write_json("segments_alone", payload, a.out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())

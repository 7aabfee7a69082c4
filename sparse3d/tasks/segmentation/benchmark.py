"""The ScanNet semantic-label benchmark's scoring of per-vertex label files (`<scene_id>.txt`, one nyu40 id
per line, one line per vertex of `<scene_id>_vh_clean_2.ply`), as the benchmark's evaluation script does:

* only vertices whose ground truth is one of the 20 benchmark nyu40 ids count (the rest are ignored);
* a prediction that is a valid nyu40 id (0..40) but not one of the 20 is a miss: a false negative of the
  ground-truth class, a false positive of no class (the "other" column of the confusion);
* IoU of class c = TP / (TP + FP + FN), FP counted over vertices whose ground truth is another of the 20.

Beyond the script: a class absent from the ground truth is "not present" (IoU None, left out of the mean,
also when it was predicted: its false positives already lower the IoU of the classes they were taken from);
mIoU = mean IoU over the present classes; accuracy = correct / scored vertices.

    scores = evaluate(pred_dir, gt_dir)          # every <scene>.txt of gt_dir needs one in pred_dir
    print(scores.format_table()); write_report(scores, out_dir)   # segmentation_eval.json + confusion.png
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from data_tools.scannet.benchmark_export import read_label_file
from data_tools.scannet.labels import IGNORE, SCANNET20_NAMES, SCANNET20_NYU40_IDS
from sparse3d.utils.atomic_io import atomic_savefig, atomic_write_json

N_CLASSES = len(SCANNET20_NYU40_IDS)
NYU40_MAX = 40
_LUT = np.full(NYU40_MAX + 1, N_CLASSES, np.int64)  # nyu40 id -> benchmark class 0..19, 20 = not one of the 20
_LUT[list(SCANNET20_NYU40_IDS)] = np.arange(N_CLASSES)
JSON_NAME = "segmentation_eval.json"
PNG_NAME = "confusion.png"


def scene_confusion(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """int64 [20, 21] counts of one scene: row = ground-truth benchmark class (vertices whose gt nyu40 id is
    one of the 20), column = predicted class, column 20 = a predicted nyu40 id not among the 20 ("other").

    gt, pred: int [V] nyu40 ids in 0..40 (same length)."""
    gt = np.asarray(gt, np.int64)
    pred = np.asarray(pred, np.int64)
    if gt.shape != pred.shape or gt.ndim != 1:
        raise ValueError(f"gt and pred must be 1-D of the same length, got {gt.shape} and {pred.shape}")
    for name, a in (("gt", gt), ("pred", pred)):
        if a.size and (a.min() < 0 or a.max() > NYU40_MAX):
            raise ValueError(f"{name} must hold nyu40 ids in [0, {NYU40_MAX}], got range [{a.min()}, {a.max()}]")
    g, p = _LUT[gt], _LUT[pred]
    keep = g < N_CLASSES
    flat = np.bincount(g[keep] * (N_CLASSES + 1) + p[keep], minlength=N_CLASSES * (N_CLASSES + 1))
    return flat.reshape(N_CLASSES, N_CLASSES + 1).astype(np.int64)


def class_confusion(pred, labels) -> np.ndarray:
    """int64 [20, 20] counts over voxels (or any items) labelled with benchmark class indices: row = ground
    truth 0..19 (items labelled 255 = ignore are skipped), column = prediction 0..19. For
    :func:`scores_from_confusion`, the one place where IoU, mIoU and accuracy are computed.

    pred, labels: int [N] (numpy or torch)."""
    p = np.asarray(pred.cpu() if hasattr(pred, "cpu") else pred).astype(np.int64).reshape(-1)
    t = np.asarray(labels.cpu() if hasattr(labels, "cpu") else labels).astype(np.int64).reshape(-1)
    if p.shape != t.shape:
        raise ValueError(f"pred must have one label per labelled item ({len(t)}), got {len(p)}")
    keep = t != IGNORE
    p, t = p[keep], t[keep]
    for name, a in (("labels", t), ("pred", p)):
        if a.size and (a.min() < 0 or a.max() >= N_CLASSES):
            raise ValueError(f"{name} must be class indices 0..{N_CLASSES - 1}" + (f" or {IGNORE}" if name == "labels"
                             else "") + f", got range [{a.min()}, {a.max()}]")
    return np.bincount(t * N_CLASSES + p, minlength=N_CLASSES * N_CLASSES).reshape(N_CLASSES, N_CLASSES)


@dataclass
class SegmentationScores:
    """Benchmark scores. confusion int64 [20,20] (gt class x predicted class, over vertices with a benchmark
    ground truth); other int64 [20] (gt class predicted as a nyu40 id outside the 20); tp / fp / fn /
    gt_count int64 [20]; present bool [20] (gt_count > 0); iou float64 [20] (nan where not present);
    miou (nan when no class is present); accuracy = sum(tp) / n_vertices (nan when 0); n_vertices = scored
    vertices; scenes = the scene ids scored."""

    confusion: np.ndarray
    other: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    gt_count: np.ndarray
    present: np.ndarray
    iou: np.ndarray
    miou: float
    accuracy: float
    n_vertices: int
    scenes: List[str] = field(default_factory=list)

    def to_dict(self) -> Dict:
        """JSON-ready: the numbers plus a per-class table keyed by class name (iou None when not present)."""
        def num(v: float) -> Optional[float]:
            return None if not math.isfinite(v) else float(v)
        classes = {}
        for c, name in enumerate(SCANNET20_NAMES):
            classes[name] = {"nyu40": int(SCANNET20_NYU40_IDS[c]), "present": bool(self.present[c]),
                             "iou": num(float(self.iou[c])), "tp": int(self.tp[c]), "fp": int(self.fp[c]),
                             "fn": int(self.fn[c]), "gt_vertices": int(self.gt_count[c])}
        return {"miou": num(self.miou), "accuracy": num(self.accuracy), "n_vertices": int(self.n_vertices),
                "n_present": int(self.present.sum()), "n_scenes": len(self.scenes), "scenes": list(self.scenes),
                "classes": classes, "class_names": list(SCANNET20_NAMES), "nyu40_ids": list(SCANNET20_NYU40_IDS),
                "confusion": self.confusion.tolist(), "other": self.other.tolist(),
                "protocol": "ScanNet semantic label benchmark: vertices with one of the 20 gt ids; a prediction "
                            "outside the 20 is a false negative; IoU = TP/(TP+FP+FN), FP over valid gt; mIoU over "
                            "classes present in the gt"}

    def format_table(self) -> str:
        """Per-class IoU table (every class; "not present" for classes absent from the ground truth), mIoU,
        accuracy."""
        lines = [f"{'class':<16} {'nyu40':>5} {'IoU':>11} {'TP':>9} {'TP+FP+FN':>10}"]
        for c, name in enumerate(SCANNET20_NAMES):
            nid = SCANNET20_NYU40_IDS[c]
            if self.present[c]:
                den = int(self.tp[c] + self.fp[c] + self.fn[c])
                lines.append(f"{name:<16} {nid:>5} {self.iou[c]:>11.3f} {int(self.tp[c]):>9d} {den:>10d}")
            else:
                lines.append(f"{name:<16} {nid:>5} {'not present':>11}")
        miou = f"{self.miou:.3f}" if math.isfinite(self.miou) else "n/a"
        acc = f"{self.accuracy:.3f}" if math.isfinite(self.accuracy) else "n/a"
        lines.append(f"mIoU {miou} over {int(self.present.sum())} classes present; accuracy {acc} over "
                     f"{self.n_vertices} vertices of {len(self.scenes)} scenes")
        return "\n".join(lines)


def scores_from_confusion(confusion: np.ndarray, scenes: Sequence[str] = ()) -> SegmentationScores:
    """Scores from counts int [20, 21] (as :func:`scene_confusion`, summed over scenes) or [20, 20]
    (no predictions outside the 20)."""
    m = np.asarray(confusion, np.int64)
    if m.shape == (N_CLASSES, N_CLASSES):
        m = np.concatenate([m, np.zeros((N_CLASSES, 1), np.int64)], 1)
    if m.shape != (N_CLASSES, N_CLASSES + 1) or (m < 0).any():
        raise ValueError(f"confusion must be non-negative counts of shape [20, 21] or [20, 20], got {m.shape}")
    conf, other = m[:, :N_CLASSES].copy(), m[:, N_CLASSES].copy()
    tp = np.diag(conf).copy()
    gt_count = m.sum(1)
    fn = gt_count - tp
    fp = conf.sum(0) - tp
    present = gt_count > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(present, tp / np.maximum(tp + fp + fn, 1), np.nan).astype(np.float64)
    miou = float(iou[present].mean()) if present.any() else float("nan")
    n = int(gt_count.sum())
    acc = float(tp.sum() / n) if n else float("nan")
    return SegmentationScores(conf, other, tp, fp, fn, gt_count, present, iou, miou, acc, n, list(scenes))


def voxel_scores_dict(scores: SegmentationScores) -> Dict:
    """JSON-ready voxel-level scores: {"miou", "accuracy" (None when undefined), "iou": [20] (None where the class
    is not present), "present": [class indices], "voxels", "confusion": [20][20]}."""
    def num(v: float) -> Optional[float]:
        return None if not math.isfinite(v) else float(v)
    return {"miou": num(scores.miou), "accuracy": num(scores.accuracy),
            "iou": [num(float(v)) if p else None for v, p in zip(scores.iou, scores.present)],
            "present": [int(c) for c in np.flatnonzero(scores.present)], "voxels": int(scores.n_vertices),
            "confusion": scores.confusion.tolist()}


def evaluate(pred_dir: str, gt_dir: str, scenes: Optional[Sequence[str]] = None,
             progress: bool = False) -> SegmentationScores:
    """Score the prediction files of ``pred_dir`` against the ground-truth files of ``gt_dir`` (both
    `<scene_id>.txt`; the ground truth's scenes, or ``scenes``, are scored; prediction files without ground
    truth are not read). Errors name the file: a scene with no prediction, a prediction whose line count
    differs from the ground truth's, a line that is not an integer or an id outside 0..40."""
    for name, d in (("pred_dir", pred_dir), ("gt_dir", gt_dir)):
        if not os.path.isdir(d):
            raise FileNotFoundError(f"{name} must be a folder of <scene_id>.txt files, got {d!r} (not found)")
    gt_ids = sorted(f[:-4] for f in os.listdir(gt_dir) if f.endswith(".txt"))
    if scenes is not None:
        if isinstance(scenes, str):
            raise TypeError(f"scenes must be a list of scene ids, got the string {scenes!r}")
        missing = sorted(set(scenes) - set(gt_ids))
        if missing:
            raise FileNotFoundError(f"{gt_dir}: no ground truth for scenes {missing}")
        gt_ids = sorted(set(scenes))
    if not gt_ids:
        raise FileNotFoundError(f"{gt_dir}: no ground-truth <scene_id>.txt files (write them with "
                                "`sparse3d export-gt SCANNET_ROOT OUT`)")
    no_pred = [s for s in gt_ids if not os.path.isfile(os.path.join(pred_dir, s + ".txt"))]
    if no_pred:
        raise FileNotFoundError(f"{pred_dir}: no prediction file for {len(no_pred)} ground-truth scenes: "
                                f"{', '.join(s + '.txt' for s in no_pred[:10])}{' ...' if len(no_pred) > 10 else ''}")
    total = np.zeros((N_CLASSES, N_CLASSES + 1), np.int64)
    it = gt_ids
    if progress:
        from tqdm import tqdm
        it = tqdm(gt_ids, desc="eval", unit="scene")
    for s in it:
        gt = read_label_file(os.path.join(gt_dir, s + ".txt"))
        pred = read_label_file(os.path.join(pred_dir, s + ".txt"), n_expected=len(gt))
        total += scene_confusion(gt, pred)
    return scores_from_confusion(total, gt_ids)


def plot_confusion(scores: SegmentationScores, path: str, dpi: int = 110) -> None:
    """PNG of the row-normalised confusion (gt rows, predicted columns + "other"; empty rows of classes
    not present), class names on both axes; written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    m = np.concatenate([scores.confusion, scores.other[:, None]], 1).astype(np.float64)
    rows = m.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.where(rows > 0, m / np.maximum(rows, 1), np.nan)
    fig = Figure(figsize=(9.5, 8.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    names = list(SCANNET20_NAMES)
    ax.set_xticks(range(N_CLASSES + 1))
    ax.set_xticklabels(names + ["other"], rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(N_CLASSES))
    ax.set_yticklabels([n if scores.present[c] else f"{n} (not present)" for c, n in enumerate(names)], fontsize=7)
    for i in range(N_CLASSES):
        for j in range(N_CLASSES + 1):
            v = norm[i, j]
            if np.isfinite(v) and v >= 0.005:
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=5,
                        color="white" if v > 0.6 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    miou = f"{scores.miou:.3f}" if math.isfinite(scores.miou) else "n/a"
    ax.set_title(f"confusion (row-normalised), mIoU {miou}, {len(scores.scenes)} scenes", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=dpi)


def write_report(scores: SegmentationScores, out_dir: str) -> Dict[str, str]:
    """Write `<out_dir>/segmentation_eval.json` (:meth:`SegmentationScores.to_dict`) and
    `<out_dir>/confusion.png`; returns {"json": path, "png": path}."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {"json": os.path.join(out_dir, JSON_NAME), "png": os.path.join(out_dir, PNG_NAME)}
    atomic_write_json(paths["json"], scores.to_dict())
    plot_confusion(scores, paths["png"])
    return paths

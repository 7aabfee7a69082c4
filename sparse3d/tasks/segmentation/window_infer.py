"""Whole-scene prediction with the sliding-window baseline, its cost, and voxel-level scores.

    net, cfg = load_window_model("runs/seg_window/last.pt")
    labels = sliding_window_labels(net, sample, batch=128)          # uint8 [N], the sample's voxels, 0..19
    labels, cost = timed_sliding_window_labels(net, sample, batch=128)
    cost  # {"seconds", "peak_rss_mib", "columns", "voxels", "threads", "memory": how it was measured}
    scores = scores_from_confusion(class_confusion(labels, sample.labels))   # benchmark.SegmentationScores

The window slides over every (x, y) column of the scene that holds a voxel (a second 62-voxel block for
scenes taller than 3.1 m at 5 cm), in batches; each voxel takes the label of its cell in the one column
that covers it.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from data_tools.scannet.labels import SCANNET20_NAMES
from sparse3d.tasks.segmentation.benchmark import class_confusion, scores_from_confusion, voxel_scores_dict
from sparse3d.tasks.segmentation.sample import SegSample
from sparse3d.tasks.segmentation.window_data import SceneVolume, window_input
from sparse3d.tasks.segmentation.window_model import COLUMN_Z, NUM_CLASSES, TASK, WindowNet
from sparse3d.tasks.segmentation.window_train import WindowTrainConfig
from sparse3d.train.checkpoint import load_checkpoint
from sparse3d.utils.measure import MEMORY_METHOD, measure


def load_window_model(path: str, map_location: str | torch.device = "cpu") -> Tuple[WindowNet, Any]:
    """The WindowNet of a ``sparse3d train segmentation-window`` checkpoint (eval mode) and its
    WindowTrainConfig. Errors name the file (wrong task, missing entries, unreadable config)."""
    state = load_checkpoint(path, map_location, task=TASK, require=("model", "config"))
    try:
        cfg = WindowTrainConfig.from_dict(state["config"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"checkpoint {path!r}: its config cannot be read as a segmentation-window config ({e})") from e
    net = WindowNet(cfg.model)
    net.load_state_dict(state["model"])
    return net.eval(), cfg


def sliding_window_labels(model: torch.nn.Module, sample: SegSample, batch: int = 128,
                          device: Optional[str | torch.device] = None) -> np.ndarray:
    """uint8 [N]: the class 0..19 of each voxel of ``sample`` (its order), from ``model`` (a WindowNet,
    run in eval mode, on ``device`` or where its weights are) applied to every column, ``batch`` windows at
    a time."""
    if int(batch) < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    n = len(sample)
    if n == 0:
        return np.zeros(0, np.uint8)
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    vol = SceneVolume.from_sample(sample)
    col_of, height = vol.voxel_columns(sample.coords)
    cols = SceneVolume.columns_of(sample.coords, vol.z0)  # column i of col_of = cols[i]
    pred = np.empty((len(cols), COLUMN_Z), np.uint8)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for lo in range(0, len(cols), batch):
                x = window_input(vol.windows(cols[lo:lo + batch])).to(dev)
                pred[lo:lo + batch] = model(x).argmax(1).to(torch.uint8).cpu().numpy()
    finally:
        model.train(was_training)
    return pred[col_of, height]


def timed_sliding_window_labels(model: torch.nn.Module, sample: SegSample, batch: int = 128,
                                device: Optional[str | torch.device] = None) -> Tuple[np.ndarray, Dict[str, Any]]:
    """:func:`sliding_window_labels` and its cost: seconds, peak_rss_mib (:data:`MEMORY_METHOD`), columns
    (windows run), voxels, threads (torch's)."""
    labels, cost = measure(lambda: sliding_window_labels(model, sample, batch, device))
    z0 = int(sample.coords[:, 2].min()) if len(sample) else 0
    cols = SceneVolume.columns_of(sample.coords, z0)
    cost.update(columns=int(len(cols)), blocks=int(cols[:, 2].max()) + 1 if len(cols) else 0, voxels=len(sample),
                threads=torch.get_num_threads(), batch=int(batch))
    return labels, cost


def evaluate(model: torch.nn.Module, samples: Sequence[SegSample], batch: int = 128,
             device: Optional[str | torch.device] = None) -> Dict[str, Any]:
    """Whole-scene voxel scores of the sliding window over ``samples``: ``benchmark.voxel_scores_dict`` of the
    summed confusion, plus "confusion" int [20][20] (rows = truth) and "scenes": {scene_id: {"miou",
    "accuracy", "voxels", "columns", "seconds", "peak_rss_mib"}}."""
    total = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    scenes: Dict[str, Any] = {}
    for s in samples:
        pred, cost = timed_sliding_window_labels(model, s, batch, device)
        conf = class_confusion(pred, s.labels)
        total += conf
        sc = scores_from_confusion(conf)
        scenes[s.scene_id] = {"miou": sc.miou, "accuracy": sc.accuracy, "voxels": len(s),
                              "columns": cost["columns"], "seconds": cost["seconds"],
                              "peak_rss_mib": cost["peak_rss_mib"]}
    out = voxel_scores_dict(scores_from_confusion(total))
    out["scenes"] = scenes
    out["memory"] = MEMORY_METHOD
    return out


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m sparse3d.tasks.segmentation.window_infer --checkpoint last.pt --data CROPS [--split val]``:
    held-out voxel mIoU and whole-scene time / peak memory of the sliding window, as JSON (+ a summary)."""
    import argparse
    import json
    from sparse3d.tasks.segmentation.window_data import WindowDataset
    from sparse3d.utils.argtypes import nonneg_int, positive_int
    from sparse3d.utils.atomic_io import atomic_write_json
    ap = argparse.ArgumentParser(prog="python -m sparse3d.tasks.segmentation.window_infer",
                                 description=main.__doc__)
    ap.add_argument("--checkpoint", required=True, help="last.pt of `sparse3d train segmentation-window`")
    ap.add_argument("--data", required=True, help="a sparse3d.crops dataset of whole-scene crops")
    ap.add_argument("--split", default="val", help="manifest split to score (default: val)")
    ap.add_argument("--batch", type=positive_int, default=128, help="windows per forward pass (default: 128)")
    ap.add_argument("--threads", type=nonneg_int, default=0, help="torch threads; 0 = torch's default")
    ap.add_argument("--json", default=None, help="write the scores here")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    net, cfg = load_window_model(a.checkpoint)
    ds = WindowDataset(a.data, a.split, cfg.max_abs_tsdf)
    res = evaluate(net, ds.samples, a.batch)
    res.update(checkpoint=a.checkpoint, data=a.data, split=a.split, threads=torch.get_num_threads())
    if a.json:
        atomic_write_json(a.json, res)
    names = SCANNET20_NAMES
    for sid, r in res["scenes"].items():
        print(f"{sid}: mIoU {r['miou']:.3f} acc {r['accuracy']:.3f} voxels {r['voxels']} columns {r['columns']} "
              f"{r['seconds']:.1f} s peak {r['peak_rss_mib']} MiB")
    print("per class IoU: " + ", ".join(f"{names[c]} {res['iou'][c]:.3f}" for c in res["present"]))
    print(f"mIoU {res['miou']:.3f} over {len(res['present'])} classes present; accuracy {res['accuracy']:.3f}; "
          f"{res['voxels']} voxels" + (f"; wrote {a.json}" if a.json else ""))
    print(json.dumps({"miou": res["miou"], "accuracy": res["accuracy"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

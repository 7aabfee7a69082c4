"""Whole-scene 3DMV prediction: per-voxel labels of a scene, held-out voxel scores, and the per-vertex
benchmark files (through `sparse3d.tasks.segmentation.predict.predict_dataset`, scored by
`sparse3d eval segmentation`).

Views of a whole scene: the scene is cut into tiles of the training box's X x Y footprint; each tile takes
the ``k`` frames covering most of its voxels (greedy, `sparse3d.ops.select_views`) and its voxels get the
features lifted from them (max over the views, as in training); the 3D network then runs on the whole scene
at once. The "2D only" labels (:func:`labels_2d`) lift the 2D net's class probabilities the same way (mean
over the tile's views) and take the argmax; a voxel that none of its tile's views sees takes the label of
the nearest voxel that one does (scipy cKDTree), and the fraction seen is reported.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from data_tools.scannet.labels import SCANNET20_NAMES
from sparse3d.tasks.segmentation.benchmark import class_confusion, scores_from_confusion, voxel_scores_dict
from sparse3d.tasks.segmentation.dataset import sample_features
from sparse3d.tasks.segmentation.sample import SegSample
from sparse3d.tasks.threedmv.config import ThreeDMVTrainConfig
from sparse3d.tasks.threedmv.data import Scene, choose_views, lift_features
from sparse3d.tasks.threedmv.model import ThreeDMVNet
from sparse3d.tasks.threedmv.net2d import Net2D, image_input

LabelFn = Callable[[SegSample], np.ndarray]


def tiles(sample: SegSample, footprint: Sequence[int]) -> List[np.ndarray]:
    """Index arrays int64 [n_t] of the sample's voxels in each non-empty X x Y tile of ``footprint`` voxels."""
    fx, fy = int(footprint[0]), int(footprint[1])
    if fx < 1 or fy < 1:
        raise ValueError(f"footprint must be two ints >= 1, got {list(footprint)}")
    c = np.asarray(sample.coords, np.int64)
    key = (c[:, 0] // fx) * 1_000_003 + (c[:, 1] // fy)
    order = np.argsort(key, kind="stable")
    _, starts = np.unique(key[order], return_index=True)
    return [np.sort(part) for part in np.split(order, starts[1:])]


def _sub(sample: SegSample, idx: np.ndarray) -> SegSample:
    from dataclasses import replace
    return replace(sample, coords=sample.coords[idx], color=sample.color[idx], tsdf=sample.tsdf[idx],
                   labels=sample.labels[idx])


def lift_scene(scene: Scene, sample: SegSample, maps: Callable[[np.ndarray], torch.Tensor], k: int,
               footprint: Sequence[int], depth_thresh: Optional[float], pool: str = "max"
               ) -> Tuple[torch.Tensor, torch.Tensor]:
    """(lifted [N, C], n_views int32 [N]) for every voxel of ``sample`` (a whole scene): per tile, the k best
    frames; ``maps(frame indices int64 [V]) -> [V, C, h, w]`` gives their 2D maps (features or
    probabilities), computed once per distinct frame."""
    parts = tiles(sample, footprint)
    chosen = [choose_views(_sub(sample, idx), scene.frames, k, depth_thresh) for idx in parts]
    uniq = np.unique(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)
    if len(uniq) == 0:
        raise ValueError(f"scene {sample.scene_id!r}: no frame sees any of its voxels")
    table = maps(uniq)
    pos = {int(v): i for i, v in enumerate(uniq)}
    items, sel = [], []
    for idx, views in zip(parts, chosen):
        if len(views) == 0:
            views = uniq[:1]  # a tile no frame sees: one view, whose depth test fails for all its voxels
        items.append((_sub(sample, idx), scene.frames, views))
        sel.extend(pos[int(v)] for v in views)
    lifted, n_views = lift_features(table[torch.as_tensor(sel)], items, depth_thresh, pool)
    order = np.concatenate(parts)
    out = torch.zeros_like(lifted)
    out[torch.from_numpy(order)] = lifted
    nv = torch.zeros_like(n_views)
    nv[torch.from_numpy(order)] = n_views
    return out, nv


def _maps_2d(net2d: Net2D, scene: Scene, which: int, device: torch.device) -> Callable[[np.ndarray], torch.Tensor]:
    def run(views: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            out = net2d(image_input(scene.frames.color[views]).to(device))
        return out[1] if which == 1 else torch.softmax(out[0], 1)
    return run


def predict_scene_labels(model: ThreeDMVNet, cfg: ThreeDMVTrainConfig, scene: Scene,
                         sample: Optional[SegSample] = None, tta: int = 1) -> np.ndarray:
    """uint8 [N]: the joint network's class of every voxel of ``sample`` (default: the scene's). ``tta``: test-time
    views of the 3D network (`segmentation.model.predict_logits`; the lifted features stay with their voxels,
    the frames are not re-chosen)."""
    from sparse3d.tasks.segmentation.model import predict_logits
    from sparse3d.utils.test_time_views import tta_views
    tta_views(tta)
    s = scene.sample if sample is None else sample
    if len(s) == 0:
        return np.zeros(0, np.uint8)
    device = next(model.parameters()).device
    feats = sample_features(s, cfg.model.geometry())
    if cfg.model.use_2d:
        if model.net2d is None:
            raise ValueError("the config has a 2D stream but the model has none")
        was = model.net2d.training
        model.net2d.eval()
        try:
            dt = cfg.depth_thresh if cfg.depth_thresh > 0 else None
            lifted, _ = lift_scene(scene, s, _maps_2d(model.net2d, scene, 1, device), cfg.views, cfg.box[:2], dt)
        finally:
            model.net2d.train(was)
        feats = torch.cat([feats, lifted.cpu().to(feats.dtype)], 1)
    probs = predict_logits(model.unet, s, cfg.model.unet(), tta=tta, feats=feats)
    return probs.argmax(1).to(torch.uint8).cpu().numpy()


def labels_2d(net2d: Net2D, scene: Scene, k: int, footprint: Sequence[int], depth_thresh: Optional[float] = None,
              sample: Optional[SegSample] = None) -> Tuple[np.ndarray, float]:
    """(uint8 [N] "2D only" labels of every voxel, fraction of voxels some chosen view sees): see the module
    docstring."""
    from scipy.spatial import cKDTree
    s = scene.sample if sample is None else sample
    device = next(net2d.parameters()).device
    net2d.eval()
    probs, n_views = lift_scene(scene, s, _maps_2d(net2d, scene, 0, device), k, footprint, depth_thresh, "mean")
    labels = probs.argmax(1).to(torch.uint8).cpu().numpy()
    seen = n_views.cpu().numpy() > 0
    if not seen.any():
        raise ValueError(f"scene {s.scene_id!r}: no voxel is seen by its chosen views")
    if not seen.all():
        _, nn = cKDTree(s.coords[seen]).query(s.coords[~seen], k=1)
        labels[~seen] = labels[seen][nn]
    return labels, float(seen.mean())


def scene_label_fn(scenes: Sequence[Scene], fn: Callable[[Scene, SegSample], np.ndarray]) -> Callable:
    """A `segmentation.predict` label_fn(sample) for the scenes (matched by scene id): fn(scene, sample)."""
    by_id = {sc.sample.scene_id: sc for sc in scenes}

    def run(sample: SegSample) -> np.ndarray:
        if sample.scene_id not in by_id:
            raise ValueError(f"scene {sample.scene_id!r} has no frames loaded (have {sorted(by_id)})")
        return fn(by_id[sample.scene_id], sample)
    return run


def evaluate_scenes(model: ThreeDMVNet, cfg: ThreeDMVTrainConfig, scenes: Sequence[Scene]) -> Dict[str, Any]:
    """Whole-scene voxel scores of the joint network (as segmentation.train.evaluate: "miou", "accuracy",
    "iou", "present", "voxels", "confusion", "class_names", "scenes")."""
    total = np.zeros((len(SCANNET20_NAMES), len(SCANNET20_NAMES)), np.int64)
    per: Dict[str, Any] = {}
    for sc in scenes:
        t0 = time.perf_counter()
        pred = predict_scene_labels(model, cfg, sc)
        conf = class_confusion(pred, sc.sample.labels)
        total += conf
        d = voxel_scores_dict(scores_from_confusion(conf))
        per[sc.sample.scene_id] = {"miou": d["miou"], "accuracy": d["accuracy"], "voxels": d["voxels"],
                                   "seconds": round(time.perf_counter() - t0, 4)}
    out = voxel_scores_dict(scores_from_confusion(total))
    out["class_names"] = list(SCANNET20_NAMES)
    out["scenes"] = per
    return out


def predict_checkpoint(checkpoint: str, data: str, out: str, split: Optional[str] = None,
                       scenes: Optional[Sequence[str]] = None, overwrite: bool = False, progress: bool = True,
                       device: str = "cpu", tta: int = 1) -> Dict:
    """`<out>/<scan>.txt` (+ `_voxels.npz`) for the whole-scene crops of ``data`` with a threedmv checkpoint
    (`segmentation.predict.predict_dataset`'s summary); ``tta`` test-time views (:func:`predict_scene_labels`)."""
    from sparse3d.utils.test_time_views import tta_views
    tta_views(tta)
    from sparse3d.tasks.segmentation.predict import predict_dataset
    from sparse3d.tasks.threedmv.data import load_scenes
    from sparse3d.tasks.threedmv.train import load_model
    model, cfg = load_model(checkpoint, device)
    sc = load_scenes(data, split, cfg.max_abs_tsdf, cfg.frame_step, cfg.depth_step, cfg.color_step, cfg.label_tsv,
                     with_labels=False)
    if scenes is not None:
        sc = [s for s in sc if s.sample.scene_id in set(scenes)]
    fn = scene_label_fn(sc, lambda scene, sample: predict_scene_labels(model, cfg, scene, sample, tta))
    os.makedirs(out, exist_ok=True)
    return predict_dataset(data, out, fn, scenes=scenes, split=split, overwrite=overwrite, progress=progress,
                           max_abs_tsdf=cfg.max_abs_tsdf)

"""Whole-scene prediction in the ScanNet benchmark's submission format.

For each whole-scene crop of a `sparse3d.crops` dataset (placement "whole"): run a model on the scene's
voxels (fully convolutional: the whole scene at once), give every vertex of the scan's
`<scan>_vh_clean_2.ply` the label of its nearest predicted voxel, and write `<scan>.txt` (one nyu40 id per
line, one line per vertex: what `sparse3d eval segmentation` and the benchmark score) plus
`<scan>_voxels.npz` (the per-voxel prediction, for viewing).

    fn, task, band = checkpoint_label_fn("runs/seg/last.pt", device="cpu")   # SegSample -> uint8 [N] (0..19)
    summary = predict_dataset("crops_whole", "preds", fn, split="val", max_abs_tsdf=band)
    summary = predict_dataset("crops_whole", "preds_vote", fn, split="val", vote_segments=True)  # segment voting
    vertex_labels(voxel_points, voxel_labels, vertex_points)           # the nearest-voxel transfer alone

The model call is a ``label_fn(sample) -> np.uint8 [N]`` (ScanNet-20 class per voxel, in the sample's
voxel order), or float ``[N, 20]`` class scores (probabilities) whose argmax is the class, which segment voting
sums: :func:`checkpoint_label_fn` builds it from a checkpoint of task "segmentation" (the U-Net)
or "segmentation-window" (the sliding-window baseline); :func:`module_label_fn` from any module
SparseTensor -> SparseTensor of 20 logits.

`<scan>_voxels.npz` keys: coords int32 [N,3] (crop-local voxels; scene lattice = coords + crop_origin),
labels uint8 [N] (predicted ScanNet-20 class), gt_labels uint8 [N] (the sample's labels, 255 = none),
crop_origin int32 [3], voxel_size float64 [], voxel_to_world float64 [4,4], scene_id str [].
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from data_tools import load_manifest
from data_tools.scannet.benchmark_export import MESH_SUFFIX, write_label_file
from data_tools.scannet.labels import SCANNET20_NYU40_IDS
from data_tools.scannet.ply import read_ply
from sparse3d.tasks.segmentation.sample import FLOORS, SegSample, load_sample, lowest_floor
from sparse3d.tasks.segmentation.segment_vote import (scene_segments, vote_over_segments,
                                                      vote_scores_over_segments)
from sparse3d.tensor import SparseTensor
from sparse3d.utils.atomic_io import atomic_save_npz

LabelFn = Callable[[SegSample], np.ndarray]
TASKS = ("segmentation", "segmentation-window")
N_CLASSES = len(SCANNET20_NYU40_IDS)
_TO_NYU40 = np.asarray(SCANNET20_NYU40_IDS, np.uint8)


def world_to_local(points: np.ndarray, voxel_to_world: np.ndarray, crop_origin: np.ndarray) -> np.ndarray:
    """float64 [V,3] crop-local voxel coordinates (continuous) of world points float [V,3]: the inverse of
    ``voxel_to_world`` (scene lattice -> world, float [4,4]) minus ``crop_origin`` int [3]."""
    m = np.asarray(voxel_to_world, np.float64)
    if m.shape != (4, 4):
        raise ValueError(f"voxel_to_world must be a 4x4 matrix, got shape {m.shape}")
    p = np.asarray(points, np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"points must be float [V, 3], got shape {p.shape}")
    inv = np.linalg.inv(m)
    return p @ inv[:3, :3].T + inv[:3, 3] - np.asarray(crop_origin, np.float64).reshape(3)


def vertex_labels(voxel_points: np.ndarray, voxel_labels: np.ndarray, vertex_points: np.ndarray,
                  return_distance: bool = False, return_index: bool = False
                  ) -> Union[np.ndarray, Tuple[np.ndarray, ...]]:
    """nyu40 id uint8 [V] of each vertex: the ScanNet-20 label of its nearest voxel (scipy cKDTree), mapped
    to nyu40 (0..19 -> the 20 benchmark ids).

    voxel_points float [N,3] and vertex_points float [V,3] in one frame (world metres, or voxel units:
    crop-local voxel coordinates and :func:`world_to_local` of the vertices); voxel_labels int [N] in 0..19.
    return_distance: also return float64 [V] the distance to that voxel (in the points' unit); return_index: then
    also int64 [V] that voxel's index."""
    from scipy.spatial import cKDTree
    vp = np.asarray(voxel_points, np.float64)
    lab = np.asarray(voxel_labels)
    q = np.asarray(vertex_points, np.float64)
    if vp.ndim != 2 or vp.shape[1] != 3 or len(vp) == 0:
        raise ValueError(f"voxel_points must be float [N, 3] with N >= 1, got shape {vp.shape}")
    if lab.shape != (len(vp),):
        raise ValueError(f"voxel_labels must be [N] = [{len(vp)}] (one per voxel point), got shape {lab.shape}")
    if lab.size and (lab.min() < 0 or lab.max() >= N_CLASSES):
        raise ValueError(f"voxel_labels must be ScanNet-20 classes in [0, {N_CLASSES - 1}], got range "
                         f"[{lab.min()}, {lab.max()}]")
    if q.ndim != 2 or q.shape[1] != 3:
        raise ValueError(f"vertex_points must be float [V, 3], got shape {q.shape}")
    dist, idx = cKDTree(vp).query(q, k=1)
    out = _TO_NYU40[lab.astype(np.int64)[idx]] if len(q) else np.zeros(0, np.uint8)
    extra: Tuple[np.ndarray, ...] = ()
    if return_distance:
        extra += (np.asarray(dist, np.float64),)
    if return_index:
        extra += (np.asarray(idx, np.int64).reshape(-1),)
    return (out,) + extra if extra else out


def module_label_fn(module: torch.nn.Module, features: Callable[[SegSample], torch.Tensor],
                    device: str | torch.device = "cpu") -> LabelFn:
    """A label_fn from any module SparseTensor -> SparseTensor with feats [N, 20] logits on the input's
    coordinates (batch 0): features(sample) -> float32 [N, F] are its input features. Eval mode, no grad."""
    def run(sample: SegSample) -> np.ndarray:
        if len(sample) == 0:
            return np.zeros(0, np.uint8)
        c = torch.from_numpy(np.asarray(sample.coords, np.int32))
        c = torch.cat([torch.zeros(len(c), 1, dtype=torch.int32), c], 1).to(device)
        f = features(sample).to(device=device, dtype=torch.float32)
        module.eval()
        with torch.no_grad():
            out = module(SparseTensor(c, f))
        logits = out.feats
        if tuple(out.coords.shape) != tuple(c.shape) or not torch.equal(out.coords, c):
            raise ValueError("model output must be on the input's coordinates in the input's order (a "
                             f"submanifold network), got {len(out.coords)} output voxels for {len(c)} input voxels")
        if tuple(logits.shape) != (len(sample), N_CLASSES):
            raise ValueError(f"model output feats must be [N, {N_CLASSES}] = [{len(sample)}, {N_CLASSES}] logits on "
                             f"the input voxels, got {tuple(logits.shape)}")
        return logits.argmax(1).to(torch.uint8).cpu().numpy()
    return run


def checkpoint_info(path: str) -> Tuple[str, float]:
    """(task, max_abs_tsdf) of a checkpoint: the task that wrote it and the near-surface band its training
    samples kept (the config's ``max_abs_tsdf``; 1.0 voxel, load_sample's default, when not recorded).
    Errors name the file."""
    from sparse3d.train.checkpoint import load_checkpoint
    state = load_checkpoint(path, "cpu")
    if "task" not in state:
        raise ValueError(f"checkpoint {path!r} records no task (a format-1 completion or gen2d checkpoint), "
                         f"expected one of {TASKS}")
    cfg = state.get("config")
    band = cfg.get("max_abs_tsdf", 1.0) if isinstance(cfg, dict) else 1.0
    return str(state["task"]), float(band)


def checkpoint_label_fn(path: str, device: str = "cpu", backend: Optional[str] = None, tta: int = 1,
                        scores: bool = False) -> Tuple[LabelFn, str, float]:
    """(label_fn, task, max_abs_tsdf) of a checkpoint (see :func:`checkpoint_info`): task "segmentation"
    (the sparse U-Net, run on the whole scene at once; ``backend`` = its sparse convolution backend, None =
    as trained; ``tta`` = test-time views whose class probabilities are averaged, 1..8, ``sparse3d.utils.test_time_views.tta_views``)
    or "segmentation-window" (the sliding-window dense baseline: ``window_infer``'s load_window_model and
    sliding_window_labels; no backend, tta 1). ``scores``: the U-Net's label_fn returns its class probabilities
    float32 [N, 20] instead of the argmax (the baseline always returns labels). Another task is a ValueError
    naming the file."""
    task, max_abs_tsdf = checkpoint_info(path)
    if task == "segmentation":
        from sparse3d.tasks.segmentation.checkpoint import load_model
        from sparse3d.tasks.segmentation.model import predict_labels, predict_logits
        from sparse3d.utils.test_time_views import tta_views
        tta_views(tta)  # checks tta before any scene is read
        model, model_cfg = load_model(path, device)
        if scores:
            return (lambda s: predict_logits(model, s, model_cfg, backend=backend, tta=tta).cpu().numpy()), task, \
                max_abs_tsdf
        return (lambda s: predict_labels(model, s, model_cfg, backend=backend, tta=tta)), task, max_abs_tsdf
    if task == "segmentation-window":
        from sparse3d.tasks.segmentation.window_infer import load_window_model, sliding_window_labels
        if backend is not None:
            raise ValueError(f"backend applies to the sparse U-Net; checkpoint {path!r} is the dense sliding-window "
                             f"baseline (task 'segmentation-window'), got backend {backend!r}")
        if tta != 1:
            raise ValueError(f"tta applies to the sparse U-Net; checkpoint {path!r} is the dense sliding-window "
                             f"baseline (task 'segmentation-window'), got tta {tta!r}")
        wnet, _ = load_window_model(path, device)
        wnet.to(device)
        return (lambda s: sliding_window_labels(wnet, s)), task, max_abs_tsdf
    raise ValueError(f"checkpoint {path!r} was written by task {task!r}, expected one of {TASKS}")


def _scene_record(crop_path: str) -> Dict:
    p = os.path.join(os.path.dirname(os.path.abspath(crop_path)), "_scene.json")
    if not os.path.isfile(p):
        raise FileNotFoundError(f"{p}: no _scene.json beside the crop (the dataset was not written by "
                                "`sparse3d preprocess`; it records the scan and its voxel_to_world)")
    with open(p) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{p}: not valid JSON: {e}") from e


def scene_mesh_path(crop_path: str) -> Tuple[str, Optional[str]]:
    """(scan id, path of `<scan>_vh_clean_2.ply` or None) of a crop, from the `source` of its `_scene.json`.
    None for an RGB-D folder (`source_kind` "rgbd": no mesh, only voxel labels can be predicted); a ScanNet
    scene without its mesh is a FileNotFoundError naming the files."""
    rec = _scene_record(crop_path)
    src = rec.get("source")
    record = f"{os.path.dirname(os.path.abspath(crop_path))}/_scene.json"
    if not src:
        raise ValueError(f"{record}: no 'source' (the scan folder)")
    scan = os.path.basename(os.path.normpath(src))
    mesh = os.path.join(src, scan + MESH_SUFFIX)
    if rec.get("source_kind") == "rgbd":
        return scan, None
    if not os.path.isfile(mesh):
        raise FileNotFoundError(f"{mesh}: the scan's mesh not found (source {src!r} of kind "
                                f"{rec.get('source_kind', '?')!r} in {record}); per-vertex predictions need the "
                                "ScanNet scene folder with its _vh_clean_2.ply")
    return scan, mesh


def voxel_scores(sample: SegSample, label_fn: LabelFn) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """(uint8 [N] label_fn's class 0..19 of every voxel of the sample, float [N, 20] its class scores or None when
    label_fn returns labels); the shape checked."""
    out = np.asarray(label_fn(sample))
    if out.ndim == 2 and out.shape == (len(sample), N_CLASSES) and np.issubdtype(out.dtype, np.floating):
        return out.argmax(1).astype(np.uint8), out
    if out.shape != (len(sample),):
        raise ValueError(f"label_fn must return [N] = [{len(sample)}] labels or float [N, {N_CLASSES}] class scores "
                         f"(one row per voxel of {sample.scene_id!r}), got {out.dtype} {out.shape}")
    return out.astype(np.uint8), None


def voxel_labels(sample: SegSample, label_fn: LabelFn) -> np.ndarray:
    """uint8 [N]: label_fn's class 0..19 of every voxel of the sample (see :func:`voxel_scores`)."""
    return voxel_scores(sample, label_fn)[0]


def predict_scene(sample: SegSample, label_fn: LabelFn, vertices: np.ndarray, segments: Optional[np.ndarray] = None
                  ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(voxel labels uint8 [N] 0..19, vertex nyu40 uint8 [V], vertex-to-voxel distance float64 [V] in voxels)
    of one whole-scene sample (needs voxel_to_world) and its mesh vertices float [V,3] (world metres).
    segments: int [V] segment id per vertex: each segment takes the argmax of its vertices' summed class scores
    (label_fn's scores of each vertex's nearest voxel), or the majority of their labels when label_fn gives labels."""
    if sample.voxel_to_world is None:
        raise ValueError(f"sample {sample.scene_id!r} has no voxel_to_world: vertices cannot be placed in its lattice")
    if len(sample) == 0:
        raise ValueError(f"sample {sample.scene_id!r} has no voxels to label the mesh from")
    labels, scores = voxel_scores(sample, label_fn)
    local = world_to_local(vertices, sample.voxel_to_world, sample.crop_origin)
    nyu, dist, nearest = vertex_labels(sample.coords, labels, local, return_distance=True, return_index=True)
    if segments is not None:
        if scores is None:
            nyu = vote_over_segments(nyu, segments)
        else:
            nyu = _TO_NYU40[vote_scores_over_segments(scores[nearest], segments)]
    return labels, nyu, dist


def dataset_scenes(data: str, scenes: Optional[Sequence[str]] = None, split: Optional[str] = None
                   ) -> List[Tuple[str, str]]:
    """[(scene id, whole-scene crop path)] of a `sparse3d.crops` dataset with placement "whole": all scenes, those
    of ``split``, or ``scenes``."""
    if isinstance(scenes, str):
        raise TypeError(f"scenes must be a list of scene ids, got the string {scenes!r}")
    man = load_manifest(data)
    if man.get("placement") != "whole":
        raise ValueError(f"{os.path.join(data, 'manifest.json')}: placement must be 'whole' (one crop per scene: "
                         f"preprocess with --placement whole), got {man.get('placement')!r}")
    entries = man.get("scenes") or {}
    if split is not None:
        have = sorted({e.get("split") for e in entries.values()})
        if split not in have:
            raise ValueError(f"split must be one of the dataset's splits {have}, got {split!r}")
    if scenes is not None:
        missing = sorted(set(scenes) - set(entries))
        if missing:
            raise ValueError(f"scenes: {missing} are not in {os.path.join(data, 'manifest.json')} "
                             f"(it has {sorted(entries)[:10]}{' ...' if len(entries) > 10 else ''})")
    out = []
    for sid in sorted(entries):
        e = entries[sid]
        if (scenes is not None and sid not in scenes) or (split is not None and e.get("split") != split):
            continue
        if len(e.get("crops", [])) != 1:
            raise ValueError(f"{os.path.join(data, 'manifest.json')}: scene {sid!r} must have one whole-scene crop, "
                             f"got {len(e.get('crops', []))}")
        out.append((sid, os.path.join(data, e["crops"][0])))
    if not out:
        raise ValueError(f"{data}: no scenes selected (split={split!r}, scenes={scenes!r})")
    return out


def predict_dataset(data: str, out: str, label_fn: LabelFn, scenes: Optional[Sequence[str]] = None,
                    split: Optional[str] = None, overwrite: bool = False, progress: bool = True,
                    max_abs_tsdf: float = 1.0, vote_segments: bool = False, floor: str = "zero") -> Dict:
    """Write `<out>/<scan>.txt` and `<out>/<scan>_voxels.npz` for the selected whole-scene crops of ``data``
    (see :func:`dataset_scenes`). A scan without a `_vh_clean_2.ply` (an RGB-D folder) gets only the voxel
    labels (`_voxels.npz`; its entry in "done" has "mesh": None). Resumable: a scan whose `.txt` (without a
    mesh: `_voxels.npz`) exists is skipped unless ``overwrite``; a scene that fails is recorded and the run goes
    on. ``vote_segments``: each segment of the scan's `_vh_clean_2.0.010000.segs.json` takes the argmax of
    its vertices' summed class scores, or their majority label when label_fn gives labels (``segment_vote``); a
    scan without a mesh or segs json then fails. Two selected scenes of one scan (preprocess --pairs) are an error.
    ``floor``: where the U-Net's height feature starts, "zero" (the up-aligned world's z = 0: ScanNet, the synthetic
    rooms, what the U-Net is trained on) or "lowest" (``sample.lowest_floor`` of each scene: scans whose z = 0 is
    not the floor, such as 7-Scenes or an RGB-D folder); recorded as ``floor_z`` in `_voxels.npz`.
    Returns {"done": {scan: {"n_vertices",
    "n_voxels", "mesh", "mean_distance_voxels", "max_distance_voxels", "seconds"}}, "skipped": [scans],
    "failed": {scene: msg}}."""
    if floor not in FLOORS:
        raise ValueError(f"floor must be one of {list(FLOORS)}, got {floor!r}")
    todo = dataset_scenes(data, scenes, split)
    os.makedirs(out, exist_ok=True)
    done: Dict[str, Dict] = {}
    skipped: List[str] = []
    failed: Dict[str, str] = {}
    seen: Dict[str, str] = {}
    it = todo
    if progress:
        from tqdm import tqdm
        it = tqdm(todo, desc="predict", unit="scene")
    for sid, crop in it:
        try:
            scan, mesh_path = scene_mesh_path(crop)
            if scan in seen:
                raise ValueError(f"scenes {seen[scan]!r} and {sid!r} are samples of one scan {scan!r} (preprocess "
                                 "--pairs): select one of them (scenes=...)")
            seen[scan] = sid
            txt = os.path.join(out, scan + ".txt")
            npz = os.path.join(out, scan + "_voxels.npz")
            if not overwrite and os.path.isfile(txt if mesh_path else npz):
                skipped.append(scan)
                continue
            t0 = time.time()
            sample = load_sample(crop, max_abs_tsdf)
            if floor == "lowest":
                sample = replace(sample, floor_z=lowest_floor(sample))
            if mesh_path is None:  # an RGB-D folder: no mesh to label, the voxel labels are the prediction
                if vote_segments:
                    raise ValueError(f"vote_segments needs the scan's mesh and segs json; {scan!r} is an RGB-D folder "
                                     "(no _vh_clean_2.ply)")
                labels = voxel_labels(sample, label_fn)
            else:
                vertices = read_ply(mesh_path).vertices
                segs = scene_segments(mesh_path, len(vertices)) if vote_segments else None
                labels, nyu, dist = predict_scene(sample, label_fn, vertices, segs)
            atomic_save_npz(npz, coords=sample.coords, labels=labels, gt_labels=sample.labels,
                            crop_origin=sample.crop_origin, voxel_size=np.asarray(sample.voxel_size, np.float64),
                            voxel_to_world=np.asarray(sample.voxel_to_world, np.float64),
                            scene_id=np.array(sample.scene_id), floor_z=np.asarray(sample.floor_z, np.float64))
            if mesh_path is None:
                done[scan] = {"n_vertices": 0, "n_voxels": int(len(sample)), "mesh": None,
                              "seconds": round(time.time() - t0, 3)}
                continue
            write_label_file(txt, nyu)
            done[scan] = {"n_vertices": int(len(nyu)), "n_voxels": int(len(sample)), "mesh": mesh_path,
                          "mean_distance_voxels": float(dist.mean()) if len(dist) else 0.0,
                          "max_distance_voxels": float(dist.max()) if len(dist) else 0.0,
                          "seconds": round(time.time() - t0, 3)}
        except (OSError, ValueError) as e:
            failed[sid] = str(e)
    return {"done": done, "skipped": skipped, "failed": failed}

"""`preprocess(root, out, config)`: ScanNet root / scene folder / RGB-D folder(s) in, crop dataset out.

Every recipe (`data_tools.recipes`: "labels", "completion", "segmentation") runs through this one pipeline.

Resumable: a scene is done when `<out>/<scene>/_scene.json` exists with the same parameters;
done scenes are skipped. Every file is written atomically. A scene that fails (corrupt or
truncated file) is reported by file and frame, the others go on, and the summary lists the
failures (`preprocess` returns it; the CLI exits non-zero). A worker process that dies (killed,
e.g. out of memory) breaks the process pool: every scene not finished by then is recorded as
failed with that reason, the manifest is still written and the summary returned. With ``dask``
the scenes run as tasks on a Dask distributed cluster (a scheduler address, or ``local:N``) with the
same skipping of done scenes, failure report and manifest. A run killed outright (kill -9) leaves
only whole files under their final names; rerun it to finish (tests/test_faults_kill.py). See
`data_tools.chunks` for the format of the output.
"""
from __future__ import annotations

import concurrent.futures as cf
import glob
import json
import multiprocessing as mp
import os
import time
import traceback
import uuid
import zlib
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

from sparse3d.utils.atomic_io import atomic_write_json, remove_stale_temps

from .chunks import FORMAT_VERSION
from .frames import FrameSource
from .scene_crops import CropConfig, Mesh, SceneError, process_scene

PathLike = Union[str, os.PathLike]


@dataclass
class SceneSource:
    """One scene to process: kind is 'scannet' (folder with <id>.sens) or 'rgbd' (RGB-D folder)."""

    scene_id: str
    path: str
    kind: str
    source_id: str = ""  # the scan's id when several samples (pairs) come from one scan; default scene_id

    def __post_init__(self) -> None:
        self.source_id = self.source_id or self.scene_id


def expand_pairs(sources: List[SceneSource], pairs: int) -> List[SceneSource]:
    """pairs > 1: each scan becomes `pairs` samples `<scene>_pair<q>` (own seeded frames, same split)."""
    if pairs == 1:
        return sources
    return [SceneSource(f"{s.scene_id}_pair{q:02d}", s.path, s.kind, s.scene_id) for s in sources for q in range(pairs)]


def _is_rgbd(d: str) -> bool:
    return os.path.isfile(os.path.join(d, "camera-intrinsics.txt")) or os.path.isfile(
        os.path.join(d, "intrinsic", "intrinsic_depth.txt"))


def discover(root: PathLike) -> List[SceneSource]:
    """Scenes under `root`: a ScanNet root (scene folders, optionally under scans/), one scene
    folder, one RGB-D folder, or a folder of RGB-D folders."""
    root = os.path.abspath(os.fspath(root))
    if not os.path.isdir(root):
        raise FileNotFoundError(f"input root not found: {root}")
    name = os.path.basename(root)
    if os.path.isfile(os.path.join(root, name + ".sens")):
        return [SceneSource(name, root, "scannet")]
    if _is_rgbd(root):
        return [SceneSource(name, root, "rgbd")]
    base = os.path.join(root, "scans") if os.path.isdir(os.path.join(root, "scans")) else root
    out = []
    for n in sorted(os.listdir(base)):
        d = os.path.join(base, n)
        if not os.path.isdir(d):
            continue
        if os.path.isfile(os.path.join(d, n + ".sens")):
            out.append(SceneSource(n, d, "scannet"))
        elif _is_rgbd(d):
            out.append(SceneSource(n, d, "rgbd"))
    if not out:
        raise ValueError(f"{root}: no scenes found: expected ScanNet scene folders (<id>/<id>.sens) "
                         f"or RGB-D folders (camera-intrinsics.txt or intrinsic/intrinsic_depth.txt)")
    return out


def read_split_files(split_dir: Optional[PathLike]) -> Dict[str, str]:
    """scene id -> split from `scannetv2_{train,val,test}.txt` in split_dir (empty if None)."""
    out: Dict[str, str] = {}
    if split_dir is None:
        return out
    for split in ("train", "val", "test"):
        p = os.path.join(os.fspath(split_dir), f"scannetv2_{split}.txt")
        if os.path.isfile(p):
            with open(p) as f:
                for line in f:
                    if line.strip():
                        out[line.strip()] = split
    return out


def assign_split(scene_id: str, official: Dict[str, str], val_fraction: float, seed: int) -> str:
    """The official split if listed, else 'val' for a seeded hash fraction of scenes, else 'train'."""
    if scene_id in official:
        return official[scene_id]
    u = zlib.crc32(f"{seed}:{scene_id}".encode()) / 2.0 ** 32
    return "val" if u < val_fraction else "train"


LABEL_TSV = "scannetv2-labels.combined.tsv"  # looked for in the ScanNet root when no label_tsv is given


def _load_source(src: SceneSource, label_tsv: Optional[str] = None, align_up: bool = False
                 ) -> Tuple[FrameSource, Optional[Mesh]]:
    """(frames, mesh or None) for a scene source; mesh = (vertices, faces, nyu40 per vertex or None).

    Labels come from ``_vh_clean_2.labels.ply``, else from the aggregation + segs json mapped through
    ``label_tsv``; with neither the mesh is unlabelled (None), never silently all zeros."""
    if align_up:
        from .up_align import UpAligned
        frames, mesh = _load_source(src, label_tsv)
        return UpAligned(frames), mesh
    if src.kind == "rgbd":
        from .scannet.rgbd_folder import RGBDFolder
        return RGBDFolder(src.path), None
    from .scannet.labels import LabelMap
    from .scannet.scene import ScanNetScene
    sc = ScanNetScene(src.path)
    mesh = None
    if sc.has_mesh():
        if os.path.isfile(sc.labels_path):
            m, nyu, _ = sc.labelled_mesh()
        elif label_tsv and os.path.isfile(sc.segs_path) and os.path.isfile(sc.aggregation_path):
            m, nyu, _ = sc.labelled_mesh(LabelMap.from_tsv(label_tsv))
        else:
            m, nyu = sc.labelled_mesh()[0], None
        mesh = (m.vertices, m.faces, nyu)
    return sc, mesh


def _scene_done(out_scene: str, params: Dict) -> bool:
    p = os.path.join(out_scene, "_scene.json")
    if not os.path.isfile(p):
        return False
    try:
        with open(p) as f:
            rec = json.load(f)
    except (OSError, json.JSONDecodeError):
        return False
    return rec.get("params") == params and rec.get("format_version") == FORMAT_VERSION


def _run_one(src: SceneSource, out: str, cfg: CropConfig, threads: int,
             label_tsv: Optional[str] = None) -> Tuple[str, Optional[Dict], Optional[str]]:
    """Worker: process one scene; returns (scene_id, record or None, error message or None).
    threads > 0: torch.set_num_threads(threads) first (this also sets the OpenMP threads that torch
    and the native fusion share; OMP_NUM_THREADS would be too late, torch is imported already)."""
    if threads > 0:
        import torch
        torch.set_num_threads(threads)
    out_scene = os.path.join(out, src.scene_id)
    try:
        frames, mesh = _load_source(src, label_tsv, cfg.align_up)
        # drop the record first (a failed rerun must not leave it pointing at deleted crops), then stale crops
        record = os.path.join(out_scene, "_scene.json")
        if os.path.exists(record):
            os.remove(record)
        for p in glob.glob(os.path.join(out_scene, "crop_*.npz")):
            os.remove(p)
        remove_stale_temps(out_scene)  # left by a run killed mid-write (kill -9)
        rec = process_scene(frames, src.scene_id, out_scene, cfg, mesh)
        rec["format_version"] = FORMAT_VERSION
        rec["source"], rec["source_kind"], rec["source_id"] = src.path, src.kind, src.source_id
        atomic_write_json(os.path.join(out_scene, "_scene.json"), rec)
        return src.scene_id, rec, None
    except (SceneError, ValueError, OSError, EOFError) as e:
        return src.scene_id, None, str(e)
    except Exception as e:  # noqa: BLE001 - reported, the run goes on
        return src.scene_id, None, f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}"
    finally:
        close = getattr(locals().get("frames"), "close", None)
        if close is not None:
            close()


Result = Tuple[str, Optional[Dict], Optional[str]]  # (scene id, record or None, error message or None)


def _pool_failure(e: BaseException) -> str:
    if isinstance(e, BrokenProcessPool):
        return (f"not finished: a worker process died (killed, e.g. out of memory?) and the process pool stopped "
                f"({type(e).__name__}: {e}); rerun to retry the scenes that did not finish")
    return f"worker error: {type(e).__name__}: {e}"


def _run_serial(todo: List[SceneSource], out: str, cfg: CropConfig, label_tsv: Optional[str]) -> Iterator[Result]:
    for s in todo:
        yield _run_one(s, out, cfg, 0, label_tsv)


def _run_pool(todo: List[SceneSource], out: str, cfg: CropConfig, label_tsv: Optional[str],
              workers: int) -> Iterator[Result]:
    """Scenes on `workers` spawned processes, OpenMP threads split between them; results as they finish."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as ex:
        futs = {ex.submit(_run_one, s, out, cfg, threads, label_tsv): s.scene_id for s in todo}
        for fut in cf.as_completed(futs):
            try:
                yield fut.result()
            except Exception as e:  # noqa: BLE001 - BrokenProcessPool (a worker died) and the like
                yield futs[fut], None, _pool_failure(e)


def parse_dask(dask: str) -> Optional[int]:
    """The worker count of ``"local:N"`` (N >= 1), None for a scheduler address ("tcp://host:8786", ...)."""
    if not isinstance(dask, str) or not dask.strip():
        raise ValueError(f"dask: expected a scheduler address (e.g. tcp://host:8786) or local:N, got {dask!r}")
    if not dask.startswith("local:"):
        return None
    n = dask[len("local:"):]
    if not n.isdigit() or int(n) < 1:
        raise ValueError(f"dask: expected local:N with an integer N >= 1 (workers of a local cluster), got {dask!r}")
    return int(n)


def _dask_failure(e: BaseException) -> str:
    return (f"not finished on the Dask cluster ({type(e).__name__}: {e}); a worker that dies running a scene "
            f"(killed, e.g. out of memory?) is retried on others before the scene fails; rerun to retry the "
            f"scenes that did not finish")


def _run_dask(todo: List[SceneSource], out: str, cfg: CropConfig, label_tsv: Optional[str],
              dask: str) -> Iterator[Result]:
    """One task per scene on a Dask distributed cluster: the scheduler at address ``dask``, or with
    ``local:N`` a LocalCluster of N single-threaded worker processes started (and stopped) here, the
    OpenMP threads split between them. Every scene is yielded once: its result, or the error that kept it
    from finishing (a task that raised, a worker lost, the scheduler gone)."""
    try:
        import distributed
    except ImportError as e:  # dask is only needed here: imported when --dask is used
        raise ValueError(f"dask: {dask!r} needs the dask[distributed] package (pip install 'dask[distributed]'): "
                         f"{e}") from e
    n_local = parse_dask(dask)
    if not todo:  # every scene done already: no cluster to start or reach
        return
    cluster = None
    threads = 0  # a remote worker keeps its own thread setting (dask worker --nthreads, OMP_NUM_THREADS)
    try:
        if n_local is not None:
            threads = max(1, (os.cpu_count() or 1) // n_local)
            cluster = distributed.LocalCluster(n_workers=n_local, threads_per_worker=1, processes=True,
                                               dashboard_address=":0")
        try:
            client = distributed.Client(cluster if cluster is not None else dask, timeout="30s")
        except (OSError, TimeoutError) as e:
            raise ValueError(f"dask: cannot reach a Dask scheduler at {dask!r} ({type(e).__name__}: {e}); start one "
                             f"with `dask scheduler` and workers with `dask worker {dask}`") from e
        with client:
            run = uuid.uuid4().hex[:8]
            futs = {client.submit(_run_one, s, out, cfg, threads, label_tsv, pure=False,
                                  key=f"sparse3d-preprocess-{s.scene_id}-{run}"): s.scene_id for s in todo}
            pending = set(futs.values())
            try:
                for fut in distributed.as_completed(futs):
                    sid = futs[fut]
                    try:
                        res: Result = fut.result()
                    except Exception as e:  # noqa: BLE001 - KilledWorker, a task error: reported per scene
                        res = (sid, None, _dask_failure(e))
                    pending.discard(sid)
                    yield res
            except (OSError, TimeoutError) as e:  # the scheduler went away: the scenes not heard of fail
                for sid in sorted(pending):
                    yield sid, None, _dask_failure(e)
    finally:
        if cluster is not None:
            cluster.close()


def preprocess(root: PathLike, out: PathLike, config: Optional[CropConfig] = None, workers: int = 1,
               split_dir: Optional[PathLike] = None, val_fraction: float = 0.2, split_seed: int = 0,
               scenes: Optional[Sequence[str]] = None, progress: bool = True, force: bool = False,
               label_tsv: Optional[PathLike] = None, dask: Optional[str] = None) -> Dict:
    """Preprocess every scene under `root` into a crop dataset at `out`; returns the summary.

    config: CropConfig, e.g. `data_tools.recipe_config("completion")` (default: the "labels" recipe, 4 cm
    voxels, 32x32x64 grid crops; see data_tools.recipes); workers: processes (scenes run in
    parallel, OpenMP threads split between them); dask: instead of `workers`, run one task per scene on a
    Dask distributed cluster: a scheduler address ("tcp://host:8786"; `root` and `out` must be on a file
    system every worker sees at the same path) or "local:N" (a LocalCluster of N worker processes on this
    machine); split_dir: folder with scannetv2_{train,val,test}.txt;
    val_fraction/split_seed: hash split for scenes not listed there; scenes: restrict to these ids;
    force: reprocess done scenes; label_tsv: scannetv2-labels.combined.tsv, to label scenes that have
    aggregation + segs json but no labels.ply (default: ``<root>/scannetv2-labels.combined.tsv`` if present).
    Summary: {"done": [...], "skipped": [...], "failed": {id: msg}, "manifest": path, "seconds": t}. Writes
    `<out>/manifest.json` (all done scenes). Every way of running (serial, `workers`, `dask`) skips the same
    done scenes (:func:`remaining_scenes`) and writes the same manifest (:func:`write_manifest`).
    """
    cfg = config or CropConfig()
    cfg.validate()
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: expected an int >= 1, got {workers!r}")
    if dask is not None:
        parse_dask(dask)
        if workers != 1:
            raise ValueError(f"workers and dask: give one of them, got workers={workers} and dask={dask!r}")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction: expected a number in [0, 1), got {val_fraction!r}")
    t0 = time.time()
    out = os.path.abspath(os.fspath(out))
    os.makedirs(out, exist_ok=True)
    remove_stale_temps(out, ["manifest.json"])  # a run killed while writing it (each scene folder: _run_one)
    sources = discover(root)
    if label_tsv is not None:
        label_tsv = os.path.abspath(os.fspath(label_tsv))
        if not os.path.isfile(label_tsv):
            raise ValueError(f"label_tsv: no such file {label_tsv!r}")
    elif os.path.isfile(os.path.join(os.fspath(root), LABEL_TSV)):
        label_tsv = os.path.abspath(os.path.join(os.fspath(root), LABEL_TSV))
    if scenes is not None:
        if isinstance(scenes, str):
            raise TypeError(f"scenes: expected a list of scene ids, got the string {scenes!r}")
        want = set(scenes)
        missing = sorted(want - {s.scene_id for s in sources})
        if missing:
            raise ValueError(f"scenes: {missing} not found under {os.fspath(root)!r} "
                             f"(found {len(sources)} scenes: {[s.scene_id for s in sources][:10]}"
                             f"{' ...' if len(sources) > 10 else ''})")
        sources = [s for s in sources if s.scene_id in want]
    sources = expand_pairs(sources, cfg.pairs)
    todo, skipped = remaining_scenes(sources, out, cfg, force)
    failed: Dict[str, str] = {}
    done: List[str] = []
    if dask is not None:
        results = _run_dask(todo, out, cfg, label_tsv, dask)
    elif workers == 1 or len(todo) <= 1:
        results = _run_serial(todo, out, cfg, label_tsv)
    else:
        results = _run_pool(todo, out, cfg, label_tsv, workers)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(todo), desc="preprocess", unit="scene")
    try:
        for sid, _, err in results:
            (failed.__setitem__(sid, err) if err else done.append(sid))
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"failed={len(failed)}")
    finally:
        if bar is not None:
            bar.close()
    manifest = write_manifest(out, cfg, split_dir, val_fraction, split_seed, failed)
    return {"done": sorted(done), "skipped": skipped, "failed": failed, "manifest": manifest,
            "seconds": round(time.time() - t0, 2)}


def remaining_scenes(sources: List[SceneSource], out: str, cfg: CropConfig, force: bool = False
                     ) -> Tuple[List[SceneSource], List[str]]:
    """(scenes to process, ids of the scenes skipped): a scene is done, and skipped unless ``force``, when
    ``<out>/<scene>/_scene.json`` exists with the same parameters and format version."""
    params = cfg.to_json()
    todo, skipped = [], []
    for s in sources:
        if not force and _scene_done(os.path.join(out, s.scene_id), params):
            skipped.append(s.scene_id)
        else:
            todo.append(s)
    return todo, skipped


# copied from each _scene.json into the manifest's scene entry (see data_tools.chunks)
SCENE_KEYS = ("n_frames", "n_input_frames", "has_labels", "grid_origin", "grid_dims", "source", "source_kind",
              "source_id", "voxel_size", "voxel_to_world", "up_rotation", "target_frames", "input_frames", "frame_ids")


def write_manifest(out: str, cfg: CropConfig, split_dir: Optional[PathLike], val_fraction: float, split_seed: int,
                   failed: Dict[str, str]) -> str:
    """Collect every done scene's `_scene.json` under `out` into `<out>/manifest.json`."""
    official = read_split_files(split_dir)
    params = cfg.to_json()
    scenes: Dict[str, Dict] = {}
    splits: Dict[str, List[str]] = {"train": [], "val": [], "test": []}
    for p in sorted(glob.glob(os.path.join(out, "*", "_scene.json"))):
        with open(p) as f:
            rec = json.load(f)
        if rec.get("params") != params or rec.get("format_version") != FORMAT_VERSION:
            continue
        sid = rec["scene_id"]
        split = assign_split(rec.get("source_id", sid), official, val_fraction, split_seed)
        files = [f"{sid}/{c['file']}" for c in rec["crops"]]
        splits.setdefault(split, []).extend(files)
        scenes[sid] = {"split": split, "crops": files, **{k: rec[k] for k in SCENE_KEYS}}
    man = {"format": "sparse3d.crops", "version": FORMAT_VERSION, "recipe": cfg.recipe, "known": cfg.known,
           "placement": cfg.placement, "voxel_size": cfg.voxel_size, "trunc_voxels": cfg.trunc_voxels,
           "crop_size": None if cfg.placement == "whole" else list(cfg.crop_size), "n_levels": cfg.n_levels,
           "params": params, "splits": splits, "scenes": scenes, "failed": failed}
    path = os.path.join(out, "manifest.json")
    atomic_write_json(path, man)
    return path

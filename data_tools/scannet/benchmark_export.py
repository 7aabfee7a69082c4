"""The ScanNet benchmark's per-vertex label files: ground-truth export and the submission format.

Format (the benchmark's semantic label task): `<scene_id>.txt`, one nyu40 id (0..40, 0 = unannotated)
per line, one line per vertex of `<scene_id>_vh_clean_2.ply`, in vertex order.

    labels = scene_gt_labels(scene_dir, label_tsv=None, source="auto")   # uint16 [V] nyu40 ids
    export_scene_gt(scene_dir, out_dir)                                    # -> <out_dir>/<scene_id>.txt
    export_gt(root, out_dir)                                               # every scene; resumable; summary
    write_label_file(path, ids); read_label_file(path, n_expected=V)      # the file format, checked

Ground truth comes, as ScanNet's export script builds it, either from `<scene>_vh_clean_2.labels.ply`
(vertex property `label`) or from `<scene>_vh_clean_2.0.010000.segs.json` + `<scene>.aggregation.json`
mapped through `scannetv2-labels.combined.tsv` (raw category -> nyu40id; a later group overwrites an
earlier one on shared segments; vertices in no group -> 0). An aggregation label the tsv does not list
is an error naming both files (the official script fails on it too), never a silent 0.
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from sparse3d.utils.atomic_io import atomic_write_bytes

from .labels import LabelMap, read_aggregation, read_segs, vertex_instances_and_labels
from .ply import read_ply

PathLike = Union[str, os.PathLike]

SOURCES = ("auto", "labels_ply", "aggregation")
LABEL_TSV = "scannetv2-labels.combined.tsv"
NYU40_MAX = 40
MESH_SUFFIX = "_vh_clean_2.ply"


def _scene_paths(scene_dir: str) -> Dict[str, str]:
    sid = os.path.basename(os.path.normpath(scene_dir))
    p = lambda suf: os.path.join(scene_dir, sid + suf)  # noqa: E731
    return {"scene_id": sid, "mesh": p(MESH_SUFFIX), "labels": p("_vh_clean_2.labels.ply"),
            "segs": p("_vh_clean_2.0.010000.segs.json"), "aggregation": p(".aggregation.json")}


def _require_file(path: str, what: str) -> None:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: {what} not found")


def mesh_vertex_count(mesh_path: PathLike) -> int:
    """Number of vertices of a PLY (read from its header only: cheap for large meshes)."""
    mesh_path = os.fspath(mesh_path)
    with open(mesh_path, "rb") as f:
        head = f.read(65536)
    if not head.startswith(b"ply"):
        raise ValueError(f"{mesh_path}: not a PLY file (missing 'ply' magic)")
    for line in head.split(b"\n"):
        tok = line.split()
        if len(tok) == 3 and tok[0] == b"element" and tok[1] == b"vertex":
            return int(tok[2])
        if line.strip() == b"end_header":
            break
    raise ValueError(f"{mesh_path}: no 'element vertex N' in the PLY header")


def scene_gt_labels(scene_dir: PathLike, label_tsv: Optional[PathLike] = None, source: str = "auto") -> np.ndarray:
    """uint16 [V] nyu40 id per vertex of the scene's `_vh_clean_2.ply` (V = its vertex count).

    source: "labels_ply" (the `.labels.ply` vertex `label`), "aggregation" (segs + aggregation json through
    `label_tsv`) or "auto" (labels.ply when present, else the aggregation). Errors name the file: a missing
    mesh / labels / json / tsv, a vertex count that differs from the mesh's, a raw category not in the tsv.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    scene_dir = os.fspath(scene_dir)
    ps = _scene_paths(scene_dir)
    _require_file(ps["mesh"], "scene mesh (the benchmark's vertex order)")
    n = mesh_vertex_count(ps["mesh"])
    if source == "auto":
        source = "labels_ply" if os.path.isfile(ps["labels"]) else "aggregation"
    if source == "labels_ply":
        _require_file(ps["labels"], "labelled mesh")
        m = read_ply(ps["labels"])
        if m.labels is None:
            raise ValueError(f"{ps['labels']}: has no vertex property 'label'")
        if len(m.labels) != n:
            raise ValueError(f"{ps['labels']}: has {len(m.labels)} vertices, but the mesh {ps['mesh']} has {n}")
        return m.labels.astype(np.uint16)
    _require_file(ps["segs"], "over-segmentation (segs json)")
    _require_file(ps["aggregation"], "aggregation json")
    if label_tsv is None:
        raise ValueError(f"{scene_dir}: labelling from {ps['aggregation']} needs the label table "
                         f"{LABEL_TSV} (label_tsv), got none")
    _require_file(os.fspath(label_tsv), "label table tsv")
    lm = LabelMap.from_tsv(label_tsv)
    segs = read_segs(ps["segs"])
    if len(segs) != n:
        raise ValueError(f"{ps['segs']}: has {len(segs)} segIndices, but the mesh {ps['mesh']} has {n} vertices")
    groups = read_aggregation(ps["aggregation"])
    unknown = sorted({label for _, label, _ in groups if label not in lm.rows or not lm.rows[label].get("nyu40id")})
    if unknown:
        raise ValueError(f"{ps['aggregation']}: raw categories {unknown} are not in the label table "
                         f"{os.fspath(label_tsv)} (column raw_category with a nyu40id)")
    _, nyu, _ = vertex_instances_and_labels(segs, groups, lm)
    return nyu.astype(np.uint16)


def write_label_file(path: PathLike, ids: np.ndarray) -> None:
    """Write integer ids [V] as `<id>\\n` lines (the benchmark format), atomically."""
    a = np.asarray(ids)
    if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"ids must be a 1-D integer array, got {a.dtype} {a.shape}")
    text = "".join(f"{v}\n" for v in a.tolist())
    atomic_write_bytes(path, text.encode("ascii"))


def read_label_file(path: PathLike, n_expected: Optional[int] = None, low: int = 0,
                    high: int = NYU40_MAX) -> np.ndarray:
    """int64 [V] ids of a `<scene_id>.txt` label file (one integer per line; a final newline is optional).

    Errors name the file (and the line, 1-based): a line that is not an integer, an id outside
    [low, high] (nyu40: 0..40), or a line count other than ``n_expected`` (the mesh's vertices) when given.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    lines = [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]
    if n_expected is not None and len(lines) != n_expected:
        raise ValueError(f"{path}: has {len(lines)} lines, expected {n_expected} (one per mesh vertex)")
    try:
        ids = np.array([int(ln) for ln in lines], np.int64) if lines else np.zeros(0, np.int64)
        bad = None
    except ValueError:
        bad = next(k for k, ln in enumerate(lines) if not _is_int(ln))
    if bad is not None:
        raise ValueError(f"{path}: line {bad + 1} must be an integer id, got {lines[bad][:40].decode(errors='replace')!r}")
    out = np.flatnonzero((ids < low) | (ids > high))
    if len(out):
        k = int(out[0])
        raise ValueError(f"{path}: line {k + 1} must be an id in [{low}, {high}], got {int(ids[k])} "
                         f"({len(out)} lines out of range)")
    return ids


def _is_int(b: bytes) -> bool:
    try:
        int(b)
        return True
    except ValueError:
        return False


def find_mesh_scenes(root: PathLike) -> List[str]:
    """Sorted scene folders under ``root`` (or ``root/scans``) holding `<name>_vh_clean_2.ply`; ``root``
    itself when it is such a folder."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{root}: ScanNet root not found")
    if os.path.isfile(os.path.join(root, os.path.basename(os.path.normpath(root)) + MESH_SUFFIX)):
        return [root]
    base = os.path.join(root, "scans") if os.path.isdir(os.path.join(root, "scans")) else root
    return [os.path.join(base, n) for n in sorted(os.listdir(base))
            if os.path.isfile(os.path.join(base, n, n + MESH_SUFFIX))]


def export_scene_gt(scene_dir: PathLike, out_dir: PathLike, label_tsv: Optional[PathLike] = None,
                    source: str = "auto") -> str:
    """Write `<out_dir>/<scene_id>.txt` (the scene's ground truth, see :func:`scene_gt_labels`); returns it."""
    sid = os.path.basename(os.path.normpath(os.fspath(scene_dir)))
    path = os.path.join(os.fspath(out_dir), sid + ".txt")
    write_label_file(path, scene_gt_labels(scene_dir, label_tsv, source))
    return path


def export_gt(root: PathLike, out_dir: PathLike, label_tsv: Optional[PathLike] = None, source: str = "auto",
              scenes: Optional[Sequence[str]] = None, overwrite: bool = False, progress: bool = True) -> Dict:
    """Export the ground truth of every scene under ``root`` (see :func:`find_mesh_scenes`) to ``out_dir``.

    label_tsv: default `<root>/scannetv2-labels.combined.tsv` when present; scenes: only these ids;
    resumable: a scene whose `.txt` exists is skipped unless ``overwrite``. A scene that fails is recorded
    and the run goes on. Returns {"done": [ids], "skipped": [ids], "failed": {id: message}}.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    if label_tsv is None and os.path.isfile(os.path.join(os.fspath(root), LABEL_TSV)):
        label_tsv = os.path.join(os.fspath(root), LABEL_TSV)
    if label_tsv is not None and not os.path.isfile(os.fspath(label_tsv)):
        raise FileNotFoundError(f"{os.fspath(label_tsv)}: label table tsv not found (label_tsv)")
    dirs = find_mesh_scenes(root)
    if scenes is not None:
        if isinstance(scenes, str):
            raise TypeError(f"scenes must be a list of scene ids, got the string {scenes!r}")
        have = {os.path.basename(d): d for d in dirs}
        missing = sorted(set(scenes) - set(have))
        if missing:
            raise ValueError(f"scenes: {missing} not found under {os.fspath(root)!r} (found {len(have)} scenes with "
                             f"a {MESH_SUFFIX})")
        dirs = [have[s] for s in sorted(set(scenes))]
    if not dirs:
        raise ValueError(f"{os.fspath(root)}: no scene folders with a <scene>{MESH_SUFFIX} found")
    os.makedirs(out_dir, exist_ok=True)
    done: List[str] = []
    skipped: List[str] = []
    failed: Dict[str, str] = {}
    it = dirs
    if progress:
        from tqdm import tqdm
        it = tqdm(dirs, desc="export-gt", unit="scene")
    for d in it:
        sid = os.path.basename(os.path.normpath(d))
        if not overwrite and os.path.isfile(os.path.join(os.fspath(out_dir), sid + ".txt")):
            skipped.append(sid)
            continue
        try:
            export_scene_gt(d, out_dir, label_tsv, source)
            done.append(sid)
        except (OSError, ValueError) as e:
            failed[sid] = str(e)
    return {"done": done, "skipped": skipped, "failed": failed}

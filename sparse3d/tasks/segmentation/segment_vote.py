"""Segment voting: every segment of a scan's over-segmentation takes the label most of its vertices got.

A ScanNet scan ships `<scan>_vh_clean_2.0.010000.segs.json` (``segIndices``: one segment id per vertex of
`<scan>_vh_clean_2.ply`, the graph segmentation the annotators labelled), for the benchmark's test scans too.
Its segments are what was annotated, so a vertex's ground truth is constant over its segment; a prediction
that disagrees within a segment is wrong somewhere. Voting replaces each vertex's label by its segment's
majority label, or by the argmax of its vertices' summed class probabilities::

    nyu = vote_over_segments(nyu, read_segs(segs_path))       # uint8 [V] nyu40 ids, int [V] segment ids
    nyu = vote_scene_segments(nyu, "scans/scene0000_00/scene0000_00_vh_clean_2.ply")   # segs json beside it
    cls = vote_scores_over_segments(probs, segs)   # float [V, C] class probabilities summed per segment

`sparse3d predict segmentation --vote-segments` sums the U-Net's class probabilities over each segment (the
sliding-window baseline gives labels only: a majority of its vertices' labels). A tie goes to the smallest
label id (class index) among the tied ones.
"""
from __future__ import annotations

import os

import numpy as np

from data_tools.scannet.benchmark_export import MESH_SUFFIX
from data_tools.scannet.labels import read_segs

SEGS_SUFFIX = "_vh_clean_2.0.010000.segs.json"


def vote_over_segments(labels: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Same dtype and shape as labels [V] (non-negative ints, e.g. nyu40 ids): each vertex gets the most frequent
    label of the vertices of its segment (segments int [V], any ids)."""
    lab = np.asarray(labels)
    if lab.ndim != 1:
        raise ValueError(f"labels must be a flat array [V], got shape {lab.shape}")
    if not np.issubdtype(lab.dtype, np.integer):
        raise TypeError(f"labels must be an integer array, got {lab.dtype}")
    if lab.size and lab.min() < 0:
        raise ValueError(f"labels must be >= 0, got min {lab.min()}")
    seg_idx = _segment_index(segments, len(lab))
    if lab.size == 0:
        return lab.copy()
    n_lab = int(lab.max()) + 1
    counts = np.bincount(seg_idx * n_lab + lab.astype(np.int64), minlength=(int(seg_idx.max()) + 1) * n_lab)
    winner = counts.reshape(-1, n_lab).argmax(1)  # argmax takes the first (smallest id) of a tie
    return winner[seg_idx].astype(lab.dtype)


def vote_scores_over_segments(scores: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """int64 [V] class index: each vertex gets the argmax of the summed class scores float [V, C] (e.g.
    probabilities) of the vertices of its segment (segments int [V]); a tie goes to the smallest index."""
    sc = np.asarray(scores)
    if sc.ndim != 2 or sc.shape[1] < 1 or not np.issubdtype(sc.dtype, np.floating):
        raise ValueError(f"scores must be float [V, C] (class scores per vertex), got {sc.dtype} {sc.shape}")
    seg_idx = _segment_index(segments, len(sc))
    if len(sc) == 0:
        return np.zeros(0, np.int64)
    sums = np.zeros((int(seg_idx.max()) + 1, sc.shape[1]), np.float64)
    np.add.at(sums, seg_idx, sc)
    return sums.argmax(1)[seg_idx].astype(np.int64)


def _segment_index(segments: np.ndarray, n: int) -> np.ndarray:
    """int64 [n]: 0..S-1, the rank of each vertex's segment id (segments int [n])."""
    seg = np.asarray(segments)
    if seg.shape != (n,):
        raise ValueError(f"segments must be [V] = [{n}] (one segment id per vertex), got shape {seg.shape}")
    if not np.issubdtype(seg.dtype, np.integer):
        raise TypeError(f"segments must be an integer array, got {seg.dtype}")
    return np.unique(seg, return_inverse=True)[1].reshape(-1).astype(np.int64)


def segs_path_of_mesh(mesh_path: str) -> str:
    """`<scan>_vh_clean_2.0.010000.segs.json` beside a scan's `<scan>_vh_clean_2.ply`."""
    if not mesh_path.endswith(MESH_SUFFIX):
        raise ValueError(f"mesh_path must end in {MESH_SUFFIX!r} (a ScanNet scan's mesh), got {mesh_path!r}")
    return mesh_path[: -len(MESH_SUFFIX)] + SEGS_SUFFIX


def scene_segments(mesh_path: str, n_vertices: int) -> np.ndarray:
    """int64 [V] segment id of each vertex: the segs json beside ``mesh_path``. A missing file, or one whose
    length is not ``n_vertices``, is an error naming it."""
    path = segs_path_of_mesh(mesh_path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: the scan's over-segmentation not found (segment voting needs the "
                                f"segs json beside {os.path.basename(mesh_path)})")
    segs = read_segs(path)
    if len(segs) != n_vertices:
        raise ValueError(f"{path}: has {len(segs)} segIndices, but {mesh_path} has {n_vertices} vertices")
    return segs


def vote_scene_segments(labels: np.ndarray, mesh_path: str) -> np.ndarray:
    """:func:`vote_over_segments` with the segments of :func:`scene_segments` (labels [V]: one per mesh vertex)."""
    return vote_over_segments(labels, scene_segments(mesh_path, len(labels)))

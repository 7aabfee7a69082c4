"""Segment voting: every segment of a scan's over-segmentation takes the label most of its vertices got.

A ScanNet scan ships `<scan>_vh_clean_2.0.010000.segs.json` (``segIndices``: one segment id per vertex of
`<scan>_vh_clean_2.ply`, the graph segmentation the annotators labelled), for the benchmark's test scans too.
Its segments are what was annotated, so a vertex's ground truth is constant over its segment; a prediction
that disagrees within a segment is wrong somewhere. Voting replaces each vertex's label by its segment's
majority label::

    nyu = vote_over_segments(nyu, read_segs(segs_path))       # uint8 [V] nyu40 ids, int [V] segment ids
    nyu = vote_scene_segments(nyu, "scans/scene0000_00/scene0000_00_vh_clean_2.ply")   # segs json beside it

A tie goes to the smallest label id among the tied ones.
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
    seg = np.asarray(segments)
    if lab.ndim != 1:
        raise ValueError(f"labels must be a flat array [V], got shape {lab.shape}")
    if seg.shape != lab.shape:
        raise ValueError(f"segments must be [V] = [{len(lab)}] (one segment id per vertex), got shape {seg.shape}")
    if not np.issubdtype(lab.dtype, np.integer) or not np.issubdtype(seg.dtype, np.integer):
        raise TypeError(f"labels and segments must be integer arrays, got {lab.dtype} and {seg.dtype}")
    if lab.size == 0:
        return lab.copy()
    if lab.min() < 0:
        raise ValueError(f"labels must be >= 0, got min {lab.min()}")
    _, seg_idx = np.unique(seg, return_inverse=True)
    seg_idx = seg_idx.reshape(-1)
    n_lab = int(lab.max()) + 1
    counts = np.bincount(seg_idx * n_lab + lab.astype(np.int64), minlength=(int(seg_idx.max()) + 1) * n_lab)
    winner = counts.reshape(-1, n_lab).argmax(1)  # argmax takes the first (smallest id) of a tie
    return winner[seg_idx].astype(lab.dtype)


def segs_path_of_mesh(mesh_path: str) -> str:
    """`<scan>_vh_clean_2.0.010000.segs.json` beside a scan's `<scan>_vh_clean_2.ply`."""
    if not mesh_path.endswith(MESH_SUFFIX):
        raise ValueError(f"mesh_path must end in {MESH_SUFFIX!r} (a ScanNet scan's mesh), got {mesh_path!r}")
    return mesh_path[: -len(MESH_SUFFIX)] + SEGS_SUFFIX


def vote_scene_segments(labels: np.ndarray, mesh_path: str) -> np.ndarray:
    """:func:`vote_over_segments` with the segs json beside ``mesh_path`` (labels [V]: one per mesh vertex).
    A missing segs file or one whose length is not V is an error naming it."""
    path = segs_path_of_mesh(mesh_path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: the scan's over-segmentation not found (segment voting needs the "
                                f"segs json beside {os.path.basename(mesh_path)})")
    segs = read_segs(path)
    if len(segs) != len(labels):
        raise ValueError(f"{path}: has {len(segs)} segIndices, but {len(labels)} vertex labels were predicted for "
                         f"{mesh_path}")
    return vote_over_segments(labels, segs)

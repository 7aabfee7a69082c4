"""One ScanNet scene folder: `<root>/<scene_id>/<scene_id>{.sens, _vh_clean_2.ply, ...}`.

`ScanNetScene` gives the frames (from the `.sens`, same interface as `RGBDFolder`) and
the labelled mesh; `find_scenes(root)` lists the scene folders of a ScanNet root (with or
without a `scans/` level).
"""
from __future__ import annotations

import os
from typing import List, Optional, Tuple, Union

import numpy as np

from .labels import LabelMap, read_aggregation, read_segs, vertex_instances_and_labels
from .ply import PlyMesh, read_ply
from .rgbd_folder import resize_color
from .sens import SensReader

PathLike = Union[str, os.PathLike]


def find_scenes(root: PathLike) -> List[str]:
    """Sorted scene directories under `root` (or `root/scans`) that contain `<name>.sens`."""
    root = os.fspath(root)
    base = os.path.join(root, "scans") if os.path.isdir(os.path.join(root, "scans")) else root
    if not os.path.isdir(base):
        raise FileNotFoundError(f"ScanNet root not found: {root}")
    out = []
    for name in sorted(os.listdir(base)):
        d = os.path.join(base, name)
        if os.path.isdir(d) and os.path.isfile(os.path.join(d, name + ".sens")):
            out.append(d)
    return out


class ScanNetScene:
    """Paths and readers of one scene folder; a `data_tools.frames.FrameSource` over the `.sens` (opened lazily).

    `frame(k)` -> (depth float32 [Hd,Wd] metres, color uint8 [Hd,Wd,3] resized to the depth
    size, camera_to_world float64 [4,4]) for the k-th *valid-pose* frame; `ids` are the
    `.sens` frame indices of the valid frames; `invalid_pose_frames` counts the skipped.
    """

    def __init__(self, scene_dir: PathLike):
        self.dir = os.fspath(scene_dir)
        self.scene_id = os.path.basename(os.path.normpath(self.dir))
        p = lambda suf: os.path.join(self.dir, self.scene_id + suf)  # noqa: E731
        self.sens_path = p(".sens")
        self.mesh_path = p("_vh_clean_2.ply")
        self.labels_path = p("_vh_clean_2.labels.ply")
        self.segs_path = p("_vh_clean_2.0.010000.segs.json")
        self.aggregation_path = p(".aggregation.json")
        self._reader: Optional[SensReader] = None

    @property
    def reader(self) -> SensReader:
        if self._reader is None:
            self._reader = SensReader(self.sens_path)
        return self._reader

    @property
    def ids(self) -> List[int]:
        return self.reader.valid_frames

    @property
    def invalid_pose_frames(self) -> List[int]:
        return self.reader.invalid_pose_frames

    @property
    def intrinsic(self) -> np.ndarray:
        return self.reader.header.intrinsic_depth[:3, :3].astype(np.float64)

    def __len__(self) -> int:
        return len(self.ids)

    def frame(self, k: int, with_color: bool = True) -> Tuple[np.ndarray, Optional[np.ndarray], np.ndarray]:
        r = self.reader
        fr = r.frame(self.ids[k], decode=False)
        depth = r.decode_depth(fr.depth_bytes, fr.index).astype(np.float32) / np.float32(r.header.depth_shift)
        color = None
        if with_color:
            color = r.decode_color(fr.color_bytes, fr.index)
            if color.shape[:2] != depth.shape:
                color = resize_color(color, depth.shape)
        return depth, color, fr.camera_to_world.astype(np.float64)

    def has_mesh(self) -> bool:
        return os.path.isfile(self.labels_path) or os.path.isfile(self.mesh_path)

    def labelled_mesh(self, label_map: Optional[LabelMap] = None) -> Tuple[PlyMesh, np.ndarray, np.ndarray]:
        """(mesh, nyu40 uint16 [N], instance int32 [N]) from labels.ply (+ segs/aggregation for instances).

        Without labels.ply, nyu40 comes from aggregation + segs + `label_map` when given, else zeros.
        """
        mesh = read_ply(self.labels_path if os.path.isfile(self.labels_path) else self.mesh_path)
        n = len(mesh.vertices)
        nyu = mesh.labels.astype(np.uint16) if mesh.labels is not None else np.zeros(n, np.uint16)
        inst = np.zeros(n, np.int32)
        if os.path.isfile(self.segs_path) and os.path.isfile(self.aggregation_path):
            segs = read_segs(self.segs_path)
            if len(segs) != n:
                raise ValueError(f"{self.segs_path}: {len(segs)} segIndices but the mesh has {n} vertices")
            inst, agg_nyu, _ = vertex_instances_and_labels(segs, read_aggregation(self.aggregation_path),
                                                           label_map or LabelMap())
            if mesh.labels is None and label_map is not None:
                nyu = agg_nyu
        return mesh, nyu, inst

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

"""Plain RGB-D folders (7-Scenes / tsdf-fusion-python layout).

    camera-intrinsics.txt                3x3 depth intrinsics
    frame-XXXXXX.color.jpg|png           uint8 RGB
    frame-XXXXXX.depth.png               uint16 millimetres, 0 and 65535 = invalid
    frame-XXXXXX.pose.txt                4x4 camera-to-world

The ScanNet export layout (`color/i.jpg`, `depth/i.png`, `pose/i.txt`,
`intrinsic/intrinsic_depth.txt`) is read by the same class (`layout="scannet_export"`).
"""
from __future__ import annotations

import os
import re
from typing import List, Optional, Tuple, Union

import numpy as np

from ..io_utils import read_image

PathLike = Union[str, os.PathLike]


def read_matrix(path: PathLike, shape: Tuple[int, int]) -> np.ndarray:
    """float64 matrix from a whitespace-separated text file; errors name the file."""
    path = os.fspath(path)
    try:
        m = np.loadtxt(path, dtype=np.float64)
    except (ValueError, OSError) as e:
        raise ValueError(f"{path}: cannot parse a {shape[0]}x{shape[1]} matrix: {e}") from e
    if m.shape != shape:
        if shape == (3, 3) and m.shape == (4, 4):
            return m[:3, :3]
        raise ValueError(f"{path}: expected a {shape[0]}x{shape[1]} matrix, got shape {list(m.shape)}")
    return m


class RGBDFolder:
    """Random-access frames of an RGB-D folder (a `data_tools.frames.FrameSource`).

    `frame(k)` -> (depth float32 [H,W] metres with 0 = invalid, color uint8 [H,W,3] or None,
    camera_to_world float64 [4,4]). `intrinsic` is float64 [3,3]. `ids` are the frame numbers.
    """

    def __init__(self, root: PathLike):
        self.root = os.fspath(root)
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"RGB-D folder not found: {self.root}")
        if os.path.isfile(os.path.join(self.root, "camera-intrinsics.txt")):
            self.layout = "7scenes"
            self.intrinsic = read_matrix(os.path.join(self.root, "camera-intrinsics.txt"), (3, 3))
            pat = re.compile(r"frame-(\d+)\.depth\.png$")
            self.ids: List[int] = sorted(int(m.group(1)) for p in os.listdir(self.root) if (m := pat.search(p)))
        elif os.path.isfile(os.path.join(self.root, "intrinsic", "intrinsic_depth.txt")):
            self.layout = "scannet_export"
            self.intrinsic = read_matrix(os.path.join(self.root, "intrinsic", "intrinsic_depth.txt"), (3, 3))
            depth_dir = os.path.join(self.root, "depth")
            if not os.path.isdir(depth_dir):
                raise ValueError(f"{self.root}: ScanNet export layout without a depth/ folder")
            pat = re.compile(r"^(\d+)\.png$")
            self.ids = sorted(int(m.group(1)) for p in os.listdir(depth_dir) if (m := pat.match(p)))
        else:
            raise ValueError(f"{self.root}: not an RGB-D folder: expected camera-intrinsics.txt "
                             f"(7-Scenes layout) or intrinsic/intrinsic_depth.txt (ScanNet export layout)")
        if not self.ids:
            raise ValueError(f"{self.root}: no depth frames found")
        self.depth_shift = 1000.0

    def __len__(self) -> int:
        return len(self.ids)

    def _paths(self, fid: int) -> Tuple[str, str, str]:
        if self.layout == "7scenes":
            b = os.path.join(self.root, f"frame-{fid:06d}")
            color = b + ".color.jpg" if os.path.exists(b + ".color.jpg") else b + ".color.png"
            return b + ".depth.png", color, b + ".pose.txt"
        return (os.path.join(self.root, "depth", f"{fid}.png"), os.path.join(self.root, "color", f"{fid}.jpg"),
                os.path.join(self.root, "pose", f"{fid}.txt"))

    def frame(self, k: int, with_color: bool = True) -> Tuple[np.ndarray, Optional[np.ndarray], np.ndarray]:
        """Frame at position k (0 <= k < len): (depth metres float32 [H,W], color uint8 [H,W,3] | None, pose [4,4])."""
        if not 0 <= k < len(self.ids):
            raise IndexError(f"{self.root}: frame position {k} out of range [0, {len(self.ids)})")
        dp, cp, pp = self._paths(self.ids[k])
        d = read_image(dp)
        if d.dtype != np.uint16 or d.ndim != 2:
            raise ValueError(f"{dp}: expected a uint16 [H,W] depth png, got {d.dtype} {list(d.shape)}")
        depth = d.astype(np.float32) / np.float32(self.depth_shift)
        depth[d == 65535] = 0.0
        color = None
        if with_color and os.path.exists(cp):
            color = read_image(cp)
            if color.shape[:2] != d.shape:
                color = resize_color(color, d.shape)
        pose = read_matrix(pp, (4, 4))
        return depth, color, pose


def resize_color(color: np.ndarray, hw: Tuple[int, int]) -> np.ndarray:
    """Bilinear resize of uint8 [H,W,3] to [hw[0], hw[1], 3]."""
    from PIL import Image
    return np.asarray(Image.fromarray(color).resize((hw[1], hw[0]), Image.BILINEAR))

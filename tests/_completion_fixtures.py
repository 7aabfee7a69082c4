"""Tiny procedural completion data shared by the completion tests: a ``sparse3d.crops`` dataset
(data_tools.crop_from_dense + write_crop_dataset) of procedural samples."""
from __future__ import annotations

import os
from typing import List

from data_tools import crop_from_dense, load_manifest, write_crop_dataset
from sparse3d.tasks.completion.procedural import procedural_sample


def write_tiny_dataset(folder: str, n: int = 4, size: int = 16, seed: int = 0) -> str:
    """``n`` procedural ``size**3`` samples (seeds ``seed * 100 + i``, 2 holes) as the "train" split of a
    sparse3d.crops dataset in ``folder``, scene ids tiny00, tiny01, ...; returns ``folder``."""
    crops = []
    for i in range(n):
        s = procedural_sample(size, seed * 100 + i, holes=2)
        crops.append(crop_from_dense(s.input_tsdf, s.input_known, s.target_tsdf, s.target_known, s.voxel_size,
                                     s.trunc, s.origin, scene_id=f"tiny{i:02d}"))
    write_crop_dataset(folder, crops, split="train", recipe="procedural")
    return folder


def crop_paths(folder: str) -> List[str]:
    """The crop files of the dataset in ``folder``, in manifest order."""
    return [os.path.join(folder, n) for names in load_manifest(folder)["splits"].values() for n in names]

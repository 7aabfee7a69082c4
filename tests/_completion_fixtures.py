"""Tiny procedural completion data shared by the completion tests."""
from __future__ import annotations

import os

from sparse3d.data.completion_dataset import save_sample, write_manifest
from sparse3d.data.procedural import procedural_sample


def write_tiny_dataset(folder: str, n: int = 4, size: int = 16, seed: int = 0) -> str:
    os.makedirs(folder, exist_ok=True)
    names = []
    for i in range(n):
        name = f"tiny{i:02d}.npz"
        save_sample(os.path.join(folder, name), procedural_sample(size, seed * 100 + i, holes=2))
        names.append(name)
    write_manifest(folder, names)
    return folder


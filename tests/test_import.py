"""Importing sparse3d must not query CUDA (torchsparse's lesson: that crashes CPU-only machines and
initializes a GPU context in every data-loader worker)."""
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_CHILD = r"""
import torch

def _no_cuda(*args, **kwargs):
    raise RuntimeError("CUDA was queried while importing sparse3d")

for name in ("is_available", "device_count", "init", "current_device", "_lazy_init"):
    setattr(torch.cuda, name, _no_cuda)

import sparse3d, sparse3d.nn, sparse3d.ops, sparse3d.backends
import sparse3d.backends.native, sparse3d.backends.torch_ref, sparse3d.backends.spconv
print("imported", sparse3d.__version__)
"""


def test_import_does_not_query_cuda():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", _CHILD], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"import failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
    assert proc.stdout.startswith("imported "), proc.stdout

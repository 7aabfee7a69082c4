"""Registry of gen2d training tasks: name -> runner(opts) -> results dict.
Every runner writes last.pt / best.pt, loss.png, samples.png and results.json in
opts.out_dir."""
from __future__ import annotations

import os
from typing import Callable, Dict

from sparse3d.utils.atomic_io import atomic_write_json

from .options import TaskOptions
from .tasks_audio import run_wavenet
from .tasks_digits import DIGIT_MODELS, run_digits
from .tasks_video import run_pix2pix, run_pix2pix_video, run_vid2vid

MODELS = DIGIT_MODELS + ("wavenet", "pix2pix", "pix2pix_video", "vid2vid")


def _runner(name: str) -> Callable[[TaskOptions], dict]:
    if name in DIGIT_MODELS:
        return lambda o: run_digits(name, o)
    return {"wavenet": run_wavenet, "pix2pix": run_pix2pix, "pix2pix_video": run_pix2pix_video,
            "vid2vid": run_vid2vid}[name]


def run_task(name: str, opts: TaskOptions) -> Dict:
    """Train model ``name`` (one of MODELS) with ``opts``; writes results.json atomically."""
    if name not in MODELS:
        raise ValueError(f"model: expected one of {list(MODELS)}, got {name!r}")
    if not isinstance(opts, TaskOptions):
        raise TypeError(f"opts: expected TaskOptions, got {type(opts).__name__}")
    res = _runner(name)(opts)
    atomic_write_json(os.path.join(opts.out_dir, "results.json"), res, indent=2)
    return res

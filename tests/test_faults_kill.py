"""kill -9 during long jobs: `sparse3d preprocess`, `sparse3d train completion` and `sparse3d train segmentation`
run as subprocesses and are SIGKILLed twice, then rerun to the end (the same command, in this process); their
outputs must equal an uninterrupted run's (also in this process, with the same arguments).

Kill points (seeded, ``random.Random(23)``): for each job, one kill at a random time into the work (after the
process's start-up, measured on its first launch) and one kill the moment a temp file of an atomic write
(``.<name>.<random>.tmp``) shows up, i.e. in the middle of writing a crop, a checkpoint, a plot or a JSON
record. After every kill, every file under the output folder other than such temp files must be complete:
crops load (`data_tools.load_crop`), JSON parses, checkpoints load (`weights_only=True`), PNGs decode and
``metrics.jsonl`` reads (`sparse3d.train.jsonl.read_jsonl`: by design a kill during an append may leave a
partial last line, which readers drop and the resumed run cuts).

Compared with the uninterrupted run (same seed, one thread): the crop arrays (the .npz bytes hold zip
timestamps), ``manifest.json`` byte for byte, each ``_scene.json`` except its "seconds" (timings); the
checkpoint's weights, optimizer state and step exactly; ``metrics.jsonl`` except each row's "time_s";
``config.json`` byte for byte; segmentation's ``metrics.json`` except "train_seconds", "eval_seconds" and the
per-scene "seconds"; and the same file names (no temp file left behind).
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional

import numpy as np
import pytest
import torch
import yaml

from _completion_fixtures import write_tiny_dataset
from _data_helpers import native_or_skip

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
CLI = [sys.executable, "-m", "sparse3d.cli"]
SEED = 23
SEG_TINY = {"model": {"widths": [8, 16], "in_features": ["color", "height"]}, "batch_size": 2,
            "box": [12, 12, 12], "threads": 1, "lr": 0.01}
COMP_TINY = {"model": {"channels": [4, 8, 8], "grow_steps": 1}, "batch_size": 2, "lr_decay_at": [], "threads": 1}


def _is_temp(name: str) -> bool:
    """A temp file of sparse3d.utils.atomic_io (``.<name>.<random>.tmp``)."""
    return name.startswith(".") and name.endswith(".tmp")


def _files(out: str) -> List[str]:
    """Relative paths of every file under ``out``, sorted."""
    return sorted(os.path.relpath(os.path.join(d, f), out) for d, _, fs in os.walk(out) for f in fs)


def _temps(out: str) -> List[str]:
    return [f for f in _files(out) if _is_temp(os.path.basename(f))] if os.path.isdir(out) else []


def _assert_complete(path: str) -> None:
    """The file at ``path`` is whole: it loads with the reader of its kind."""
    ext = os.path.splitext(path)[1]
    if ext == ".npz":
        from data_tools import load_crop
        crop = load_crop(path)
        assert crop["input_coords"].ndim == 2, path
    elif ext == ".json":
        with open(path) as f:
            json.load(f)
    elif ext == ".pt":
        from sparse3d.train.checkpoint import load_checkpoint
        assert "model" in load_checkpoint(path)
    elif ext == ".png":
        from PIL import Image
        with Image.open(path) as im:
            im.load()
    elif ext == ".jsonl":
        from sparse3d.train.jsonl import read_jsonl
        read_jsonl(path)
    else:
        raise AssertionError(f"unexpected file {path}")


def _launch_and_kill(cmd: List[str], out: str, mode: str, rng: random.Random, startup: Optional[float],
                     work: float) -> Dict:
    """Start ``cmd``, SIGKILL it (mode "random": at start-up + U(0, work) s; "mid-write": when a temp file of
    an atomic write appears under ``out``), check every visible file; -> what happened."""
    before = set(_temps(out))
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    delay = rng.uniform(0.0, work)
    seen_out = None
    while p.poll() is None:
        now = time.monotonic() - t0
        if seen_out is None and os.path.isdir(out):
            seen_out = now
        # the first launch starts the clock when it creates `out`, later ones after the first's start-up time
        at = (startup if startup is not None else seen_out if seen_out is not None else float("inf")) + delay
        if mode == "random" and now >= at:
            break
        if mode == "mid-write" and set(_temps(out)) - before:
            break
        time.sleep(0.0005 if mode == "mid-write" else 0.005)
    killed = p.poll() is None
    if killed:
        p.send_signal(signal.SIGKILL)
    p.wait()
    stderr = p.stderr.read().decode(errors="replace") if p.stderr else ""
    p.stderr.close() if p.stderr else None
    assert killed or p.returncode == 0, stderr[-3000:]
    visible = [f for f in _files(out) if not _is_temp(os.path.basename(f))] if os.path.isdir(out) else []
    for f in visible:
        _assert_complete(os.path.join(out, f))
    return {"mode": mode, "killed": killed, "at_s": round(time.monotonic() - t0, 3), "startup_s": seen_out,
            "temps": sorted(set(_temps(out)) - before), "files": len(visible)}


def _kill_twice_then_finish(cmd: List[str], out: str, rng: random.Random, work: float) -> List[Dict]:
    first = _launch_and_kill(cmd, out, "random", rng, None, work)
    startup = first["startup_s"] or 0.0
    kills = [first, _launch_and_kill(cmd, out, "mid-write", rng, startup, work)]
    from sparse3d.cli import main  # the rerun to the end: in this process (saves a start-up)
    assert main(cmd[len(CLI):]) == 0
    return kills


def _without(d: Dict, keys) -> Dict:
    return {k: v for k, v in d.items() if k not in keys}


# ---- preprocess ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    native_or_skip()
    from data_tools import generate_scenes
    root = tmp_path_factory.mktemp("scans")
    generate_scenes(str(root), 4, seed=1, n_frames=20, width=80, height=60)
    return str(root)


@pytest.fixture(scope="module")
def seg_reference(scans, tmp_path_factory):
    """The uninterrupted preprocess (recipe segmentation, as the CLI below runs it) and its wall time."""
    from data_tools import preprocess, recipe_config
    out = str(tmp_path_factory.mktemp("ref_crops"))
    cfg = recipe_config("segmentation")
    t = time.monotonic()
    s = preprocess(scans, out, cfg, val_fraction=0.5, split_seed=cfg.seed, progress=False)
    assert s["failed"] == {} and len(s["done"]) == 4
    return out, time.monotonic() - t


def test_preprocess_killed_twice_resumes_to_the_same_crops_and_manifest(scans, seg_reference, tmp_path):
    ref, secs = seg_reference
    out = str(tmp_path / "crops")
    cmd = CLI + ["preprocess", scans, out, "--recipe", "segmentation", "--val-fraction", "0.5", "--quiet"]
    kills = _kill_twice_then_finish(cmd, out, random.Random(SEED), secs)
    print("preprocess kills:", kills)
    assert sum(k["killed"] for k in kills) >= 1
    assert _files(out) == _files(ref)
    with open(os.path.join(out, "manifest.json"), "rb") as a, open(os.path.join(ref, "manifest.json"), "rb") as b:
        assert a.read() == b.read()
    from data_tools import load_crop
    for f in _files(ref):
        if f.endswith(".npz"):
            got, want = load_crop(os.path.join(out, f)), load_crop(os.path.join(ref, f))
            assert set(got) == set(want), f
            for k in want:
                np.testing.assert_array_equal(np.asarray(got[k]), np.asarray(want[k]), err_msg=f"{f}: {k}")
        elif f.endswith("_scene.json"):
            with open(os.path.join(out, f)) as a, open(os.path.join(ref, f)) as b:
                assert _without(json.load(a), {"seconds"}) == _without(json.load(b), {"seconds"}), f


# ---- training ------------------------------------------------------------------------------------------

def _train_cmd(task: str, config: str, data: str, out: str, steps: int) -> List[str]:
    return CLI + ["train", task, "--config", config, "--data", data, "--out", out, "--steps", str(steps),
                  "--checkpoint-every", "2", "--threads", "1"]


def _assert_same_run(out: str, ref: str) -> None:
    from sparse3d.train.checkpoint import load_checkpoint
    from sparse3d.train.jsonl import read_jsonl
    assert _files(out) == _files(ref)
    got, want = load_checkpoint(os.path.join(out, "last.pt")), load_checkpoint(os.path.join(ref, "last.pt"))
    assert got["step"] == want["step"]
    for part in ("model",):
        assert set(got[part]) == set(want[part])
        for k, v in want[part].items():
            assert torch.equal(got[part][k], v), f"{part}.{k}"
    go, wo = got["optimizer"]["state"], want["optimizer"]["state"]
    assert set(go) == set(wo)
    for i in wo:
        for k, v in wo[i].items():
            assert torch.equal(torch.as_tensor(go[i][k]), torch.as_tensor(v)), f"optimizer state {i}.{k}"
    rows = [_without(r, {"time_s"}) for r in read_jsonl(os.path.join(out, "metrics.jsonl"))]
    assert rows == [_without(r, {"time_s"}) for r in read_jsonl(os.path.join(ref, "metrics.jsonl"))]
    with open(os.path.join(out, "config.json"), "rb") as a, open(os.path.join(ref, "config.json"), "rb") as b:
        assert a.read().replace(out.encode(), b"OUT") == b.read().replace(ref.encode(), b"OUT")


def _reference_train(task: str, config: str, data: str, out: str, steps: int) -> float:
    """The uninterrupted run, in this process, with the settings the CLI gets; -> its wall time."""
    from sparse3d.cli import main
    t = time.monotonic()
    assert main(_train_cmd(task, config, data, out, steps)[len(CLI):]) == 0
    return time.monotonic() - t


def test_train_completion_killed_twice_resumes_to_the_same_weights_and_metrics(tmp_path):
    data = write_tiny_dataset(str(tmp_path / "data"))
    config = str(tmp_path / "tiny.yaml")
    with open(config, "w") as f:
        yaml.safe_dump(COMP_TINY, f)
    ref, out = str(tmp_path / "ref"), str(tmp_path / "run")
    secs = _reference_train("completion", config, data, ref, 6)
    kills = _kill_twice_then_finish(_train_cmd("completion", config, data, out, 6), out, random.Random(SEED + 1), secs)
    print("train completion kills:", kills)
    assert sum(k["killed"] for k in kills) >= 1
    _assert_same_run(out, ref)


def test_train_segmentation_killed_twice_resumes_to_the_same_weights_and_metrics(seg_reference, tmp_path):
    data = seg_reference[0]
    config = str(tmp_path / "tiny.yaml")
    with open(config, "w") as f:
        yaml.safe_dump(SEG_TINY, f)
    ref, out = str(tmp_path / "ref"), str(tmp_path / "run")
    secs = _reference_train("segmentation", config, data, ref, 6)
    kills = _kill_twice_then_finish(_train_cmd("segmentation", config, data, out, 6), out,
                                    random.Random(SEED + 2), secs)
    print("train segmentation kills:", kills)
    assert sum(k["killed"] for k in kills) >= 1
    _assert_same_run(out, ref)
    timing = {"train_seconds", "eval_seconds"}
    with open(os.path.join(out, "metrics.json")) as a, open(os.path.join(ref, "metrics.json")) as b:
        got, want = _without(json.load(a), timing), _without(json.load(b), timing)
    for m in (got, want):
        m["scenes"] = {k: _without(v, {"seconds"}) for k, v in m["scenes"].items()}
    assert got == want


def test_remove_stale_temps_removes_only_atomic_temp_files(tmp_path):
    from sparse3d.utils.atomic_io import atomic_write_text, remove_stale_temps
    atomic_write_text(tmp_path / "last.pt", "whole")
    for name in (".last.pt.ab12cd.tmp", ".loss.png.x1.tmp", ".hidden", "a.tmp", ".tmp", "keep.npz"):
        (tmp_path / name).write_text("x")
    assert remove_stale_temps(tmp_path, ["last.pt"]) == [".last.pt.ab12cd.tmp"]
    assert remove_stale_temps(tmp_path) == [".loss.png.x1.tmp"]
    assert sorted(os.listdir(tmp_path)) == [".hidden", ".tmp", "a.tmp", "keep.npz", "last.pt"]
    assert remove_stale_temps(tmp_path / "absent") == []

"""Memory soak: many training steps of scene completion and of semantic segmentation on demo-like data, the
process's resident set size (RSS) sampled as it goes; the RSS must stay flat once warmed up.

    nice python benchmarks/soak_memory.py [--steps 1000] [--every 20] [--warmup 200] [--rooms 4]
        [--threads 1] [--bound-mib 64] [--bound-slope 32] [--work DIR] [--tasks completion segmentation]

1. Data, made with the project's own tools into ``--work`` (default: a temp folder, removed at the end):
   ``rooms`` synthetic rooms as the demos render them (data_tools.synthetic.generate_scenes: 60 frames of
   160 x 120), preprocessed with the "completion" recipe (random crops, as `sparse3d demo completion`) and
   the "segmentation" recipe (whole scenes, as `sparse3d demo segmentation`).
2. Each task trains ``steps`` steps in its own fresh process (sparse3d.train.loop.run_steps with the task's
   default config: default model, batch, checkpoints every 50 / 100 steps with loss.png, metrics.jsonl),
   ``threads`` torch threads. Every ``every`` steps, when the step's batch is asked for, the process records
   its RSS (VmRSS) and its peak RSS since the previous sample (VmHWM, reset at each sample:
   sparse3d.utils.measure.reset_peak_rss / peak_rss_kib).
3. Bound, on the samples from step ``warmup`` on (model, optimizer state, allocator and crop caches
   built; completion's decoded-crop cache holds every crop of the small data set by then): the growth
   (median RSS of the last 10 % of the samples minus the median of the first 10 %) is at most
   ``bound_mib`` MiB and the least-squares slope at most ``bound_slope`` MiB per 1,000 steps.

With ``--trim`` a full garbage collection (``gc.collect()``) and glibc's ``malloc_trim(0)`` run before each
sample: what they give back was garbage in reference cycles that Python's collector had not reached yet (it
runs a full collection only when the long-lived objects grew by 25 %) or free heap that glibc kept, not memory
in use; a leak survives both.

Prints a table and writes benchmarks/results/soak_memory.json (entry "plain", or "trim" with --trim; the
other entry is kept); exits 1 when a task breaks the bound.
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

TASKS = ("completion", "segmentation")
FRAMES, WIDTH, HEIGHT = 60, 160, 120  # what both demos render per room


def make_data(work: str, rooms: int, seed: int) -> Dict[str, str]:
    """Generate ``rooms`` synthetic rooms under ``work`` and preprocess them for both tasks (resumable);
    returns {task: crop dataset folder}."""
    from data_tools import preprocess, recipe_config
    from data_tools.synthetic import generate_scenes
    scans = os.path.join(work, "scans")
    generate_scenes(scans, rooms, seed=seed, n_frames=FRAMES, width=WIDTH, height=HEIGHT)
    out = {}
    for task, cfg in (("completion", recipe_config("completion", seed=seed, placement="random")),
                      ("segmentation", recipe_config("segmentation", seed=seed))):
        out[task] = os.path.join(work, f"crops_{task}")
        s = preprocess(scans, out[task], cfg, val_fraction=0.0, progress=False)
        if s["failed"]:
            raise SystemExit(f"error: preprocessing ({task}) failed: {s['failed']}")
    return out


def _malloc_trim() -> None:
    """Give the C heap's free pages back to the system (glibc ``malloc_trim(0)``)."""
    ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)


def soak_child(task: str, data: str, out: str, steps: int, every: int, threads: int, seed: int,
               trim: bool = False) -> Dict[str, Any]:
    """Train ``task`` for ``steps`` steps in this process; -> {"samples": [[step, rss_mib, peak_mib,
    rss_before_trim_mib, python_objects], ...], "seconds": wall time, "config": the training config}. With
    ``trim`` a full garbage collection and a trim of the C heap run before each sample's RSS (rss_before_trim:
    the RSS before them; without trim the same number)."""
    import torch

    from sparse3d.train.loop import run_steps
    from sparse3d.utils.measure import peak_rss_kib, reset_peak_rss
    torch.set_num_threads(threads)
    over = {"data": data, "out": out, "steps": steps, "seed": seed, "threads": threads}
    if task == "completion":
        from sparse3d.tasks.completion.config import load_config
        from sparse3d.tasks.completion.train import completion_task as make
    else:
        from sparse3d.tasks.segmentation.config import load_config  # type: ignore[no-redef]
        from sparse3d.tasks.segmentation.train import segmentation_task as make  # type: ignore[no-redef]
        over["eval_at_end"] = False
    cfg = load_config(None, over)
    samples: List[List[float]] = []
    reset_peak_rss()

    def make_task(info, device):
        t = make(cfg, info, device)
        inner = t.batch

        def batch(step, info, device):
            if step % every == 0 or step == steps - 1:
                peak = peak_rss_kib()
                before = reset_peak_rss()
                if trim:
                    gc.collect()
                    _malloc_trim()
                rss = reset_peak_rss()
                samples.append([step, round(rss / 1024, 2), round(peak / 1024, 2), round(before / 1024, 2),
                                len(gc.get_objects())])
            return inner(step, info, device)
        t.batch = batch
        return t

    t0 = time.perf_counter()
    run_steps(make_task, cfg.loop_settings(), resume=False, progress=False)
    return {"samples": samples, "seconds": round(time.perf_counter() - t0, 1), "config": cfg.to_dict()}


def _slope_per_1000(xs: List[float], ys: List[float]) -> float:
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return 1000.0 * sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else 0.0


def analyse(samples: List[List[float]], warmup: int, bound_mib: float, bound_slope: float) -> Dict[str, Any]:
    """Growth and slope of the RSS from step ``warmup`` on, checked against the bounds."""
    post = [s for s in samples if s[0] >= warmup]
    if len(post) < 10:
        raise ValueError(f"warmup: only {len(post)} samples at steps >= {warmup}; need >= 10 (more steps or a "
                         f"smaller --every)")
    k = max(1, len(post) // 10)
    rss = [s[1] for s in post]
    growth = statistics.median(rss[-k:]) - statistics.median(rss[:k])
    slope = _slope_per_1000([s[0] for s in post], rss)
    return {"rss_start_mib": samples[0][1], "rss_at_warmup_mib": post[0][1], "rss_end_mib": samples[-1][1],
            "rss_max_after_warmup_mib": max(rss), "peak_rss_mib": max(s[2] for s in samples),
            "growth_after_warmup_mib": round(growth, 2), "slope_mib_per_1000_steps": round(slope, 2),
            "flat": bool(growth <= bound_mib and slope <= bound_slope)}


def main(argv: List[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=1000, help="training steps per task (default 1000)")
    p.add_argument("--every", type=int, default=20, help="steps between RSS samples (default 20)")
    p.add_argument("--warmup", type=int, default=200, help="steps before the bound applies (default 200)")
    p.add_argument("--rooms", type=int, default=4, help="synthetic rooms (default 4)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bound-mib", type=float, default=64.0, help="max RSS growth after warm-up, MiB (default 64)")
    p.add_argument("--bound-slope", type=float, default=32.0,
                   help="max RSS slope after warm-up, MiB per 1000 steps (default 32)")
    p.add_argument("--work", default=None, help="data and run folder (default: a temp folder, removed at the end)")
    p.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    p.add_argument("--trim", action="store_true",
                   help="gc.collect() and glibc malloc_trim(0) before each RSS sample (tells uncollected garbage "
                        "and heap retention from memory in use)")
    p.add_argument("--child", choices=TASKS, default=None, help=argparse.SUPPRESS)
    p.add_argument("--data", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    for name in ("steps", "every", "rooms", "threads"):
        if getattr(a, name) < 1:
            p.error(f"--{name}: expected an integer >= 1, got {getattr(a, name)}")
    if a.child:
        print(json.dumps(soak_child(a.child, a.data, a.out, a.steps, a.every, a.threads, a.seed, a.trim)))
        return 0

    from common import RESULTS, machine_info, print_table, write_json
    work = a.work or tempfile.mkdtemp(prefix="sparse3d_soak_")
    try:
        t0 = time.time()
        data = make_data(work, a.rooms, a.seed)
        data_s = round(time.time() - t0, 1)
        results: Dict[str, Any] = {}
        payload_command = "python benchmarks/soak_memory.py " + " ".join(argv if argv is not None else sys.argv[1:])
        for task in a.tasks:
            run = os.path.join(work, f"run_{task}")
            shutil.rmtree(run, ignore_errors=True)
            cmd = [sys.executable, os.path.abspath(__file__), "--child", task, "--data", data[task], "--out", run,
                   "--steps", str(a.steps), "--every", str(a.every), "--threads", str(a.threads),
                   "--seed", str(a.seed)] + (["--trim"] if a.trim else [])
            env = {**os.environ, "OMP_NUM_THREADS": str(a.threads)}
            r = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if r.returncode != 0:
                raise SystemExit(f"error: the {task} soak failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
            child = json.loads(r.stdout.strip().splitlines()[-1])
            results[task] = {**analyse(child["samples"], a.warmup, a.bound_mib, a.bound_slope),
                             "seconds": child["seconds"], "command": payload_command, "samples": child["samples"]}
    finally:
        if a.work is None:
            shutil.rmtree(work, ignore_errors=True)
    rows = [[t, r["rss_start_mib"], r["rss_at_warmup_mib"], r["rss_end_mib"], r["growth_after_warmup_mib"],
             r["slope_mib_per_1000_steps"], r["seconds"], "yes" if r["flat"] else "NO"] for t, r in results.items()]
    print_table(["task", "RSS start MiB", f"at step {a.warmup}", "end", "growth MiB", "MiB/1000 steps", "s",
                 "flat"], rows)
    payload = {"command": "python benchmarks/soak_memory.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "steps": a.steps, "every": a.every, "warmup": a.warmup, "rooms": a.rooms, "threads": a.threads,
               "frames": [FRAMES, WIDTH, HEIGHT], "data_seconds": data_s,
               "bound": {"growth_mib": a.bound_mib, "slope_mib_per_1000_steps": a.bound_slope,
                         "growth": "median RSS of the last 10% of the samples after warm-up minus the median of the "
                                   "first 10%"},
               "rss": "VmRSS of the training process at the sample; peak: VmHWM since the previous sample",
               "trim": a.trim, "samples_columns": ["step", "rss_mib", "peak_since_previous_mib",
                                                   "rss_before_trim_mib", "python_objects"],
               "machine": machine_info(), "results": results}
    # one file, one entry per mode: "plain" (RSS as the trainer leaves it) and "trim" (malloc_trim before each sample)
    path = RESULTS / "soak_memory.json"
    runs: Dict[str, Any] = {}
    if path.is_file():
        with open(path) as f:
            runs = {k: v for k, v in json.load(f).items() if k in ("plain", "trim")}
    mode = "trim" if a.trim else "plain"
    if mode in runs and runs[mode].get("steps") == a.steps:  # a run of some tasks keeps the other tasks' results
        for task, r in runs[mode]["results"].items():
            payload["results"].setdefault(task, r)
    runs[mode] = payload
    path = write_json("soak_memory", runs)
    print(f"wrote {path}")
    return 0 if all(r["flat"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

"""The lecture's memory table, measured: the same small network's forward + backward on a dense grid, a
sparse tensor and an octree, at 32^3 .. 256^3, with the fraction of occupied voxels per resolution.

    python benchmarks/bm_octree.py [--resolutions 32 64 128 256] [--dense-max 128] [--repeats 3]

The network: three 3x3x3 stride-1 convolutions at the finest resolution (1 -> 16 -> 16 -> 1 channels, ReLU
between), float32, loss = sum of the output, backward into the input and weights. The same weights run as

* ``dense``:  ``torch.nn.functional.conv3d`` on the whole ``[1, 1, R, R, R]`` grid (occupancy as input);
* ``sparse``: ``sparse3d.ops.conv3d`` (submanifold, native backend) on the occupied voxels;
* ``octree``: ``sparse3d.octree.octree_conv`` on every node of the leaf depth of the full octree
  (O-CNN's convention: the 8 children of every non-empty parent, so about twice the occupied voxels).

Scenes: the Stanford bunny (``../shared/data/meshes/bunny.ply``) and a synthetic room
(:func:`data_tools.synthetic.make_room`), 1.5M points sampled on each surface (trimesh, seeded), scaled into
the unit cube, voxelized at R^3.

Memory is measured, not computed: each case runs in a fresh child process (Linux), which first runs the same
network once on a tiny input (so library code that the ops load lazily is resident), then resets its peak
resident set size just before the first forward pass (``/proc/self/clear_refs`` = 5, so the transients of
loading the scene do not count) and reports the peak (``VmHWM``) minus the resident size at that moment
(``VmRSS``) after the first backward pass: the memory of one training step, inputs, weights and imports
excluded (glibc's malloc is told to map every buffer over 64 KiB afresh and to trim freed memory first, so
recycled resident heap does not hide allocations); kernel maps / octree and its neighbour tables are built inside the measured region, as in a
training step on a new sample. Time: the
median of ``--repeats`` forward + backward passes after that first one (tables cached). The dense grid stops at
``--dense-max`` (default 128^3: at 256^3 one 16-channel float32 activation alone is 1 GiB and the machine's
shared memory would not hold the pass); the table says so.

Writes benchmarks/results/octree_memory.json and .png (and prints the table).
"""
from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "octree_memory"
BUNNY = ROOT / ".." / "shared" / "data" / "meshes" / "bunny.ply"
CHANNELS = (1, 16, 16, 1)


def scene_cells(scene: str, res: int, n_points: int = 1_500_000, seed: int = 0) -> torch.Tensor:
    """int32 [N, 3]: the occupied voxels of a scene's surface at res^3 (unique)."""
    import trimesh

    if scene == "bunny":
        mesh = trimesh.load(BUNNY, process=False)
    else:
        from data_tools.synthetic import make_room

        v, f = make_room(seed).mesh()[:2]
        mesh = trimesh.Trimesh(v, f, process=False)
    pts, _ = trimesh.sample.sample_surface(mesh, n_points, seed=seed)
    pts = torch.as_tensor(pts, dtype=torch.float64)
    lo, hi = pts.min(0).values, pts.max(0).values
    u = (pts - lo) / float((hi - lo).max() * 1.0001)  # [0, 1)
    cells = torch.floor(u * res).long().clamp(0, res - 1)
    return torch.unique(cells, dim=0).int()


def _status_kib(field: str) -> int:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field} (this benchmark measures memory on Linux)")


def _reset_peak() -> None:
    """Return freed heap memory to the system (glibc ``malloc_trim``), then reset VmHWM to the current resident
    size (Linux >= 4.0). With ``MALLOC_MMAP_THRESHOLD_`` fixed (:func:`child` sets it), every large buffer is a
    fresh mapping, so the peak counts what the pass holds at once and no recycled, already resident heap."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def weights(seed: int = 0) -> List[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(27, a, b, generator=g) / math.sqrt(27 * a) for a, b in zip(CHANNELS[:-1], CHANNELS[1:])]


def make_step(form: str, cells: torch.Tensor, res: int, ws: List[torch.Tensor]) -> Tuple[Callable[[], torch.Tensor],
                                                                                     Callable[[], int]]:
    """(one forward pass returning the loss, the number of sites it ran on) of the network in ``form``."""
    from sparse3d import ops
    from sparse3d.kernel import sparse_to_dense_weight
    from sparse3d.octree import Octree, octree_conv
    from sparse3d.tensor import SparseTensor

    depth = int(math.log2(res))
    coords = torch.cat([torch.zeros(len(cells), 1, dtype=torch.int32), cells], 1)
    state: Dict[str, Any] = {}
    if form == "dense":
        x = torch.zeros(1, 1, res, res, res)
        x[0, 0, cells[:, 0].long(), cells[:, 1].long(), cells[:, 2].long()] = 1.0

        def step() -> torch.Tensor:
            h = x.requires_grad_(True)
            for i, w in enumerate(ws):
                h = torch.nn.functional.conv3d(h, sparse_to_dense_weight(w), padding=1)
                if i < len(ws) - 1:
                    h = torch.relu(h)
            return h.sum()

        return step, lambda: res**3
    if form == "sparse":
        def step() -> torch.Tensor:
            if "x" not in state:  # the tensor (and its kernel maps) is made inside the first measured pass
                state["x"] = SparseTensor(coords, torch.ones(len(cells), 1).requires_grad_(True))
            h = state["x"]
            for i, w in enumerate(ws):
                h = ops.conv3d(h, w, kernel_size=3)
                if i < len(ws) - 1:
                    h = h.replace(torch.relu(h.feats))
            return h.feats.sum()

        return step, lambda: len(cells)
    if form == "octree":
        def step() -> torch.Tensor:
            if "o" not in state:  # the octree and its neighbour tables are built inside the first measured pass
                state["o"] = Octree.from_cells(coords, depth, torch.ones(len(coords), 1))[0]
            o = state["o"]
            h = (o.counts[depth] > 0).float()[:, None].requires_grad_(True)
            for i, w in enumerate(ws):
                h = octree_conv(h, o, depth, w)
                if i < len(ws) - 1:
                    h = torch.relu(h)
            return h.sum()

        return step, lambda: state["o"].num_nodes(depth)
    raise ValueError(f"form must be dense, sparse or octree, got {form!r}")


def run_case(form: str, scene: str, res: int, repeats: int, cells_path: Path) -> Dict[str, Any]:
    """One case in this (child) process: peak RSS growth of the first pass and the median time. The voxels come
    from ``cells_path`` (written by the parent), so the child imports neither trimesh nor data_tools, whose
    libraries would bring their own allocators and distort the measurement."""
    torch.set_num_threads(1)
    cells = torch.load(cells_path, weights_only=True)
    ws = [w.requires_grad_(True) for w in weights()]
    # a tiny pass of the same form first, so code pages the ops load lazily do not count as the network's memory
    tiny_step, _ = make_step(form, torch.tensor([[1, 2, 3], [2, 2, 3], [5, 5, 5]], dtype=torch.int32), 8, ws)
    tiny_step().backward()
    for w in ws:
        w.grad = None
    step, sites = make_step(form, cells, res, ws)
    _reset_peak()
    base = _status_kib("VmRSS")
    t0 = time.perf_counter()
    step().backward()
    first = time.perf_counter() - t0
    peak = _status_kib("VmHWM")
    times = []
    for _ in range(repeats):
        for w in ws:
            w.grad = None
        t0 = time.perf_counter()
        step().backward()
        times.append(time.perf_counter() - t0)
    return {"form": form, "scene": scene, "res": res, "occupied": len(cells), "sites": sites(),
            "occupied_fraction": len(cells) / res**3, "peak_rss_growth_mib": (peak - base) / 1024.0,
            "first_pass_s": first, "median_s": statistics.median(times)}


def child(form: str, scene: str, res: int, repeats: int, cells_path: Path) -> Dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", form, scene, str(res), "--repeats", str(repeats),
           "--cells", str(cells_path)]
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", OMP_NUM_THREADS="1")  # see _reset_peak
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"case {form} {scene} {res}^3 failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def plot(results: List[Dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sparse3d.utils.atomic_io import atomic_savefig

    scenes = sorted({r["scene"] for r in results})
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    markers = {"dense": "o", "sparse": "s", "octree": "^"}
    for scene, ls in zip(scenes, ("-", "--")):
        for form in ("dense", "sparse", "octree"):
            rs = sorted((r for r in results if r["scene"] == scene and r["form"] == form), key=lambda r: r["res"])
            if not rs:
                continue
            x = [r["res"] for r in rs]
            axes[0].plot(x, [max(r["peak_rss_growth_mib"], 0.1) for r in rs], marker=markers[form], ls=ls,
                         label=f"{form} ({scene})")
            axes[1].plot(x, [r["median_s"] for r in rs], marker=markers[form], ls=ls, label=f"{form} ({scene})")
        rs = sorted((r for r in results if r["scene"] == scene and r["form"] == "sparse"), key=lambda r: r["res"])
        axes[2].plot([r["res"] for r in rs], [r["occupied_fraction"] for r in rs], marker="o", ls=ls, label=scene)
    titles = ("peak RSS growth of fwd+bwd (MiB)", "fwd+bwd time (s, median)", "occupied fraction of voxels")
    for ax, t in zip(axes, titles):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("resolution R (R^3 grid)")
        ax.set_title(t)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--resolutions", type=int, nargs="+", default=[32, 64, 128, 256])
    ap.add_argument("--dense-max", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--scenes", nargs="+", default=["bunny", "room"])
    ap.add_argument("--child", nargs=3, metavar=("FORM", "SCENE", "RES"))
    ap.add_argument("--cells", type=Path, help="(child) the voxels of the case, from the parent")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    if args.child:
        form, scene, res = args.child
        print(json.dumps(run_case(form, scene, int(res), args.repeats, args.cells)))
        return
    from sparse3d.utils.atomic_io import atomic_write_json

    results: List[Dict[str, Any]] = []
    skipped: List[str] = []
    print(f"{'scene':6s} {'form':7s} {'R':>4s} {'occupied':>9s} {'fraction':>9s} {'sites':>10s} {'peak MiB':>9s} "
          f"{'time s':>8s}")
    for scene in args.scenes:
        if scene == "bunny" and not BUNNY.exists():
            skipped.append(f"bunny: {BUNNY} is absent")
            continue
        for res in args.resolutions:
            cells_path = Path(tempfile.gettempdir()) / f"bm_octree_{os.getpid()}_{scene}_{res}.pt"
            torch.save(scene_cells(scene, res), cells_path)
            for form in ("dense", "sparse", "octree"):
                if form == "dense" and res > args.dense_max:
                    skipped.append(f"dense {scene} {res}^3: above --dense-max {args.dense_max} (one 16-channel "
                                   f"activation is {res**3 * 16 * 4 / 2**30:.2f} GiB)")
                    continue
                r = child(form, scene, res, args.repeats, cells_path)
                results.append(r)
                print(f"{scene:6s} {form:7s} {res:4d} {r['occupied']:9d} {r['occupied_fraction']:9.5f} "
                      f"{r['sites']:10d} {r['peak_rss_growth_mib']:9.1f} {r['median_s']:8.3f}", flush=True)
            cells_path.unlink()
    growth = {}
    for scene in args.scenes:
        for form in ("dense", "sparse", "octree"):
            rs = sorted((r for r in results if r["scene"] == scene and r["form"] == form), key=lambda r: r["res"])
            growth[f"{scene}/{form}"] = [
                {"from": a["res"], "to": b["res"], "memory_x": b["peak_rss_growth_mib"] / max(a["peak_rss_growth_mib"], 1e-9),
                 "time_x": b["median_s"] / a["median_s"], "sites_x": b["sites"] / a["sites"]}
                for a, b in zip(rs, rs[1:])]
    out = {"network": f"3 x conv 3x3x3 stride 1, channels {CHANNELS}, float32, 1 thread", "results": results,
           "growth_per_doubling": growth, "skipped": skipped}
    atomic_write_json(args.out.with_suffix(".json"), out)
    plot(results, args.out.with_suffix(".png"))
    for s in skipped:
        print("skipped:", s)
    print(f"wrote {args.out.with_suffix('.json')} and .png")


if __name__ == "__main__":
    main()

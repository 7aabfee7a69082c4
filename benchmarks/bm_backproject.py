"""Benchmark: 3DMV back-projection, the csrc/project kernel vs the vectorised torch implementation.

Same input for both: a room-sized height-field surface of voxels (5 cm), cameras looking at it from
3.5-6.5 m, depth maps that are the z-buffer of the voxel centres (so a realistic share of voxel-view
pairs passes the depth test, holes = invalid depth), H x W = 480 x 640 depth and features at 1/4
resolution (120 x 160). Rate = voxel-views per second = N * V / median time (every candidate pair is
tested by both). Forward, and forward + backward (the gradient of a random projection of the output).
Prints a table and writes benchmarks/results/bm_backproject.json.

    python benchmarks/bm_backproject.py [--voxels 100000] [--repeats 3] [--device cpu]
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from sparse3d.ops import backproject, backproject_torch  # noqa: E402
from sparse3d.utils.atomic_io import atomic_write_json  # noqa: E402

H, W, SCALE = 480, 640, 4
VOXEL = 0.05


def make_input(n_voxels: int, n_views: int, channels: int, device: str, seed: int = 0) -> dict:
    """The benchmark scene (module docstring); feats2d [V, C, H/4, W/4] float32."""
    g = torch.Generator().manual_seed(seed)
    side = int(math.ceil(math.sqrt(n_voxels)))
    ij = torch.stack(torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij"), -1).reshape(-1, 2)[:n_voxels]
    x, y = ij[:, 0].double(), ij[:, 1].double()
    z = torch.round(10 * torch.sin(x / 17) * torch.cos(y / 23) + 5 * torch.sin((x + y) / 11))
    coords = torch.cat([torch.zeros(len(ij), 1), x[:, None], y[:, None], z[:, None]], 1).to(torch.int32)
    v2w = torch.diag(torch.tensor([VOXEL, VOXEL, VOXEL, 1.0], dtype=torch.float64))[None]
    world = coords[:, 1:].double() * VOXEL
    centre = world.mean(0)
    fx = 0.9 * W
    intr = torch.tensor([[fx, fx, W / 2 - 0.5, H / 2 - 0.5]] * n_views, dtype=torch.float64)
    c2w = torch.zeros(n_views, 4, 4, dtype=torch.float64)
    depth = torch.zeros(n_views, H, W, dtype=torch.float32)
    for v in range(n_views):
        target = centre + torch.cat([(torch.rand(2, generator=g, dtype=torch.float64) - 0.5) * side * VOXEL * 0.6,
                                     torch.zeros(1, dtype=torch.float64)])
        direction = torch.nn.functional.normalize(torch.randn(3, generator=g, dtype=torch.float64) * 0.4
                                                  + torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), dim=0)
        eye = target + direction * (3.5 + 3 * float(torch.rand(1, generator=g)))
        f = torch.nn.functional.normalize(target - eye, dim=0)
        r = torch.nn.functional.normalize(torch.linalg.cross(f, torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)),
                                          dim=0)
        d = torch.linalg.cross(f, r)
        c2w[v, :3, 0], c2w[v, :3, 1], c2w[v, :3, 2], c2w[v, :3, 3], c2w[v, 3, 3] = r, d, f, eye, 1.0
        cam = (world - eye) @ torch.stack([r, d, f], 1)
        zc = cam[:, 2]
        u = torch.floor(fx * cam[:, 0] / zc.clamp_min(1e-6) + W / 2 - 0.5 + 0.5)
        w_ = torch.floor(fx * cam[:, 1] / zc.clamp_min(1e-6) + H / 2 - 0.5 + 0.5)
        ok = (zc > 0.1) & (u >= 0) & (u < W) & (w_ >= 0) & (w_ < H)
        pix = (w_[ok] * W + u[ok]).long()
        zbuf = torch.full((H * W,), math.inf, dtype=torch.float64).scatter_reduce(0, pix, zc[ok], "amin")
        depth[v] = torch.where(torch.isfinite(zbuf), zbuf, 0.0).view(H, W).float()
    feats2d = torch.randn(n_views, channels, H // SCALE, W // SCALE, generator=g)
    s = dict(coords=coords, voxel_to_world=v2w, feats2d=feats2d, depth=depth, intrinsics=intr, cam_to_world=c2w,
             view_batch=torch.zeros(n_views, dtype=torch.long))
    return {k: t.to(device) for k, t in s.items()}


def run_case(n_voxels: int, n_views: int, channels: int, pool: str, repeats: int, device: str) -> Dict:
    s = make_input(n_voxels, n_views, channels, device)
    f = s.pop("feats2d")
    gout = torch.randn(n_voxels, channels, device=device)
    ref = backproject_torch(feats2d=f, **s, pool=pool)
    res = backproject(feats2d=f, **s, pool=pool)
    same = bool(torch.equal(ref.n_views, res.n_views)) and bool(torch.allclose(ref.feats, res.feats, atol=1e-5))
    row: Dict = {"voxels": n_voxels, "views": n_views, "channels": channels, "pool": pool,
                 "feature_hw": [H // SCALE, W // SCALE], "depth_hw": [H, W],
                 "passing_pairs": int(res.n_views.sum()), "pass_rate": round(float(res.n_views.sum()) / (n_voxels * n_views), 3),
                 "kernel_equals_torch": same}
    impls = (("kernel", backproject), ("torch", backproject_torch))

    def fwd(fn: Callable) -> None:
        with torch.no_grad():
            fn(feats2d=f, **s, pool=pool)

    def fwd_bwd(fn: Callable) -> None:
        x = f.detach().requires_grad_(True)
        (fn(feats2d=x, **s, pool=pool).feats * gout).sum().backward()

    # interleaved (kernel, torch, kernel, torch, ...) so that load from other processes hits both alike
    times: Dict[str, List[float]] = {f"{n}_{m}": [] for n, _ in impls for m in ("fwd", "fwd_bwd")}
    for r in range(repeats + 1):  # the first round warms up and is dropped
        for name, fn in impls:
            for mode, run in (("fwd", fwd), ("fwd_bwd", fwd_bwd)):
                _sync(device)
                t0 = time.perf_counter()
                run(fn)
                _sync(device)
                if r:
                    times[f"{name}_{mode}"].append(time.perf_counter() - t0)
    for key, ts in times.items():
        t = statistics.median(ts)
        row[f"{key}_s"] = round(t, 4)
        row[f"{key}_voxel_views_per_s"] = round(n_voxels * n_views / t)
    row["speedup_fwd"] = round(row["torch_fwd_s"] / row["kernel_fwd_s"], 2)
    row["speedup_fwd_bwd"] = round(row["torch_fwd_bwd_s"] / row["kernel_fwd_bwd_s"], 2)
    return row


def _load() -> Optional[List[float]]:
    """The 1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--voxels", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "bm_backproject.json"))
    args = ap.parse_args()
    load_start = _load()
    cases = [(5, 32, "max"), (20, 64, "max"), (10, 32, "mean"), (20, 64, "mean")]
    rows: List[Dict] = []
    print(f"{'V':>3} {'C':>3} {'pool':>4} {'pass':>5} | {'kernel fwd':>11} {'torch fwd':>10} {'x':>5} | "
          f"{'kernel f+b':>11} {'torch f+b':>10} {'x':>5}   (seconds, medians of {args.repeats}, interleaved)")
    for v, c, pool in cases:
        r = run_case(args.voxels, v, c, pool, args.repeats, args.device)
        rows.append(r)
        print(f"{v:>3} {c:>3} {pool:>4} {r['pass_rate']:>5} | {r['kernel_fwd_s']:>11} {r['torch_fwd_s']:>10} "
              f"{r['speedup_fwd']:>5} | {r['kernel_fwd_bwd_s']:>11} {r['torch_fwd_bwd_s']:>10} {r['speedup_fwd_bwd']:>5}"
              f"{'' if r['kernel_equals_torch'] else '  (RESULTS DIFFER)'}", flush=True)
    load = _load()
    out = {"benchmark": "bm_backproject", "load_average_1_5_15_at_start": load_start,
           "device": args.device, "torch_threads": torch.get_num_threads(),
           "torch": torch.__version__, "python": platform.python_version(), "cpu_count": os.cpu_count(),
           "load_average_1_5_15_at_end": load, "repeats": args.repeats,
           "rate": "voxel-views per second = voxels * views / median seconds", "cases": rows}
    atomic_write_json(args.out, out)
    print("wrote", args.out)


if __name__ == "__main__":
    main()

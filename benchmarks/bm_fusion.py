"""Benchmark: TSDF fusion (sparse3d._C.fusion) vs Open3D's VoxelBlockGrid, and `.sens` read speed.

Same frames, voxel size, truncation and depth_max for both; runs alternate (ours, Open3D, ours, ...)
so that load from other processes hits both alike; medians over repeats. Prints a table and writes
benchmarks/results/bm_fusion.json.

    python benchmarks/bm_fusion.py [--repeats 5] [--frames 100]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np

from sparse3d.utils.atomic_io import atomic_write_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _ours(frames, K, vs, tv, dmax, threads=0):
    from data_tools.fusion import TSDFFusion
    fu = TSDFFusion(vs, tv, depth_max=dmax, with_color=True, threads=threads)
    t = time.perf_counter()
    blocks = sum(fu.integrate(d, c, K, p) for d, c, p in frames)
    el = time.perf_counter() - t
    return el, blocks * 512, len(fu.extract())


def _open3d(frames, K, vs, tv, dmax):
    import open3d as o3d
    import open3d.core as o3c
    vbg = o3d.t.geometry.VoxelBlockGrid(attr_names=("tsdf", "weight", "color"),
                                        attr_dtypes=(o3c.float32, o3c.float32, o3c.float32),
                                        attr_channels=((1), (1), (3)), voxel_size=vs, block_resolution=8,
                                        block_count=60000, device=o3c.Device("CPU:0"))
    Kt = o3c.Tensor(K)
    # inputs converted up front (not timed): Open3D wants float color in [0, 1] and world-to-camera
    prepared = [(o3d.t.geometry.Image(o3c.Tensor(d)), o3d.t.geometry.Image(o3c.Tensor(c.astype(np.float32) / 255)),
                 o3c.Tensor(np.linalg.inv(p))) for d, c, p in frames]
    t = time.perf_counter()
    blocks = 0
    for di, ci, ext in prepared:
        bc = vbg.compute_unique_block_coordinates(di, Kt, ext, 1.0, dmax, tv)
        vbg.integrate(bc, di, ci, Kt, Kt, ext, 1.0, dmax, tv)
        blocks += bc.shape[0]
    el = time.perf_counter() - t
    w = vbg.attribute("weight").numpy().reshape(-1)
    return el, blocks * 512, int((w[vbg.voxel_coordinates_and_flattened_indices()[1].numpy()] > 0).sum())


def bench_fusion(name, frames, K, vs, tv, dmax, repeats):
    ours, ours_omp, o3d_ = [], [], []
    for _ in range(repeats):
        ours.append(_ours(frames, K, vs, tv, dmax, threads=1))  # the default of TSDFFusion
        ours_omp.append(_ours(frames, K, vs, tv, dmax, threads=0))  # OpenMP default thread count
        o3d_.append(_open3d(frames, K, vs, tv, dmax))
    t_o = statistics.median(r[0] for r in ours)
    t_omp = statistics.median(r[0] for r in ours_omp)
    t_3 = statistics.median(r[0] for r in o3d_)
    n = len(frames)
    return {"case": name, "frames": n, "image": list(frames[0][0].shape[::-1]), "voxel_size": vs,
            "trunc_voxels": tv, "depth_max": dmax, "repeats": repeats,
            "ours_s": t_o, "open3d_s": t_3, "ours_fps": n / t_o, "open3d_fps": n / t_3,
            "ours_voxel_updates_per_s": ours[0][1] / t_o, "open3d_voxel_updates_per_s": o3d_[0][1] / t_3,
            "ours_observed_voxels": ours[0][2], "open3d_observed_voxels": o3d_[0][2],
            "speed_ratio_ours_over_open3d": t_3 / t_o,
            "ours_openmp_default_threads_fps": n / t_omp, "speed_ratio_ours_openmp_default_over_open3d": t_3 / t_omp,
            "ours_runs_s": [r[0] for r in ours], "open3d_runs_s": [r[0] for r in o3d_]}


def bench_sens(n_frames, w, h, repeats):
    from data_tools.scannet.sens import SensReader, write_sens
    from data_tools.synthetic.room import make_room
    from data_tools.synthetic.render import MeshRenderer, room_trajectory
    from data_tools.synthetic.writer import default_intrinsic
    room = make_room(0)
    v, f, c, _, _ = room.mesh()
    K = default_intrinsic(w, h)
    r = MeshRenderer(v, f, c[f[:, 0]])
    poses = room_trajectory(room.size, n_frames, 1)
    rendered = [r.render(K, p, w, h) for p in poses[:10]]
    cols = [rendered[i % 10][1] for i in range(n_frames)]
    deps = [np.round(rendered[i % 10][0] * 1000).astype(np.uint16) for i in range(n_frames)]
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "b.sens")
        write_sens(path, cols, deps, poses, K, K)
        mb = os.path.getsize(path) / 2 ** 20
        t_raw, t_dec = [], []
        for _ in range(repeats):
            t = time.perf_counter()
            with SensReader(path) as rd:
                for fr in rd.iter_frames(decode=False):
                    pass
            t_raw.append(time.perf_counter() - t)
            t = time.perf_counter()
            with SensReader(path) as rd:
                for fr in rd.iter_frames(decode=True):
                    pass
            t_dec.append(time.perf_counter() - t)
    return {"frames": n_frames, "image": [w, h], "file_mb": mb, "color": "jpeg", "depth": "zlib_ushort",
            "read_mb_per_s": mb / statistics.median(t_raw), "read_decode_mb_per_s": mb / statistics.median(t_dec),
            "read_decode_frames_per_s": n_frames / statistics.median(t_dec)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "bm_fusion.json"))
    a = ap.parse_args(argv)
    import torch
    results = {"machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                           "platform": platform.platform(), "loadavg_start": os.getloadavg()}, "fusion": []}
    shared = os.path.join(os.path.dirname(ROOT), "shared", "data", "rgbd", "7scenes-sample")
    if os.path.isdir(shared):
        from data_tools.scannet import RGBDFolder
        fr = RGBDFolder(shared)
        frames = [fr.frame(k) for k in range(min(a.frames, len(fr)))]
        for vs in (0.02, 0.04):
            results["fusion"].append(bench_fusion(f"7scenes 640x480 vs={vs}", frames, fr.intrinsic, vs, 4.0, 4.0,
                                                  a.repeats))
    else:
        print(f"skipping 7-Scenes: {shared} not found")
    from data_tools.synthetic.room import make_room
    from data_tools.synthetic.render import MeshRenderer, room_trajectory
    from data_tools.synthetic.writer import default_intrinsic
    room = make_room(0)
    v, f, c, _, _ = room.mesh()
    K = default_intrinsic(320, 240)
    r = MeshRenderer(v, f, c[f[:, 0]])
    syn = [(d, col, p) for p in room_trajectory(room.size, a.frames, 1) for d, col, _ in [r.render(K, p, 320, 240)]]
    results["fusion"].append(bench_fusion("synthetic 320x240 vs=0.04", syn, K, 0.04, 3.0, 5.0, a.repeats))
    results["sens"] = bench_sens(300, 640, 480, 3)
    results["machine"]["loadavg_end"] = os.getloadavg()
    print("ours = TSDFFusion(threads=1) (default); ours-omp = threads=0 (OpenMP default); ratio = ours / Open3D speed")
    print(f"{'case':32s} {'ours f/s':>9s} {'omp f/s':>8s} {'o3d f/s':>9s} {'ratio':>6s} {'ours Mvox/s':>12s} "
          f"{'o3d Mvox/s':>11s}")
    for r_ in results["fusion"]:
        print(f"{r_['case']:32s} {r_['ours_fps']:9.1f} {r_['ours_openmp_default_threads_fps']:8.1f} "
              f"{r_['open3d_fps']:9.1f} {r_['speed_ratio_ours_over_open3d']:6.2f} "
              f"{r_['ours_voxel_updates_per_s'] / 1e6:12.1f} {r_['open3d_voxel_updates_per_s'] / 1e6:11.1f}")
    s = results["sens"]
    print(f".sens {s['frames']} frames {s['image'][0]}x{s['image'][1]} ({s['file_mb']:.1f} MB): "
          f"read {s['read_mb_per_s']:.0f} MB/s, read+decode {s['read_decode_mb_per_s']:.1f} MB/s "
          f"({s['read_decode_frames_per_s']:.0f} frames/s)")
    print(f"load average {results['machine']['loadavg_start']} -> {results['machine']['loadavg_end']}")
    atomic_write_json(a.out, results)
    print("wrote", a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

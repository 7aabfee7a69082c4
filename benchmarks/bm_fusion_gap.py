"""Benchmark: the sensor gap after fusion. How well does a TSDF fused from ~30 % of a scan's frames agree with the
one fused from all of them, on the real 7-Scenes sample and on synthetic rooms recorded through a sensor model?

bm_sensor_gap.py compares single depth frames; this compares what completion sees, both sides fused by the
completion recipe (`sparse3d.tasks.completion.rgbd_eval.fuse_scan`: 5 cm voxels, truncation 3 voxels, input from
a seeded 30 % of the frames in 6 runs, target from all). Per scene:

* input IoU: surface voxels (|tsdf| < 1) of the input against the target's, on known target space;
* observed IoU: the same on observed space only: how often the partial fusion puts a voxel on the other side of
  the surface band's edge than the all-frames fusion (1.0 = they agree; frame noise, pose error and depth
  distortion lower it);
* near share: the share of the target surface that the input did not observe but lies within 1 voxel of observed
  space (the edges of the observed patches).

Rows: the real sample (align-up, `--seeds`) and `--rooms` synthetic rooms (100 frames, 320 x 240) per sensor: ideal, and
the "kinect" model with its pose drift (`drift_t`, `drift_r`) scaled by each of `--drift-scales` (1 = sensor.KINECT as
it is). The last line names the scale whose mean observed IoU is closest to the real one's. Writes
benchmarks/results/fusion_gap.json.

    python benchmarks/bm_fusion_gap.py [--rooms 3] [--drift-scales 0 1 4 8 12]      # ~4 min on 2 cores
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from typing import Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

from benchmarks.common import machine_info, print_table, write_json  # noqa: E402
from data_tools.synthetic import generate_scenes  # noqa: E402
from data_tools.synthetic.sensor import IDEAL, KINECT, SensorModel  # noqa: E402
from sparse3d.tasks.completion.dataset import Sample, surface  # noqa: E402
from sparse3d.tasks.completion.metrics import iou  # noqa: E402
from sparse3d.tasks.completion.rgbd_eval import fuse_scan  # noqa: E402

REAL = os.path.join(ROOT, "..", "shared", "data", "rgbd", "7scenes-sample")
VOXEL, TRUNC, FRACTION, SEGMENTS = 0.05, 3.0, 0.3, 6


def fusion_stats(s: Sample) -> Dict[str, float]:
    """input IoU, observed IoU and near share (module docstring) of one whole-scene sample."""
    t, p, seen = surface(s.target_tsdf, s.target_known), surface(s.input_tsdf, s.input_known), s.input_known
    near = t & ~seen & (ndimage.distance_transform_edt(~seen) <= 1.0) if seen.any() else np.zeros_like(t)
    return {"input_iou": iou(p, t, s.target_known), "observed_iou": iou(p, t, s.target_known & seen),
            "near_share": float(near.sum()) / max(int(t.sum()), 1)}


def drifted(scale: float) -> SensorModel:
    """sensor.KINECT with its pose drift (drift_t, drift_r) multiplied by ``scale``."""
    return dataclasses.replace(KINECT, drift_t=KINECT.drift_t * scale, drift_r=KINECT.drift_r * scale)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rgbd", default=REAL, help="the real RGB-D folder (default: the 7-Scenes sample)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="input frame subsets of --rgbd")
    p.add_argument("--rooms", type=int, default=3, help="synthetic rooms per sensor (default 3)")
    p.add_argument("--drift-scales", type=float, nargs="+", default=[0.0, 1.0, 4.0, 8.0, 12.0],
                   help="multiples of sensor.KINECT's pose drift to measure (default 0 1 4 8 12)")
    args = p.parse_args()
    if not os.path.isdir(args.rgbd):
        raise SystemExit(f"error: --rgbd {args.rgbd!r} is not a folder (see ../shared/data/SOURCES.md)")
    if args.rooms < 1 or any(s < 0 for s in args.drift_scales):
        raise SystemExit(f"error: --rooms must be >= 1 and --drift-scales >= 0, got {args.rooms}, {args.drift_scales}")
    rows: Dict[str, List[Dict[str, float]]] = {}
    rows["real"] = [fusion_stats(fuse_scan(args.rgbd, VOXEL, TRUNC, FRACTION, SEGMENTS, seed, True))
                    for seed in args.seeds]
    print("fused the real scan", file=sys.stderr, flush=True)
    sensors = {"ideal": IDEAL, **{f"kinect, drift x{s:g}": drifted(s) for s in args.drift_scales}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in sensors.items():
            dirs = generate_scenes(os.path.join(tmp, name.replace(", ", "_").replace(" ", "")), args.rooms, seed=7,
                                   first_index=300, sensor=model)
            rows[name] = [fusion_stats(fuse_scan(d, VOXEL, TRUNC, FRACTION, SEGMENTS, 0, False)) for d in dirs]
            print(f"fused {name}", file=sys.stderr, flush=True)
    keys = ("input_iou", "observed_iou", "near_share")
    mean = {name: {k: float(np.mean([r[k] for r in rs])) for k in keys} for name, rs in rows.items()}
    print_table(["frames", "scenes", "input IoU", "observed IoU", "near share"],
                [[name, len(rows[name])] + [f"{mean[name][k]:.3f}" for k in keys] for name in rows])
    drift_rows = {s: mean[f"kinect, drift x{s:g}"]["observed_iou"] for s in args.drift_scales}
    best = min(drift_rows, key=lambda s: abs(drift_rows[s] - mean["real"]["observed_iou"]))
    print(f"closest to the real observed IoU ({mean['real']['observed_iou']:.3f}): drift x{best:g} "
          f"({drift_rows[best]:.3f}; drift_t {KINECT.drift_t * best:g} m, drift_r {KINECT.drift_r * best:g} rad per frame)")
    path = write_json("fusion_gap", {
        "machine": machine_info(), "rgbd": args.rgbd, "seeds": args.seeds, "rooms": args.rooms,
        "kinect_drift": [KINECT.drift_t, KINECT.drift_r, KINECT.drift_rho], "scenes": rows, "mean": mean,
        "closest_drift_scale": best})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

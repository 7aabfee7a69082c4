"""Benchmark: how far synthetic depth frames are from a real Kinect's (the 7-Scenes sample), on simple statistics.

Both sides are measured by the same code on 640 x 480 frames with the 7-Scenes intrinsics (fx = fy = 585):
the real frames of ../shared/data/rgbd/7scenes-sample, and synthetic rooms (`data_tools.synthetic`) rendered
with those intrinsics along `room_trajectory`, once with the ideal sensor and once through
`data_tools.synthetic.sensor` (the "kinect" model), depth stored in millimetres like the real PNGs.

Statistics (pooled over frames; depth in metres; 0 = invalid):

* invalid fraction: overall, per depth bin and per incidence-angle bin. An invalid pixel has no depth, so both
  are taken from the *filled* map: every pixel gets the mean of the valid pixels in an 11 x 11 window
  (pixels without one are left out); normals are the cross product of the back-projected filled map's
  differences over +-2 pixels; the incidence angle is the angle between the normal and the viewing ray.
* at depth edges: pixels within 2 px of a jump of > 10 % between 4-neighbours of the filled map, and
  elsewhere; plus the horizontal invalid runs (1..40 px, valid at both ends, ends > 10 % apart): the share
  whose left end is the nearer one (a projector-camera shadow lies on one side only), and the median of
  width / (fx (1/z_near - 1/z_far)) = the baseline (metres) that would cast such a shadow.
* noise on planar regions: 8 x 8 patches, all valid, depth spread < 10 %; 1/z is fitted by a plane in (u, v)
  (exact for a planar surface under a pinhole camera); per patch the residual std (dof-corrected); per depth
  bin the median over patches.
* quantisation step: per depth bin, the median gap between consecutive distinct depth values seen.

Prints a table and writes benchmarks/results/sensor_gap.json. `--fit` also prints the sensor parameters
fitted to the real frames (how `sensor.KINECT` was obtained).

    python benchmarks/bm_sensor_gap.py [--rooms 5] [--frames 12] [--fit]     # ~2 min idle, 7 min loaded
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Dict, Iterable, List, Tuple

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from sparse3d.utils.atomic_io import atomic_write_json  # noqa: E402

REAL = os.path.join(ROOT, "..", "shared", "data", "rgbd", "7scenes-sample")
DEPTH_BINS = np.arange(0.5, 4.51, 0.5)
ANGLE_BINS = np.array([0, 30, 45, 60, 70, 75, 80, 85, 90.01])
NOISE_BINS = np.arange(0.5, 4.01, 0.25)
FILL_R, NORMAL_STEP, EDGE_REL, EDGE_BAND, PATCH = 5, 2, 0.10, 2, 8


def box_sum(a: np.ndarray, r: int) -> np.ndarray:
    """Sum of a [H,W] over the (2r+1)^2 window around each pixel (zero outside), via an integral image."""
    H, W = a.shape
    c = np.zeros((H + 2 * r + 1, W + 2 * r + 1))
    c[1:, 1:] = np.pad(a, r).cumsum(0).cumsum(1)
    k = 2 * r + 1
    return c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]


def filled(depth: np.ndarray, r: int = FILL_R) -> np.ndarray:
    """float64 [H,W]: valid pixels keep their depth; invalid ones get the mean of the valid ones within r px
    (nan where there is none)."""
    v = depth > 0
    n = box_sum(v.astype(np.float64), r)
    s = box_sum(np.where(v, depth, 0.0), r)
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(v, depth, s / n)
    f[~v & (n == 0)] = np.nan
    return f


def incidence_cos(z: np.ndarray, K: np.ndarray, step: int = NORMAL_STEP) -> np.ndarray:
    """float64 [H,W] |cos| of the angle between the surface normal of the depth map z [H,W] (nan = unknown)
    and the viewing ray, from central differences over +-step px (nan at the border / unknown)."""
    H, W = z.shape
    u, v = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    ray = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    P = ray * z[..., None]
    du = np.full_like(P, np.nan)
    dv = np.full_like(P, np.nan)
    du[:, step:-step] = P[:, 2 * step:] - P[:, :-2 * step]
    dv[step:-step] = P[2 * step:] - P[:-2 * step]
    n = np.cross(du, dv)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.abs((n * ray).sum(-1)) / (np.linalg.norm(n, axis=-1) * np.linalg.norm(ray, axis=-1))


def edge_map(z: np.ndarray, rel: float = EDGE_REL) -> np.ndarray:
    """bool [H,W]: pixels with a 4-neighbour whose depth differs by more than rel * the nearer depth."""
    e = np.zeros(z.shape, bool)
    with np.errstate(invalid="ignore"):
        h = np.abs(np.diff(z, axis=1)) > rel * np.fmin(z[:, 1:], z[:, :-1])
        w = np.abs(np.diff(z, axis=0)) > rel * np.fmin(z[1:], z[:-1])
    e[:, 1:] |= h
    e[:, :-1] |= h
    e[1:] |= w
    e[:-1] |= w
    return e


def dilate(m: np.ndarray, r: int) -> np.ndarray:
    return box_sum(m.astype(np.float64), r) > 0.5


def invalid_runs(depth: np.ndarray, max_len: int = 40) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Horizontal runs of invalid pixels with valid pixels at both ends: (width int [R], left-end depth [R],
    right-end depth [R])."""
    v = depth > 0
    out_w, out_l, out_r = [], [], []
    for row in range(depth.shape[0]):
        d = np.diff(np.concatenate([[1], v[row].astype(np.int8), [1]]))
        starts, ends = np.flatnonzero(d == -1), np.flatnonzero(d == 1)  # invalid in [start, end)
        ok = (starts > 0) & (ends < depth.shape[1]) & (ends - starts <= max_len)
        s, e = starts[ok], ends[ok]
        out_w.append(e - s)
        out_l.append(depth[row, s - 1])
        out_r.append(depth[row, e])
    return np.concatenate(out_w), np.concatenate(out_l), np.concatenate(out_r)


def patch_noise(depth: np.ndarray, P: int = PATCH) -> Tuple[np.ndarray, np.ndarray]:
    """(mean depth [N], residual std [N]) of the all-valid, edge-free P x P patches: 1/z fitted by a plane."""
    H, W = depth.shape
    Z = depth[: H // P * P, : W // P * P].reshape(H // P, P, W // P, P).transpose(0, 2, 1, 3).reshape(-1, P * P)
    Z = Z.astype(np.float64)
    ok = (Z > 0).all(1)
    Z = Z[ok]
    ok2 = (Z.max(1) - Z.min(1)) < EDGE_REL * Z.min(1)
    Z = Z[ok2]
    if len(Z) == 0:
        return np.zeros(0), np.zeros(0)
    v, u = np.meshgrid(np.arange(P, dtype=np.float64), np.arange(P, dtype=np.float64), indexing="ij")
    A = np.stack([u.ravel(), v.ravel(), np.ones(P * P)], 1)
    coef = np.linalg.lstsq(A, (1.0 / Z).T, rcond=None)[0]  # [3, N]
    res = Z - 1.0 / (A @ coef).T
    std = np.sqrt((res ** 2).sum(1) / (P * P - 3))
    return Z.mean(1), std


class Stats:
    """Accumulates the statistics of the module docstring over frames (depth float [H,W] metres, K [3,3])."""

    def __init__(self):
        self.n_pix = self.n_inv = 0
        self.dep = np.zeros((2, len(DEPTH_BINS) - 1))  # invalid, all
        self.ang = np.zeros((2, len(ANGLE_BINS) - 1))
        self.edge = np.zeros((2, 2))  # [band, off band] x [invalid, all]
        self.run_w: List[np.ndarray] = []
        self.run_l: List[np.ndarray] = []
        self.run_r: List[np.ndarray] = []
        self.noise_z: List[np.ndarray] = []
        self.noise_s: List[np.ndarray] = []
        self.values: List[np.ndarray] = []

    def add(self, depth: np.ndarray, K: np.ndarray) -> None:
        depth = np.asarray(depth, np.float64)
        inv = depth <= 0
        self.n_pix += depth.size
        self.n_inv += int(inv.sum())
        f = filled(depth)
        known = np.isfinite(f)
        e = edge_map(f)
        band = dilate(e, EDGE_BAND) & known
        cos = incidence_cos(f, K)
        ang = np.degrees(np.arccos(np.clip(cos, 0, 1)))
        for k, (m, x, bins) in enumerate([(known, f, DEPTH_BINS), (known & ~band & np.isfinite(ang), ang, ANGLE_BINS)]):
            acc = self.dep if k == 0 else self.ang
            b = np.digitize(x[m], bins) - 1
            good = (b >= 0) & (b < len(bins) - 1)
            acc[0] += np.bincount(b[good], inv[m][good], len(bins) - 1)
            acc[1] += np.bincount(b[good], minlength=len(bins) - 1)
        for i, m in enumerate([band, known & ~band]):
            self.edge[i] += [inv[m].sum(), m.sum()]
        w, zl, zr = invalid_runs(depth)
        self.run_w.append(w)
        self.run_l.append(zl)
        self.run_r.append(zr)
        z, s = patch_noise(depth)
        self.noise_z.append(z)
        self.noise_s.append(s)
        self.values.append(np.unique(np.round(depth[~inv] * 1000).astype(np.int64)))
        self.fx = float(K[0, 0])

    def result(self) -> Dict:
        def frac(acc, bins, unit):
            return [{"bin": f"{bins[i]:g}-{bins[i + 1]:g}{unit}", "invalid": round(float(acc[0, i] / acc[1, i]), 4),
                     "pixels": int(acc[1, i])} for i in range(acc.shape[1]) if acc[1, i] > 0]
        w, zl, zr = (np.concatenate(x) for x in (self.run_w, self.run_l, self.run_r))
        jump = np.abs(zl - zr) > EDGE_REL * np.minimum(zl, zr)
        zn, zf = np.minimum(zl, zr)[jump], np.maximum(zl, zr)[jump]
        base = w[jump] / (self.fx * (1 / zn - 1 / zf))
        nz, ns = np.concatenate(self.noise_z), np.concatenate(self.noise_s)
        noise = []
        for i in range(len(NOISE_BINS) - 1):
            m = (nz >= NOISE_BINS[i]) & (nz < NOISE_BINS[i + 1])
            if m.sum() >= 30:
                noise.append({"z": round(float((NOISE_BINS[i] + NOISE_BINS[i + 1]) / 2), 3),
                              "std_mm": round(float(np.median(ns[m])) * 1000, 2), "patches": int(m.sum())})
        vals = np.unique(np.concatenate(self.values))
        quant = []
        for i in range(len(DEPTH_BINS) - 1):
            v = vals[(vals >= DEPTH_BINS[i] * 1000) & (vals < DEPTH_BINS[i + 1] * 1000)]
            if len(v) >= 3:
                quant.append({"bin": f"{DEPTH_BINS[i]:g}-{DEPTH_BINS[i + 1]:g}m",
                              "step_mm": float(np.median(np.diff(v))), "levels": int(len(v))})
        return {"invalid": round(self.n_inv / self.n_pix, 4),
                "invalid_vs_depth": frac(self.dep, DEPTH_BINS, "m"),
                "invalid_vs_angle": frac(self.ang, ANGLE_BINS, "deg"),
                "invalid_at_edges": round(float(self.edge[0, 0] / max(self.edge[0, 1], 1)), 4),
                "invalid_off_edges": round(float(self.edge[1, 0] / max(self.edge[1, 1], 1)), 4),
                "edge_runs": int(jump.sum()),
                "edge_runs_left_nearer": round(float((zl < zr)[jump].mean()), 3) if jump.any() else None,
                "edge_run_baseline_m": round(float(np.median(base)), 4) if jump.any() else None,
                "noise_vs_depth": noise, "quantisation_vs_depth": quant}


def real_frames(folder: str, every: int = 1) -> Iterable[Tuple[np.ndarray, np.ndarray]]:
    from data_tools.scannet.rgbd_folder import RGBDFolder
    src = RGBDFolder(folder)
    for k in range(0, len(src), every):
        yield src.frame(k, with_color=False)[0], src.intrinsic


def synthetic_frames(n_rooms: int, n_frames: int, sensor: str, seed: int = 0
                     ) -> Iterable[Tuple[np.ndarray, np.ndarray]]:
    """Frames of rooms `seed * 1000 + k` (room types in rotation) rendered at 640 x 480 with the 7-Scenes
    intrinsics, through `sensor` ("ideal" | "kinect"), stored in mm like the real PNGs."""
    from data_tools.synthetic.render import room_trajectory
    from data_tools.synthetic.sensor import SENSORS, SceneSensor
    from data_tools.synthetic.writer import scene_room_type
    from data_tools.synthetic.room import make_room
    from data_tools.synthetic.render import MeshRenderer
    K = np.array([[585.0, 0, 320], [0, 585.0, 240], [0, 0, 1]])
    for k in range(n_rooms):
        s = seed * 1000 + k
        room = make_room(s, scene_room_type(k))
        verts, faces, colors, obj, _ = room.mesh()
        renderer = MeshRenderer(verts, faces, colors[faces[:, 0]])
        scene = SceneSensor(SENSORS[sensor], s, verts, faces, colors, obj, [o.raw_category for o in room.objects])
        for pose in room_trajectory(room.size, n_frames, s + 7):
            depth, _, tri = renderer.render(K, pose, 640, 480, shade=False)
            depth = scene.depth(depth, tri, K, pose)
            yield np.round(depth * 1000.0) / 1000.0, K


def table(res: Dict[str, Dict]) -> str:
    names = list(res)
    lines = ["statistic".ljust(28) + "".join(n.rjust(18) for n in names)]

    def row(label, get):
        vals = []
        for n in names:
            try:
                x = get(res[n])
                vals.append(("-" if x is None else f"{x:.4g}").rjust(18))
            except (KeyError, IndexError, StopIteration):
                vals.append("-".rjust(18))
        lines.append(label.ljust(28) + "".join(vals))

    def find(lst, key, val, field):
        return next(d[field] for d in lst if d[key] == val)
    row("invalid (all)", lambda r: r["invalid"])
    for b in [f"{DEPTH_BINS[i]:g}-{DEPTH_BINS[i + 1]:g}m" for i in range(len(DEPTH_BINS) - 1)]:
        row(f"  invalid at {b}", lambda r, b=b: find(r["invalid_vs_depth"], "bin", b, "invalid"))
    for b in [f"{ANGLE_BINS[i]:g}-{ANGLE_BINS[i + 1]:g}deg" for i in range(len(ANGLE_BINS) - 1)]:
        row(f"  invalid at {b}", lambda r, b=b: find(r["invalid_vs_angle"], "bin", b, "invalid"))
    row("invalid at depth edges", lambda r: r["invalid_at_edges"])
    row("invalid off edges", lambda r: r["invalid_off_edges"])
    row("edge runs, left nearer", lambda r: r["edge_runs_left_nearer"])
    row("edge run baseline (m)", lambda r: r["edge_run_baseline_m"])
    for z in (NOISE_BINS[:-1] + NOISE_BINS[1:]) / 2:
        row(f"  noise std mm at {z:.3g}m", lambda r, z=z: find(r["noise_vs_depth"], "z", round(float(z), 3), "std_mm"))
    for b in [f"{DEPTH_BINS[i]:g}-{DEPTH_BINS[i + 1]:g}m" for i in range(len(DEPTH_BINS) - 1)]:
        row(f"  quant step mm {b}", lambda r, b=b: find(r["quantisation_vs_depth"], "bin", b, "step_mm"))
    return "\n".join(lines)


def fit(real: Dict) -> Dict:
    """Sensor parameters from the real statistics: quantisation dz = q z^2 (least squares over the bins), then
    the Gaussian part of the noise sigma(z) = a + b z^2 fitted to sqrt(std^2 - dz^2 / 12) (least squares)."""
    mids = [(float(d["bin"].split("-")[0]) + float(d["bin"].split("-")[1][:-1])) / 2 for d in real["quantisation_vs_depth"]]
    steps = np.array([d["step_mm"] / 1000 for d in real["quantisation_vs_depth"]])
    z2 = np.array(mids) ** 2
    q = float((z2 * steps).sum() / (z2 * z2).sum())
    z = np.array([d["z"] for d in real["noise_vs_depth"]])
    s = np.array([d["std_mm"] / 1000 for d in real["noise_vs_depth"]])
    g = np.sqrt(np.maximum(s ** 2 - (q * z ** 2) ** 2 / 12, 0))
    a, b = np.linalg.lstsq(np.stack([np.ones_like(z), z ** 2], 1), g, rcond=None)[0]
    return {"quant_q_per_m": q, "noise_a_m": float(a), "noise_b_per_m": float(b)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rooms", type=int, default=5, help="synthetic rooms (default 5)")
    ap.add_argument("--frames", type=int, default=12, help="frames per synthetic room (default 12)")
    ap.add_argument("--every", type=int, default=1, help="use every n-th real frame (default 1: all 100)")
    ap.add_argument("--sensors", default="ideal,kinect", help="synthetic sensors to measure (default ideal,kinect)")
    ap.add_argument("--fit", action="store_true", help="print the sensor parameters fitted to the real frames")
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "sensor_gap.json"))
    a = ap.parse_args(argv)
    t0 = time.time()
    res: Dict[str, Dict] = {}
    if os.path.isdir(REAL):
        st = Stats()
        for d, K in real_frames(REAL, a.every):
            st.add(d, K)
        res["7scenes"] = st.result()
    else:
        print(f"note: no real sample at {REAL}: synthetic statistics only")
    for sensor in [s for s in a.sensors.split(",") if s]:
        st = Stats()
        for d, K in synthetic_frames(a.rooms, a.frames, sensor):
            st.add(d, K)
        res[f"synthetic-{sensor}"] = st.result()
    print(table(res))
    out = {"results": res, "rooms": a.rooms, "frames_per_room": a.frames, "seconds": round(time.time() - t0, 1)}
    if a.fit and "7scenes" in res:
        out["fit"] = fit(res["7scenes"])
        print("fitted:", out["fit"])
    atomic_write_json(a.out, out)
    print(f"wrote {a.out} ({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

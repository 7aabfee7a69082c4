"""Mesh voxelization against a brute-force point-triangle distance."""
import numpy as np
import pytest

from _data_helpers import native_or_skip, shared_path
from data_tools.synthetic.furniture import Box, boxes_to_mesh
from data_tools.voxelize import (FREE, OCCUPIED, UNKNOWN, mesh_sdf_band, occupancy, surface_band,
                                 ternary_from_depth, virtual_scan_frames)


def brute_distance(points: np.ndarray, v: np.ndarray, f: np.ndarray) -> np.ndarray:
    """float64 [P]: exact distance from each point to the closest triangle (Ericson's closest point)."""
    p = np.asarray(points, np.float64)[:, None, :]
    a, b, c = (v[f[:, k]][None] for k in range(3))
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    bp = p - b
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    cp = p - c
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = va + vb + vc
        v_ = vb / denom
        w_ = vc / denom
        q = a + ab * v_[..., None] + ac * w_[..., None]  # face region
        t_ab = d1 / (d1 - d3)
        t_ac = d2 / (d2 - d6)
        t_bc = (d4 - d3) / ((d4 - d3) + (d5 - d6))
    regions = [
        (d1 <= 0) & (d2 <= 0), (d3 >= 0) & (d4 <= d3), (d6 >= 0) & (d5 <= d6),
        (vc <= 0) & (d1 >= 0) & (d3 <= 0), (vb <= 0) & (d2 >= 0) & (d6 <= 0),
        (va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0)]
    points_r = [np.broadcast_to(a, q.shape), np.broadcast_to(b, q.shape), np.broadcast_to(c, q.shape),
                a + ab * t_ab[..., None], a + ac * t_ac[..., None], b + (c - b) * t_bc[..., None]]
    done = np.zeros(q.shape[:2], bool)
    for m, r in zip(regions, points_r):
        m = m & ~done
        q = np.where(m[..., None], r, q)
        done |= m
    return np.linalg.norm(p - q, axis=-1).min(1)


def _box():
    v, f, _ = boxes_to_mesh([Box((0.0, 0.0, 0.0), (0.5, 0.3, 0.4))], 0.3, np.array([0.05, -0.02, 0.01]))
    return v, f


def test_brute_force_reference_behaves():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], float)
    f = np.array([[0, 1, 2]])
    pts = np.array([[0.2, 0.2, 0.5], [-1, -1, 0], [0.5, -2, 0], [1, 1, 0], [2, 0, 0.0]])
    np.testing.assert_allclose(brute_distance(pts, v, f), [0.5, np.sqrt(2), 2, np.sqrt(0.5), 1], atol=1e-12)


def test_surface_band_matches_brute_force_on_box():
    v, f = _box()
    vs, band = 0.05, 2.0
    c, d = surface_band(v, f, vs, band)
    lo = np.floor(v.min(0) / vs).astype(int) - 4
    hi = np.ceil(v.max(0) / vs).astype(int) + 4
    grid = np.stack(np.meshgrid(*[np.arange(l, h + 1) for l, h in zip(lo, hi)], indexing="ij"), -1).reshape(-1, 3)
    ref = brute_distance(grid * vs, v, f) / vs
    inside = ref <= band
    ours = {tuple(x) for x in c}
    want = {tuple(x) for x, r in zip(grid, ref) if r <= band - 1e-4}
    assert want <= ours  # complete
    ref_of = dict(zip(map(tuple, grid), ref))
    np.testing.assert_allclose(d, [ref_of[tuple(x)] for x in c], atol=1e-4)  # exact distances
    assert len(ours) <= inside.sum() + 0  # nothing outside the band
    occ = occupancy(v, f, vs)
    np.testing.assert_array_less(brute_distance(occ * vs, v, f) / vs, 0.5 + 1e-4)


def test_signed_distance_of_closed_box():
    v, f = _box()
    c, s = mesh_sdf_band(v, f, 0.05, 3.0)
    ref = brute_distance(c * 0.05, v, f) / 0.05
    np.testing.assert_allclose(np.abs(s), ref, atol=1e-4)
    # inside test against the box itself: rotate points back into the box frame
    cth, sth = np.cos(-0.3), np.sin(-0.3)
    p = c * 0.05 - np.array([0.05, -0.02, 0.01])
    local = p @ np.array([[cth, -sth, 0], [sth, cth, 0], [0, 0, 1]]).T
    inside = np.all(np.abs(local) < np.array([0.25, 0.15, 0.2]), axis=1)
    far = ref > 0.05  # avoid ties on the surface
    np.testing.assert_array_equal((s < 0)[far], inside[far])


def test_bunny_against_brute_force():
    import trimesh
    m = trimesh.load(shared_path("meshes", "bunny.ply"), process=False)
    v, f = np.asarray(m.vertices), np.asarray(m.faces)
    vs = float(np.ptp(v, axis=0).max() / 40)
    c, d = surface_band(v, f, vs, 1.5)
    assert len(c) > 1000
    rng = np.random.default_rng(0)
    pick = rng.choice(len(c), 40, replace=False)
    np.testing.assert_allclose(d[pick], brute_distance(c[pick] * vs, v, f) / vs, atol=1e-3)
    # completeness: random lattice points near the surface are all found
    q = np.round(v[rng.choice(len(v), 40, replace=False)] / vs).astype(int) + rng.integers(-1, 2, (40, 3))
    rq = brute_distance(q * vs, v, f) / vs
    found = {tuple(x) for x in c}
    assert all(tuple(x) in found for x, r in zip(q, rq) if r < 1.5 - 1e-3)


def test_chair_model_occupancy():
    import trimesh
    m = trimesh.load(shared_path("meshes", "chair_model.obj"), force="mesh", process=False)
    v, f = np.asarray(m.vertices), np.asarray(m.faces)
    vs = float(np.ptp(v, axis=0).max() / 32)
    occ = occupancy(v, f, vs)
    assert len(occ) > 200
    sub = occ[np.random.default_rng(1).choice(len(occ), 100, replace=False)]
    np.testing.assert_array_less(brute_distance(sub * vs, v, f) / vs, 0.5 + 1e-3)


def test_ternary_from_camera_visibility():
    native_or_skip()
    # a wall at x = 1 (facing the camera at the origin, looking along +x)
    v = np.array([[1, -3, -3], [1, 3, -3], [1, 3, 3], [1, -3, 3]], float)
    f = np.array([[0, 1, 2], [0, 2, 3]])
    from data_tools.synthetic.render import look_at_pose
    K = np.array([[20.0, 0, 15.5], [0, 20.0, 11.5], [0, 0, 1]])
    frames = list(virtual_scan_frames(v, f, [look_at_pose(np.zeros(3), 0.0, 0.0)], K, 32, 24))
    vs = 0.1
    coords = np.array([[5, 0, 0], [10, 0, 0], [13, 0, 0], [-3, 0, 0], [5, 40, 0]], np.int32)
    occ = np.abs(brute_distance(coords * vs, v, f)) <= vs / 2
    st = ternary_from_depth(coords, vs, occ, frames, K, trunc=0.2)
    np.testing.assert_array_equal(st, [FREE, OCCUPIED, UNKNOWN, UNKNOWN, UNKNOWN])

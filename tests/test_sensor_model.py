"""The depth-sensor model of the synthetic frames (data_tools.synthetic.sensor): each effect on frames whose
answer is known (planes at known depths and angles), determinism, the ideal sensor changing nothing, and
the argument checks."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest

from data_tools.synthetic.sensor import (IDEAL, KINECT, SPECULAR, SceneSensor, SensorModel, blob_field,
                                         projector_shadow, sensor_model)

H, W = 96, 128


def _faces_with_normals(normals):
    """A mesh with one triangle per unit normal [F,3] (vertices, faces, colors, obj)."""
    vs, fs = [], []
    for k, n in enumerate(np.asarray(normals, np.float64)):
        n = n / np.linalg.norm(n)
        a = np.cross(n, [1.0, 0, 0] if abs(n[0]) < 0.9 else [0, 1.0, 0])
        a /= np.linalg.norm(a)
        b = np.cross(n, a)
        vs += [np.zeros(3), a, b]  # (a x b) = n
        fs.append([3 * k, 3 * k + 1, 3 * k + 2])
    v = np.array(vs)
    return v, np.array(fs), np.full((len(v), 3), 200, np.uint8), np.repeat(np.arange(len(fs)), 3)


def _K(f=1e4):
    return np.array([[f, 0, (W - 1) / 2], [0, f, (H - 1) / 2], [0, 0, 1.0]])


def _scene(model, seed=0, normals=((0, 0, -1.0),), colors=None, categories=None):
    v, f, c, o = _faces_with_normals(normals)
    if colors is not None:
        c = np.repeat(np.asarray(colors, np.uint8), 3, 0)
    cats = categories or ["wall"] * len(f)
    return SceneSensor(model, seed, v, f, c, o, cats)


def test_noise_std_grows_with_depth_as_specified():
    m = SensorModel(noise_a=0.001, noise_b=0.004)
    cam = _scene(m, seed=3)
    for z in (0.8, 2.0, 3.5):
        out = cam.depth(np.full((H, W), z, np.float32), np.zeros((H, W), np.int64), _K(), np.eye(4))
        assert (out > 0).all()
        std = float(np.std(out.astype(np.float64) - z))
        want = 0.001 + 0.004 * z * z
        assert abs(std / want - 1) < 0.06, (z, std, want)  # 12288 samples: the estimate's rel. std is 0.6 %
        assert abs(float(np.mean(out)) - z) < 4 * want / np.sqrt(H * W)


def test_disparity_quantisation_step():
    q = 0.003
    cam = _scene(SensorModel(quant_q=q))
    z = np.linspace(0.5, 4.0, H * W).reshape(H, W).astype(np.float32)
    out = cam.depth(z, np.zeros((H, W), np.int64), _K(), np.eye(4)).astype(np.float64)
    k = 1.0 / out / q
    np.testing.assert_allclose(k, np.round(k), atol=1e-3)  # 1/z on a lattice of step q
    assert np.abs(out - z).max() <= 0.5 * q * 4.0 ** 2 * 1.01 + 1e-6
    levels = np.unique(np.round(k).astype(int))
    zs = 1.0 / (levels * q)
    steps = -np.diff(zs)  # step between neighbouring depth levels ~ q z^2
    np.testing.assert_allclose(steps, q * zs[1:] * zs[:-1], rtol=1e-9)
    near3 = np.argmin(np.abs(zs - 3.0))
    assert abs(steps[near3] / (q * 9.0) - 1) < 0.01


def test_invalid_fraction_vs_incidence_angle():
    m = SensorModel(graze_start=60.0, graze_max=0.8)
    angles = [0.0, 50.0, 70.0, 80.0, 88.0]
    normals = [(np.sin(np.radians(a)), 0.0, -np.cos(np.radians(a))) for a in angles]
    cam = _scene(m, seed=1, normals=normals)
    tri = np.repeat(np.arange(len(angles)), H * W // len(angles) + 1)[: H * W].reshape(H, W)
    fracs = []
    for _ in range(4):
        out = cam.depth(np.full((H, W), 2.0, np.float32), tri, _K(), np.eye(4))
        fracs.append([float((out[tri == k] == 0).mean()) for k in range(len(angles))])
    got = np.mean(fracs, 0)
    want = [0.8 * np.clip((a - 60) / 30, 0, 1) ** 2 for a in angles]
    np.testing.assert_allclose(got, want, atol=0.03)
    assert got[0] == 0 and got[1] == 0 and np.all(np.diff(got) >= 0)


def test_projector_shadow_left_of_foreground():
    f, b = 200.0, 0.075
    z = np.full((4, 100), 2.0)
    z[:, 50:70] = 1.0
    sh = projector_shadow(z, f, b)
    width = f * b * (1 / 1.0 - 1 / 2.0)  # 7.5 px
    cols = np.flatnonzero(sh[0])
    assert cols.min() == 50 - int(np.ceil(width)) + 0 or cols.min() == 50 - int(np.floor(width))
    assert cols.max() == 49 and len(cols) in (int(np.floor(width)), int(np.ceil(width)))
    assert (sh == sh[0]).all() and not sh[:, 50:].any()


def test_dark_and_specular_surfaces_drop_out_in_blobs():
    m = SensorModel(dark_below=0.2, dark_max=0.5, specular=1.0, blob_px=4.0, f_ref=1e4)
    cam = _scene(m, seed=2, normals=[(0, 0, -1.0)] * 3, colors=[[10, 10, 10], [200, 200, 200], [200, 200, 200]],
                 categories=["wall", "wall", "mirror"])
    lost = np.zeros(3)
    for k in range(3):
        tri = np.full((H, W), k)
        for _ in range(6):
            lost[k] += (cam.depth(np.full((H, W), 2.0, np.float32), tri, _K(), np.eye(4)) == 0).mean() / 6
    dark_p = 0.5 * (0.2 - 10 / 255) / 0.2
    assert abs(lost[0] - dark_p) < 0.08 and lost[1] == 0 and abs(lost[2] - SPECULAR["mirror"]) < 0.08
    u = blob_field(np.random.default_rng(0), (200, 300), 5.0)
    assert 0 < u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.05
    assert abs(float((u < 0.3).mean()) - 0.3) < 0.05
    assert np.corrcoef(u[:, :-1].ravel(), u[:, 1:].ravel())[0, 1] > 0.8  # blobs, not salt and pepper


def test_range_border_and_edges():
    m = SensorModel(z_min=0.5, z_max=3.0, border_px=4.0, edge_drop=1.0, edge_px=1.0, f_ref=1e4)
    cam = _scene(m)
    z = np.full((H, W), 2.0, np.float32)
    z[:, :10] = 0.3
    z[:, 10:20] = 3.5
    z[40:60, 60:80] = 1.0
    out = cam.depth(z, np.zeros((H, W), np.int64), _K(), np.eye(4))
    assert (out[:, :20] == 0).all() and (out[:, -4:] == 0).all()
    assert (out[40:60, 60] == 0).all() and (out[40:60, 59] == 0).all() and (out[39, 60:80] == 0).all()
    assert (out[45:55, 62:78] == 1.0).all() and (out[5:30, 25:100] == 2.0).all()


def test_same_seed_same_frames_other_seed_other_frames():
    def run(seed):
        cam = _scene(KINECT, seed=seed, normals=[(0, 0.3, -1.0)])
        z = np.linspace(1.0, 3.5, H * W).reshape(H, W).astype(np.float32)
        outs = [cam.depth(z, np.zeros((H, W), np.int64), _K(585.0 * W / 640), np.eye(4)) for _ in range(2)]
        return outs, cam.drift_poses(np.repeat(np.eye(4)[None], 5, 0))
    (a, pa), (b, pb), (c, pc) = run(7), run(7), run(8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and np.array_equal(pa, pb)
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(pa, pc)
    assert not np.array_equal(a[0], a[1])  # frames draw on, they do not repeat
    R = pa[:, :3, :3]
    np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape), atol=1e-12)
    assert 0 < np.abs(pa[:, :3, 3]).max() < 0.05


def test_ideal_sensor_changes_nothing():
    cam = _scene("ideal")
    z = np.random.default_rng(0).uniform(0.1, 9, (H, W)).astype(np.float32)
    assert cam.depth(z, np.zeros((H, W), np.int64), _K(), np.eye(4)) is z
    poses = np.random.default_rng(1).normal(size=(3, 4, 4))
    assert np.array_equal(cam.drift_poses(poses), poses)
    assert IDEAL.is_ideal and not KINECT.is_ideal and sensor_model("kinect") is KINECT


def test_kinect_scene_keeps_mesh_and_colour_changes_depth(tmp_path):
    from data_tools.scannet.sens import SensReader
    from data_tools.synthetic import generate_scene
    a = generate_scene(tmp_path / "a", "scene0000_00", 5, n_frames=2, width=64, height=48)
    b = generate_scene(tmp_path / "b", "scene0000_00", 5, n_frames=2, width=64, height=48, sensor="kinect")
    for suf in ("_vh_clean_2.ply", "_vh_clean_2.labels.ply"):
        assert (tmp_path / "a" / "scene0000_00" / ("scene0000_00" + suf)).read_bytes() == \
            (tmp_path / "b" / "scene0000_00" / ("scene0000_00" + suf)).read_bytes()
    za, zb = (zipfile.ZipFile(tmp_path / x / "scene0000_00" / "scene0000_00_2d-label-filt.zip") for x in "ab")
    assert za.namelist() == zb.namelist() and all(za.read(n) == zb.read(n) for n in za.namelist())
    ra, rb = SensReader(a + "/scene0000_00.sens"), SensReader(b + "/scene0000_00.sens")
    for i in range(2):
        fa, fb = ra.frame(i), rb.frame(i)
        assert np.array_equal(fa.color, fb.color)
        da, db = fa.depth.astype(float), fb.depth.astype(float)
        both = (da > 0) & (db > 0)
        assert (db == 0).sum() > (da == 0).sum() and both.mean() > 0.5
        assert 0 < np.median(np.abs(da - db)[both]) < 30  # mm
    assert 0 < np.abs(ra.poses - rb.poses).max() < 0.05
    assert "sensor = kinect" in (tmp_path / "b" / "scene0000_00" / "scene0000_00.txt").read_text()


@pytest.mark.parametrize("kw, err, msg", [
    (dict(noise_a=-0.1), ValueError, "noise_a: expected >= 0"),
    (dict(graze_max=1.5), ValueError, "graze_max: expected a probability"),
    (dict(z_min=3.0, z_max=2.0), ValueError, "z_min < z_max"),
    (dict(graze_start=95.0), ValueError, "graze_start"),
    (dict(drift_rho=1.0), ValueError, "drift_rho"),
    (dict(baseline="wide"), TypeError, "baseline: expected a number"),
    (dict(blob_px=0.5), ValueError, "blob_px"),
])
def test_bad_parameters_are_errors(kw, err, msg):
    with pytest.raises(err, match=msg):
        SensorModel(**kw)


def test_bad_sensor_arguments_are_errors(tmp_path):
    from data_tools.synthetic import generate_scene
    with pytest.raises(ValueError, match="sensor: expected one of"):
        sensor_model("lidar")
    with pytest.raises(ValueError, match="sensor: expected one of"):
        generate_scene(tmp_path, "scene0000_00", 0, n_frames=1, width=16, height=16, sensor="lidar")
    with pytest.raises(ValueError, match="depth_noise: expected 0 with a sensor model"):
        generate_scene(tmp_path, "scene0000_00", 0, n_frames=1, width=16, height=16, depth_noise=0.01,
                       sensor="kinect")
    cam = _scene(KINECT)
    with pytest.raises(ValueError, match="tri: expected the depth's shape"):
        cam.depth(np.ones((4, 4), np.float32), np.zeros((4, 5), np.int64), _K(), np.eye(4))


def test_cluttered_rooms_add_to_the_basic_room():
    from data_tools.synthetic.label_frames import RAW_TO_SCANNET_ID
    from data_tools.synthetic.room import RAW_TO_NYU40, make_room
    basic, clut = make_room(1, "bedroom"), make_room(1, "bedroom", content="cluttered")
    n = len(basic.objects)
    for a, b in zip(basic.objects, clut.objects[:n]):  # the basic room is untouched
        assert a.raw_category == b.raw_category and np.array_equal(a.vertices, b.vertices)
        assert np.array_equal(a.colors, b.colors)
    extra = clut.objects[n:]
    cats = {o.raw_category for o in extra}
    assert {"shelf", "coat rack"} <= cats and cats <= set(RAW_TO_NYU40) and cats <= set(RAW_TO_SCANNET_ID)
    rack = next(o for o in extra if o.raw_category == "coat rack")
    ext = rack.vertices.max(0) - rack.vertices.min(0)
    assert ext[2] > 1.5 and min(ext[:2]) < 0.5  # a tall, thin structure
    W, D, H = clut.size
    for o in extra:
        lo, hi = o.vertices.min(0), o.vertices.max(0)
        assert lo[0] > -0.07 and lo[1] > -0.07 and hi[0] < W + 0.07 and hi[1] < D + 0.07 and hi[2] < H
    again = make_room(1, "bedroom", content="cluttered")
    assert all(np.array_equal(a.vertices, b.vertices) for a, b in zip(again.objects, clut.objects))
    with pytest.raises(ValueError, match="content: expected one of"):
        make_room(1, "bedroom", content="messy")


def test_cluttered_scene_is_written_with_labels(tmp_path):
    from data_tools.scannet.ply import read_ply
    from data_tools.synthetic import generate_scene
    from data_tools.synthetic.room_types import RAW_TO_NYU40
    d = generate_scene(tmp_path, "scene0002_00", 2002, n_frames=2, width=48, height=36, room_type="office",
                       content="cluttered", sensor="kinect")
    meta = (tmp_path / "scene0002_00" / "scene0002_00.txt").read_text()
    assert "content = cluttered" in meta and "sensor = kinect" in meta
    labels = set(np.unique(read_ply(d + "/scene0002_00_vh_clean_2.labels.ply").labels).tolist())
    assert labels & {RAW_TO_NYU40[c] for c in ("shelf", "books", "box", "lamp")}
    with pytest.raises(ValueError, match="content: expected one of"):
        generate_scene(tmp_path, "scene0003_00", 0, n_frames=1, width=16, height=16, content="messy")

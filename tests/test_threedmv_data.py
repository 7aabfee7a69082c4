"""3DMV data: textured appearance that leaves geometry bit-identical, sub-voxel textures, per-frame lighting,
and the per-pixel label images in ScanNet's `_2d-label-filt.zip` layout."""
import hashlib
import os

import numpy as np
import pytest

from _data_helpers import shared_path
from data_tools.scannet.label_images import (LabelImages, encode_label_png, label_id_lut, label_zip_name,
                                             write_label_images)
from data_tools.scannet.ply import read_ply
from data_tools.scannet.sens import SensReader
from data_tools.synthetic import generate_scenes, make_room
from data_tools.synthetic.appearance import (CHECKER, GRAIN, PLAIN, STRIPES, ObjectTextures, appearance_rng,
                                             draw_lights, draw_textures)
from data_tools.synthetic.label_frames import RAW_TO_SCANNET_ID, builtin_label_lut
from data_tools.synthetic.room_types import RAW_TO_NYU40

# generate_scenes(root, 1, seed=0, n_frames=3, width=48, height=32, depth_noise=0.01): the geometry of the code
# before textured appearance existed (commit ac73a28; the completion demo's published table depends on it). Its
# exact bytes depend on the CPU (ac73a28 and today's code give one sha256 on an AMD EPYC and another on an Intel
# Xeon, each the same for both commits), so the pin is a fingerprint with tolerances far below any change of the
# rooms (a moved object shifts a frame's mean depth by centimetres); the appearances are compared bit for bit.
PINNED_GEOMETRY = {
    "vertices": 3133, "faces": 3413,
    "faces_sha256": "61cf5d6006fc1cc091bd7ba5f6dc910a903e029b7d573535adff5f643d9c8da9",
    "vertex_mean": [2.814228, 1.888029, 0.45947], "vertex_std": [1.701341, 1.131683, 0.420026],
    "vertex_min": [-0.03, -0.029849, 0.0], "vertex_max": [4.249139, 3.40755, 1.352672],
    "camera_positions": [[1.221067, 0.96642, 1.294125], [3.323285, 1.407341, 1.294125],
                         [1.808042, 2.657632, 1.294125]],
    "depth_valid": [1536, 1536, 1536], "depth_mean_mm": [2559.698, 1545.426, 1718.97],
}


def _geometry(scene_dir: str):
    """(mesh vertices float32 [V, 3], faces int64 [F, 3], poses float64 [N, 4, 4], depth uint16 [N, H, W])."""
    sid = os.path.basename(scene_dir)
    m = read_ply(os.path.join(scene_dir, sid + "_vh_clean_2.ply"))
    with SensReader(os.path.join(scene_dir, sid + ".sens")) as r:
        poses = np.asarray(r.poses, np.float64)
        depth = np.stack([fr.depth for fr in r.iter_frames()])
    return np.asarray(m.vertices, np.float32), np.asarray(m.faces, np.int64), poses, depth


def _check_pinned(scene_dir: str) -> None:
    v, f, poses, depth = _geometry(scene_dir)
    pin = PINNED_GEOMETRY
    assert (len(v), len(f)) == (pin["vertices"], pin["faces"])
    assert hashlib.sha256(np.ascontiguousarray(f).tobytes()).hexdigest() == pin["faces_sha256"]
    v = v.astype(np.float64)
    for key, got in (("vertex_mean", v.mean(0)), ("vertex_std", v.std(0)), ("vertex_min", v.min(0)),
                     ("vertex_max", v.max(0))):
        np.testing.assert_allclose(got, pin[key], atol=2e-5, err_msg=key)
    np.testing.assert_allclose(poses[:, :3, 3], pin["camera_positions"], atol=2e-5)
    valid = depth > 0
    assert np.abs(valid.sum((1, 2)) - np.array(pin["depth_valid"])).max() <= 2
    np.testing.assert_allclose([d[k].mean() for d, k in zip(depth.astype(np.float64), valid)], pin["depth_mean_mm"],
                               atol=0.05)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    out = {}
    for app in ("plain", "textured"):
        root = tmp_path_factory.mktemp(app)
        out[app] = generate_scenes(root, 1, seed=0, n_frames=3, width=48, height=32, depth_noise=0.01,
                                   appearance=app)[0]
    return out


def test_geometry_depth_and_poses_are_pinned_for_both_appearances(scenes):
    _check_pinned(scenes["plain"])
    for a, b in zip(_geometry(scenes["plain"]), _geometry(scenes["textured"])):
        np.testing.assert_array_equal(a, b)  # the appearance changes colour only: the same bytes


def test_textured_frames_differ_in_colour_only(scenes):
    sid = os.path.basename(scenes["plain"])
    with SensReader(os.path.join(scenes["plain"], sid + ".sens")) as a, \
            SensReader(os.path.join(scenes["textured"], sid + ".sens")) as b:
        fa, fb = list(a.iter_frames()), list(b.iter_frames())
    assert all(np.array_equal(x.depth, y.depth) for x, y in zip(fa, fb))
    diff = np.mean([np.abs(x.color.astype(int) - y.color.astype(int)).mean() for x, y in zip(fa, fb)])
    assert diff > 5  # textures and lighting change the colour frames


def test_label_images_written_in_scannet_layout(scenes):
    d = scenes["textured"]
    sid = os.path.basename(d)
    with LabelImages(os.path.join(d, label_zip_name(sid))) as li:
        assert li.frames() == [0, 1, 2]
        lab = li.read(1)
    assert lab.dtype == np.uint16 and lab.shape == (32, 48)
    ids = set(np.unique(lab).tolist()) - {0}
    assert ids and ids <= set(RAW_TO_SCANNET_ID.values())
    # the walls and the floor are seen by every frame of the loop; every labelled pixel maps to a nyu40 id
    nyu = builtin_label_lut()[lab]
    assert (nyu[lab > 0] > 0).all()
    assert 1 in nyu  # wall


def test_label_png_round_trip_and_errors(tmp_path):
    a = np.array([[0, 1, 1313], [65535, 5, 0]], np.uint16)
    p = tmp_path / "scene_2d-label-filt.zip"
    write_label_images(p, {0: a, 7: a[::-1]})
    with LabelImages(p) as li:
        assert li.frames() == [0, 7]
        np.testing.assert_array_equal(li.read(7), a[::-1])
        with pytest.raises(KeyError, match="no label image for frame 3"):
            li.read(3)
    with pytest.raises(ValueError, match=r"ids in \[0, 65535\]"):
        encode_label_png(np.array([[70000]]))
    with pytest.raises(FileNotFoundError, match="no file"):
        LabelImages(tmp_path / "missing.zip")


def test_scannet_ids_match_the_real_tsv():
    tsv = shared_path("scannet", "scannetv2-labels.combined.tsv")
    if not os.path.isfile(tsv):
        pytest.skip(f"{tsv} absent (../shared/data)")
    import csv
    with open(tsv, newline="", encoding="utf-8") as f:
        rows = {r["raw_category"]: r for r in csv.DictReader(f, delimiter="\t")}
    for raw, sid in RAW_TO_SCANNET_ID.items():
        assert int(rows[raw]["id"]) == sid, raw
    assert set(RAW_TO_SCANNET_ID) == set(RAW_TO_NYU40)
    lut, ref = builtin_label_lut(), label_id_lut(tsv)
    ids = np.array(sorted(set(RAW_TO_SCANNET_ID.values())))
    np.testing.assert_array_equal(lut[ids], ref[ids])


def test_texture_is_finer_than_a_voxel():
    # one texture of each patterned kind on the plane z = 0: pixels vary, 5 cm voxel averages hardly do
    tex = ObjectTextures(kind=np.array([STRIPES, CHECKER, GRAIN]), period=np.full(3, 0.03),
                         direction=np.tile([0.8, 0.6, 0.0], (3, 1)), direction2=np.tile([0.0, 1.0, 0.0], (3, 1)),
                         alt=np.zeros((3, 3), np.uint8), contrast=np.full(3, 0.6))
    u = (np.arange(400) + 0.5) * 0.0025  # 1 m at 2.5 mm
    x, y = np.meshgrid(u, u, indexing="ij")
    pts = np.stack([x.ravel(), y.ravel(), np.zeros(x.size)], 1)
    for o in range(3):
        w = tex.pattern(pts, np.full(len(pts), o)).reshape(400, 400)
        cells = w.reshape(20, 20, 20, 20).mean((1, 3))  # 5 cm cells
        assert w.std() > 0.3, o
        assert cells.std() < 0.1, o
        assert abs(cells.mean() - 0.5) < 0.05, o  # mean_colors' weight


def test_textures_and_lights_come_from_their_own_stream():
    room = make_room(5, "office")
    keys = [o.color_key or o.raw_category for o in room.objects]
    t1 = draw_textures(appearance_rng(5), keys)
    t2 = draw_textures(appearance_rng(5), keys)
    np.testing.assert_array_equal(t1.kind, t2.kind)
    np.testing.assert_array_equal(t1.alt, t2.alt)
    assert set(np.unique(t1.kind).tolist()) <= {PLAIN, STRIPES, CHECKER, GRAIN}
    assert (t1.period >= 0.025).all() and (t1.period <= 0.045).all()
    lights = draw_lights(appearance_rng(5), 20)
    gains = np.array([lt.gain.mean() for lt in lights])
    assert gains.std() > 0.05  # the lighting varies across frames
    assert all(lt.direction[2] >= 0 for lt in lights)


def test_appearance_argument_is_checked(tmp_path):
    with pytest.raises(ValueError, match="appearance: expected one of"):
        generate_scenes(tmp_path, 1, n_frames=1, width=16, height=16, appearance="shiny")

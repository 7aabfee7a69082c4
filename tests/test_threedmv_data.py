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

# sha256 of (mesh vertices float32, faces int64, poses float64, raw depth uint16 of every frame) of
# generate_scenes(root, 1, seed=0, n_frames=3, width=48, height=32, depth_noise=0.01), computed with the code
# before textured appearance existed (commit ac73a28): the completion demo's published table depends on them.
PINNED_GEOMETRY = "a1e39d52c855c1200d66c74cacb583ad4cd2658682a29922f0e98cccaaaef0d1"


def _geometry_hash(scene_dir: str) -> str:
    sid = os.path.basename(scene_dir)
    h = hashlib.sha256()
    m = read_ply(os.path.join(scene_dir, sid + "_vh_clean_2.ply"))
    h.update(np.ascontiguousarray(m.vertices, np.float32).tobytes())
    h.update(np.ascontiguousarray(m.faces, np.int64).tobytes())
    with SensReader(os.path.join(scene_dir, sid + ".sens")) as r:
        h.update(np.ascontiguousarray(r.poses, np.float64).tobytes())
        for fr in r.iter_frames():
            h.update(np.ascontiguousarray(fr.depth).tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    out = {}
    for app in ("plain", "textured"):
        root = tmp_path_factory.mktemp(app)
        out[app] = generate_scenes(root, 1, seed=0, n_frames=3, width=48, height=32, depth_noise=0.01,
                                   appearance=app)[0]
    return out


def test_geometry_depth_and_poses_are_pinned_for_both_appearances(scenes):
    assert _geometry_hash(scenes["plain"]) == PINNED_GEOMETRY
    assert _geometry_hash(scenes["textured"]) == PINNED_GEOMETRY


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

"""Synthetic rooms in the exact ScanNet layout, read back by the ScanNet readers."""
import json
import os

import numpy as np
import pytest

from _data_helpers import shared_path
from data_tools.scannet import LabelMap, ScanNetScene, find_scenes, read_aggregation, read_segs
from data_tools.synthetic import (RAW_TO_NYU40, ROOM_TYPES, MeshRenderer, generate_scenes, make_room,
                                  room_trajectory)
from data_tools.synthetic.writer import default_intrinsic, scanned_part


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    return generate_scenes(root, 1, seed=3, n_frames=6, width=64, height=48)[0]


def test_layout_and_mesh_round_trip(scene_dir):
    sid = os.path.basename(scene_dir)
    assert sid == "scene0000_00"
    for suf in (".sens", "_vh_clean_2.ply", "_vh_clean_2.labels.ply", "_vh_clean_2.0.010000.segs.json",
                ".aggregation.json", ".txt"):
        assert os.path.isfile(os.path.join(scene_dir, sid + suf)), suf
    room = make_room(3000, "bedroom")  # generate_scenes: seed * 1000 + k, room types in rotation (scene 0: bedroom)
    v, f, c, obj, seg = room.mesh()
    # the written mesh is the scan's reconstruction: the triangles the 6 frames saw
    r = MeshRenderer(v, f, c[f[:, 0]])
    seen = np.zeros(len(f), bool)
    for pose in room_trajectory(room.size, 6, 3000 + 7):
        tri = r.render(default_intrinsic(64, 48), pose, 64, 48)[2].ravel()
        seen[tri[tri >= 0]] = True
    assert 0 < seen.sum() < len(f)
    full_obj = obj
    v, f, c, obj, seg = scanned_part(v, f, c, obj, seg, seen)
    seen_ids, obj = np.unique(obj, return_inverse=True)  # objects never seen are not annotated (ids renumbered)
    sc = ScanNetScene(scene_dir)
    mesh, nyu, inst = sc.labelled_mesh()
    np.testing.assert_array_equal(mesh.vertices, v)
    np.testing.assert_array_equal(mesh.faces, f)
    assert len(seen_ids) <= int(full_obj.max()) + 1
    expect = np.array([RAW_TO_NYU40[room.objects[k].raw_category] for k in seen_ids])[obj]
    np.testing.assert_array_equal(nyu, expect)
    np.testing.assert_array_equal(inst, obj + 1)  # aggregation objectId + 1
    np.testing.assert_array_equal(read_segs(sc.segs_path), seg)
    labels = {lab for _, lab, _ in read_aggregation(sc.aggregation_path)}
    assert {"wall", "floor"} <= labels <= {o.raw_category for o in room.objects}  # 6 frames need not see the door
    assert find_scenes(os.path.dirname(scene_dir)) == [scene_dir]
    # no wall exteriors (at 0.1 m outside the interior [0, W] x [0, D]) and no floor underside (z = -0.05): only
    # interior faces, whose grid cells (<= 0.1 m) may reach a little into the wall boxes
    W, D, H = room.size
    x, y, z = mesh.vertices.T
    assert x.min() > -0.099 and x.max() < W + 0.099 and y.min() > -0.099 and y.max() < D + 0.099
    assert z.min() > -0.049


def test_frames_match_rendering(scene_dir):
    sc = ScanNetScene(scene_dir)
    room = make_room(3000, "bedroom")
    v, f, c, _, _ = room.mesh()
    K = default_intrinsic(64, 48)
    poses = room_trajectory(room.size, 6, 3000 + 7)
    np.testing.assert_allclose(sc.intrinsic, K, atol=1e-5)
    r = MeshRenderer(v, f, c[f[:, 0]])
    for k in (0, 5):
        depth, color, pose = sc.frame(k)
        np.testing.assert_allclose(pose, poses[k], atol=1e-6)
        d_ref, c_ref, _ = r.render(K, poses[k].astype(np.float32).astype(np.float64), 64, 48)
        np.testing.assert_allclose(depth, np.round(d_ref * 1000) / 1000, atol=1e-6)  # millimetre storage
        assert np.abs(color.astype(int) - c_ref).mean() < 8  # jpeg


def test_depth_is_z_depth_of_the_mesh():
    # a wall at x = 2 seen by a camera at the origin looking along +x: depth == 2 at every pixel
    v = np.array([[2, -5, -5], [2, 5, -5], [2, 5, 5], [2, -5, 5]], float)
    f = np.array([[0, 1, 2], [0, 2, 3]])
    from data_tools.synthetic.render import look_at_pose
    pose = look_at_pose(np.zeros(3), 0.0, 0.0)
    d, _, tri = MeshRenderer(v, f, np.full((2, 3), 100, np.uint8)).render(default_intrinsic(32, 24), pose, 32, 24)
    np.testing.assert_allclose(d, 2.0, atol=1e-5)
    assert (tri >= 0).all()


def test_deterministic_and_seeded():
    a, b, c = make_room(5), make_room(5), make_room(6)
    np.testing.assert_array_equal(a.mesh()[0], b.mesh()[0])
    assert a.mesh()[0].shape != c.mesh()[0].shape or not np.array_equal(a.mesh()[0], c.mesh()[0])
    nyu = {RAW_TO_NYU40[o.raw_category] for s in range(10) for o in make_room(s, ROOM_TYPES[s % 5]).objects}
    assert {7, 5, 4, 6, 3, 14, 10} <= nyu  # table, chair, bed, sofa, cabinet, desk, bookshelf


def test_categories_are_real_scannet_raw_categories():
    lm = LabelMap.from_tsv(shared_path("scannet", "scannetv2-labels.combined.tsv"))
    for raw, nyu in RAW_TO_NYU40.items():
        assert raw in lm.rows, raw
        assert lm.nyu40(raw) == nyu, raw

"""ScanNet PLY meshes, segs / aggregation json and the label tsv."""
import json

import numpy as np
import pytest

from _data_helpers import shared_path
from data_tools.scannet.labels import (IGNORE, SCANNET20_NYU40_IDS, LabelMap, nyu40_to_scannet20, read_aggregation,
                                       read_segs, vertex_instances_and_labels)
from data_tools.scannet.ply import PlyFormatError, read_ply, write_ply


def _mesh(seed=0):
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(20, 3)).astype(np.float32)
    f = rng.integers(0, 20, (30, 3)).astype(np.int32)
    c = rng.integers(0, 256, (20, 4)).astype(np.uint8)
    return v, f, c


def test_ply_round_trip_and_header(tmp_path):
    v, f, c = _mesh()
    lab = np.arange(20, dtype=np.uint16) * 2
    write_ply(tmp_path / "m_vh_clean_2.labels.ply", v, f, c, lab)
    m = read_ply(tmp_path / "m_vh_clean_2.labels.ply")
    np.testing.assert_array_equal(m.vertices, v)
    np.testing.assert_array_equal(m.faces, f)
    np.testing.assert_array_equal(m.colors, c)
    np.testing.assert_array_equal(m.labels, lab)
    head = (tmp_path / "m_vh_clean_2.labels.ply").read_bytes().split(b"end_header")[0].decode()
    assert "format binary_little_endian 1.0" in head and "property ushort label" in head
    assert "property list uchar int vertex_indices" in head and "property uchar alpha" in head
    write_ply(tmp_path / "plain.ply", v, f, c[:, :3])
    m2 = read_ply(tmp_path / "plain.ply")
    assert m2.labels is None and (m2.colors[:, 3] == 255).all()


def test_ply_readable_by_trimesh_and_open3d(tmp_path):
    import open3d as o3d
    import trimesh
    v, f, c = _mesh(1)
    write_ply(tmp_path / "a.ply", v, f, c)
    t = trimesh.load(tmp_path / "a.ply", process=False)
    np.testing.assert_allclose(t.vertices, v, atol=1e-6)
    np.testing.assert_array_equal(t.faces, f)
    o = o3d.io.read_triangle_mesh(str(tmp_path / "a.ply"))
    np.testing.assert_array_equal(np.asarray(o.triangles), f)


def test_ply_corrupt(tmp_path):
    v, f, c = _mesh()
    write_ply(tmp_path / "a.ply", v, f, c)
    data = (tmp_path / "a.ply").read_bytes()
    (tmp_path / "cut.ply").write_bytes(data[:len(data) // 3])
    with pytest.raises(PlyFormatError, match=r"cut\.ply: truncated"):
        read_ply(tmp_path / "cut.ply")
    (tmp_path / "no.ply").write_bytes(b"hello")
    with pytest.raises(PlyFormatError, match=r"no\.ply: not a PLY"):
        read_ply(tmp_path / "no.ply")
    with pytest.raises(ValueError, match=r"faces: expected \[M,3\]"):
        write_ply(tmp_path / "x.ply", v, f[:, :2])


def test_segs_aggregation_to_vertices(tmp_path):
    segs = np.array([5, 5, 7, 7, 9, 11, 11, 5])
    (tmp_path / "s.segs.json").write_text(json.dumps({"sceneId": "x", "segIndices": segs.tolist()}))
    agg = {"sceneId": "scannet.x", "segGroups": [
        {"id": 0, "objectId": 0, "segments": [5, 9], "label": "office chair"},
        {"id": 1, "objectId": 1, "segments": [11], "label": "kitchen cabinets"},
        {"id": 2, "objectId": 2, "segments": [999], "label": "not a category"}]}
    (tmp_path / "a.json").write_text(json.dumps(agg))
    lm = LabelMap({"office chair": {"raw_category": "office chair", "nyu40id": "5", "nyu40class": "chair"},
                   "kitchen cabinets": {"raw_category": "kitchen cabinets", "nyu40id": "3", "nyu40class": "cabinet"}})
    inst, nyu, names = vertex_instances_and_labels(read_segs(tmp_path / "s.segs.json"),
                                                  read_aggregation(tmp_path / "a.json"), lm)
    np.testing.assert_array_equal(inst, [1, 1, 0, 0, 1, 2, 2, 1])
    np.testing.assert_array_equal(nyu, [5, 5, 0, 0, 5, 3, 3, 5])
    assert names == ["office chair", "kitchen cabinets", "not a category"]
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match=r"bad\.json: not a ScanNet segs json"):
        read_segs(tmp_path / "bad.json")


def test_real_label_tsv():
    lm = LabelMap.from_tsv(shared_path("scannet", "scannetv2-labels.combined.tsv"))
    assert lm.nyu40("office chair") == 5 and lm.nyu40class("office chair") == "chair"
    assert lm.nyu40("kitchen cabinets") == 3 and lm.nyu40("couch") == 6 and lm.nyu40("nightstand") == 32
    assert lm.scannet20("wall") == 0 and lm.scannet20("couch") == 5 and lm.scannet20("nightstand") == IGNORE
    assert lm.nyu40("no such thing") == 0


def test_scannet20_mapping():
    s = nyu40_to_scannet20(np.array([0, 1, 2, 39, 40, 13, 33]))
    np.testing.assert_array_equal(s, [IGNORE, 0, 1, 19, IGNORE, IGNORE, 16])
    assert len(SCANNET20_NYU40_IDS) == 20

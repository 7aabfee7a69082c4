"""Synthetic room types holding all 20 ScanNet benchmark classes, their dense meshes, and the segmentation
recipe that carries their labels into whole-scene crops."""
import os

import numpy as np
import pytest

from _data_helpers import native_or_skip, shared_path
from data_tools import build_crops, load_crop, load_manifest, preprocess, recipe_config
from data_tools.config import CropConfig
from data_tools.scannet import LabelMap, ScanNetScene
from data_tools.scannet.labels import SCANNET20_NAMES, nyu40_to_scannet20
from data_tools.synthetic import MAX_EDGE, RAW_TO_NYU40, ROOM_TYPES, generate_scene, generate_scenes, make_room
from data_tools.synthetic.colors import CLASS_MATERIALS
from data_tools.synthetic.mesh_grid import box_grid_mesh, edge_lengths
from data_tools.synthetic.writer import scene_room_type

WALL_MOUNTED = {8: "door", 9: "window", 11: "picture", 16: "curtain", 28: "shower curtain"}


@pytest.fixture(scope="module")
def rooms():
    """Two rooms of every type: {room_type: [Room, Room]}."""
    return {rt: [make_room(s, rt) for s in (0, 1)] for rt in ROOM_TYPES}


def _scannet20(room) -> set:
    nyu = np.array([RAW_TO_NYU40[o.raw_category] for o in room.objects])
    return set(nyu40_to_scannet20(nyu).tolist()) - {255}


def test_every_class_appears_across_the_room_types(rooms):
    seen = set().union(*(_scannet20(r) for rs in rooms.values() for r in rs))
    assert seen == set(range(20)), [SCANNET20_NAMES[i] for i in sorted(set(range(20)) - seen)]
    names = lambda r: {SCANNET20_NAMES[i] for i in _scannet20(r)}  # noqa: E731
    for rt, must in {"bedroom": {"bed"}, "living room": {"sofa"}, "kitchen": {"counter", "sink", "cabinet"},
                     "bathroom": {"toilet", "sink"}}.items():
        for r in rooms[rt]:
            assert r.room_type == rt and must <= names(r), (rt, names(r))
    for rs in rooms.values():
        for r in rs:
            assert {"wall", "floor", "door"} <= names(r)


def test_raw_categories_map_through_the_real_tsv(rooms):
    used = {o.raw_category for rs in rooms.values() for r in rs for o in r.objects}
    assert used <= set(RAW_TO_NYU40), used - set(RAW_TO_NYU40)
    lm = LabelMap.from_tsv(shared_path("scannet", "scannetv2-labels.combined.tsv"))
    for raw, nyu in RAW_TO_NYU40.items():
        assert raw in lm.rows, raw
        assert lm.nyu40(raw) == nyu, (raw, lm.nyu40(raw), nyu)


def test_mesh_edges_are_bounded_and_boxes_closed(rooms):
    for rs in rooms.values():
        v, f, c, obj, seg = rs[0].mesh()
        assert edge_lengths(v, f).max() <= MAX_EDGE + 1e-6
        assert len(v) > 15000 and c.dtype == np.uint8 and seg.max() + 1 == len(np.unique(seg))
    v, f, _, _, _ = make_room(0, "bathroom", max_edge=0.25).mesh()
    assert edge_lengths(v, f).max() <= 0.25 + 1e-6 and len(v) < len(rooms["bathroom"][0].mesh()[0])
    # one box: a closed, outward, welded surface of the right area
    bv, bf, part = box_grid_mesh([[1.0, 2.0, 3.0]], [[0.5, 0.3, 0.02]], 0.1)
    edges = np.sort(np.concatenate([bf[:, [0, 1]], bf[:, [1, 2]], bf[:, [2, 0]]]), 1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert (counts == 2).all() and (part == 0).all()
    tri = bv[bf]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    assert np.isclose(0.5 * np.linalg.norm(cross, axis=1).sum(), 2 * (0.5 * 0.3 + 0.5 * 0.02 + 0.3 * 0.02))
    assert (np.sum(cross * (tri.mean(1) - [1.0, 2.0, 3.0]), 1) > 0).all()
    with pytest.raises(ValueError, match="max_edge"):
        box_grid_mesh([[0, 0, 0]], [[1, 1, 1]], 0.0)


def test_deterministic_in_the_seed():
    a, b = make_room(11, "office"), make_room(11, "office")
    for x, y in zip(a.mesh(), b.mesh()):
        np.testing.assert_array_equal(x, y)
    assert [o.raw_category for o in a.objects] == [o.raw_category for o in b.objects]
    c = make_room(12, "office")
    assert a.size != c.size
    r = make_room(11)  # type drawn from the seed, deterministically
    assert r.room_type in ROOM_TYPES and r.room_type == make_room(11).room_type
    with pytest.raises(ValueError, match="room_type"):
        make_room(0, "garage")
    with pytest.raises(TypeError, match="seed"):
        make_room(1.5)


def _extent(o) -> np.ndarray:
    """Sorted horizontal extents and the height of an object."""
    e = o.vertices.max(0) - o.vertices.min(0)
    return np.array(sorted(e[:2]) + [e[2]])


def test_instances_vary_in_size_and_proportions(rooms):
    chairs = [o for rs in rooms.values() for r in rs for o in r.objects if RAW_TO_NYU40[o.raw_category] == 5]
    tables = [o for rs in rooms.values() for r in rs for o in r.objects if RAW_TO_NYU40[o.raw_category] == 7]
    for objs in (chairs, tables):
        assert len(objs) >= 3
        ext = np.stack([_extent(o) for o in objs])
        prop = ext / ext[:, :1]  # proportions relative to the smallest side: not a global scale
        assert np.ptp(ext, 0).min() > 0.03 and np.ptp(prop, 0).max() > 0.1
    # colours: per instance, not per class
    means = {tuple(np.round(o.colors.mean(0))) for o in chairs}
    assert len(means) >= len(chairs) // 2 + 1
    shared = [m for m in ("white", "wood", "grey") if sum(m in v[0] for v in CLASS_MATERIALS.values()) >= 4]
    assert shared == ["white", "wood", "grey"]  # distributions overlap between classes


def test_wall_mounted_classes_lie_flat_against_walls(rooms):
    n = 0
    for rs in rooms.values():
        for r in rs:
            W, D, _ = r.size
            for o in r.objects:
                nyu = RAW_TO_NYU40[o.raw_category]
                if nyu not in WALL_MOUNTED:
                    continue
                v = o.vertices
                # distance of the object's far side from its nearest wall plane
                far = min(v[:, 0].max(), v[:, 1].max(), W - v[:, 0].min(), D - v[:, 1].min())
                assert far <= (0.15 if nyu in (16, 28) else 0.08), (o.raw_category, far)
                n += 1
    assert n >= 20


def test_placements_are_collision_free(rooms):
    for rs in rooms.values():
        for r in rs:
            W, D, _ = r.size
            b = np.stack(r.boxes)
            for i in range(len(b)):
                for j in range(i + 1, len(b)):
                    assert not (np.all(b[i, 0] < b[j, 1]) and np.all(b[j, 0] < b[i, 1])), (r.room_type, i, j)
            for o in r.objects:
                v = o.vertices
                if o.group >= 0:
                    assert (v.min(0) >= b[o.group, 0] - 1e-9).all() and (v.max(0) <= b[o.group, 1] + 1e-9).all()
                    assert v[:, 0].min() > -0.07 and v[:, 1].min() > -0.07
                    assert v[:, 0].max() < W + 0.07 and v[:, 1].max() < D + 0.07 and v[:, 2].min() > -1e-9


def test_generate_scenes_rotates_room_types(tmp_path):
    assert [scene_room_type(k) for k in range(6)] == list(ROOM_TYPES) + ["bedroom"]
    assert scene_room_type(3, ["office", "bathroom"]) == "bathroom"
    with pytest.raises(ValueError, match="room_types"):
        scene_room_type(0, ["garage"])
    dirs = generate_scenes(tmp_path / "a", 2, seed=4, n_frames=2, width=32, height=24, first_index=3)
    for d, rt in zip(dirs, ("kitchen", "bathroom")):
        meta = open(os.path.join(d, os.path.basename(d) + ".txt")).read()
        assert f"roomType = {rt}\n" in meta
    # same bytes from a second run: deterministic in the seed
    again = generate_scene(tmp_path / "b", "scene0003_00", 4000, 2, 32, 24, room_type="kitchen")
    for suf in ("_vh_clean_2.ply", "_vh_clean_2.labels.ply", ".aggregation.json", "_vh_clean_2.0.010000.segs.json",
                ".sens"):
        name = "scene0003_00" + suf
        assert open(os.path.join(dirs[0], name), "rb").read() == open(os.path.join(again, name), "rb").read(), suf


# ----------------------------------------------------------------------------------------- segmentation recipe


def test_segmentation_recipe_config():
    cfg = recipe_config("segmentation")
    assert (cfg.voxel_size, cfg.trunc_voxels, cfg.n_levels) == (0.05, 3.0, 1)
    assert (cfg.input_frames, cfg.known, cfg.placement, cfg.recipe) == ("all", "visibility", "whole", "segmentation")
    g = recipe_config("segmentation", placement="grid")
    assert g.crop_size == (32, 32, 64) and g.crop_stride == (16, 16, 32)
    with pytest.raises(ValueError, match="drop_prob"):
        recipe_config("segmentation", drop_prob=0.3)  # input_frames="all" reads no drop settings
    with pytest.raises(ValueError, match="input_frames"):
        CropConfig(input_frames="most").validate()
    from data_tools.cli import config_from_args, main
    import argparse
    ns = argparse.Namespace(recipe="segmentation", align_up=False, placement="grid")
    assert config_from_args(ns).crop_stride == (16, 16, 32)
    with pytest.raises(SystemExit) as e:
        main(["preprocess", "x", "y", "--recipe", "nope"])
    assert e.value.code == 2


@pytest.fixture(scope="module")
def seg_data(tmp_path_factory):
    native_or_skip()
    root = tmp_path_factory.mktemp("seg")
    generate_scenes(root / "scans", 5, seed=2, n_frames=40, width=128, height=96)
    s = preprocess(root / "scans", root / "crops", recipe_config("segmentation"), progress=False, val_fraction=0.0)
    assert s["failed"] == {} and len(s["done"]) == 5
    return root


def test_labels_reach_whole_scene_crops(seg_data):
    out = seg_data / "crops"
    man = load_manifest(out)
    assert man["recipe"] == "segmentation" and man["n_levels"] == 1
    seen = set()
    for sid, sc in man["scenes"].items():
        assert len(sc["crops"]) == 1 and sc["input_frames"] == sc["target_frames"]
        c = load_crop(os.path.join(out, sc["crops"][0]))
        np.testing.assert_array_equal(c["input_coords"], c["target_coords"])  # input == target: the whole scan
        np.testing.assert_allclose(c["input_tsdf"], c["target_tsdf"])
        assert not any(k.endswith("_l1") for k in c) and int(c["n_levels"]) == 1
        assert (c["input_known"] == c["target_known"]).all() and c["input_color"].dtype == np.uint8
        lab, surf = c["target_scannet20"], np.abs(c["target_tsdf"]) < 1.0
        assert (lab[surf] == 255).mean() < 0.1, sid  # almost every surface voxel carries one of the 20 classes
        seen |= set(np.unique(lab).tolist()) - {255}
    assert len(seen) >= 15, sorted(SCANNET20_NAMES[i] for i in seen)


def test_segmentation_grid_placement_and_cli(seg_data, tmp_path):
    scene = str(seg_data / "scans" / "scene0000_00")
    crops = []
    rec = build_crops(ScanNetScene(scene), "scene0000_00", recipe_config("segmentation", placement="grid"),
                      None, lambda n, c: crops.append(c))
    assert rec["recipe"] == "segmentation" and len(crops) >= 2
    for c in crops:
        assert tuple(c["crop_size"]) == (32, 32, 64)
        np.testing.assert_array_equal(c["input_coords"], c["target_coords"])
    from data_tools.cli import main
    assert main(["preprocess", scene, str(tmp_path / "cli"), "--recipe", "segmentation", "--quiet"]) == 0
    man = load_manifest(tmp_path / "cli")
    assert man["recipe"] == "segmentation" and list(man["scenes"]) == ["scene0000_00"]

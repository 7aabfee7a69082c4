"""End to end: synthetic ScanNet scene -> preprocess -> crops; resume; corrupt files; CLI."""
import json
import os
import shutil

import numpy as np
import pytest

from _data_helpers import native_or_skip, shared_path
from data_tools import CropConfig, generate_scenes, load_crop, load_manifest, preprocess
from data_tools.hierarchy import downsample_level
from data_tools.chunks import FORMAT_VERSION
from data_tools.frames import input_frame_mask

CFG = dict(voxel_size=0.08, trunc_voxels=3.0, crop_size=(16, 16, 32), crop_stride=(16, 16, 32), n_levels=3,
           drop_prob=0.5, drop_chunk=5, min_target_voxels=50, min_input_voxels=10)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    native_or_skip()
    root = tmp_path_factory.mktemp("scannet")
    generate_scenes(root, 2, seed=1, n_frames=30, width=80, height=60)
    return root


@pytest.fixture(scope="module")
def dataset(scenes, tmp_path_factory):
    out = tmp_path_factory.mktemp("ds")
    s = preprocess(scenes, out, CropConfig(**CFG), progress=False, val_fraction=0.5)
    assert s["failed"] == {} and s["done"] == ["scene0000_00", "scene0001_00"]
    return out


def test_manifest_and_crop_format(dataset):
    man = load_manifest(dataset)
    assert man["format"] == "sparse3d.crops" and man["version"] == FORMAT_VERSION and man["known"] == "visibility"
    assert man["crop_size"] == [16, 16, 32] and man["n_levels"] == 3
    files = [f for fs in man["splits"].values() for f in fs]
    assert len(files) >= 2 and set(man["scenes"]) == {"scene0000_00", "scene0001_00"}
    for f in files:
        c = load_crop(os.path.join(dataset, f))
        size = tuple(c["crop_size"])
        assert size == (16, 16, 32) and c["scene_id"] == f.split("/")[0]
        for k in ("input_coords", "target_coords"):
            assert c[k].dtype == np.int32 and c[k].shape[1] == 3
            assert (c[k] >= 0).all() and (c[k] < np.array(size)).all()
        assert np.abs(c["input_tsdf"]).max() < 3.0 and np.abs(c["target_tsdf"]).max() < 3.0
        assert c["input_color"].dtype == np.uint8 and (c["input_weight"] > 0).all()
        assert c["input_known"].shape == size and c["target_known"].dtype == bool
        # every target voxel was seen; the input sees a subset of what the target sees
        assert c["target_known"][tuple(c["target_coords"].T)].all()
        assert c["input_known"][tuple(c["input_coords"].T)].all()
        assert not (c["input_known"] & ~c["target_known"]).any()
        assert c["has_labels"] and set(np.unique(c["target_scannet20"])) <= set(range(20)) | {255}
        for l in (1, 2):
            ref = downsample_level(c["target_coords"], c["target_tsdf"], c["target_scannet20"], 2 ** l)
            np.testing.assert_array_equal(c[f"target_coords_l{l}"], ref[0])
            np.testing.assert_array_equal(c[f"target_tsdf_l{l}"], ref[1])
            assert (c[f"target_coords_l{l}"] < np.array(size) // 2 ** l).all()


def test_target_equals_direct_fusion_and_labels(scenes, dataset):
    from data_tools.fusion import TSDFFusion
    from data_tools.scannet import ScanNetScene
    sc = ScanNetScene(os.path.join(scenes, "scene0000_00"))
    fu = TSDFFusion(0.08, 3.0, depth_max=5.0, with_color=False)
    for k in range(len(sc)):
        d, _, p = sc.frame(k, with_color=False)
        fu.integrate(d, None, sc.intrinsic, p)
    g = fu.extract(band_only=True)
    ref = {tuple(c): t for c, t in zip(g.coords, g.tsdf)}
    man = load_manifest(dataset)
    n_floor = n_low = 0
    for f in man["scenes"]["scene0000_00"]["crops"]:
        c = load_crop(os.path.join(dataset, f))
        glob = c["target_coords"] + c["crop_origin"]
        np.testing.assert_allclose(c["target_tsdf"], [ref[tuple(x)] for x in glob], atol=1e-6)
        low = glob[:, 2] == 0  # voxels at floor height (z = 0)
        n_low += low.sum()
        n_floor += (c["target_nyu40"][low] == 2).sum()
    assert n_low > 0 and n_floor / n_low > 0.8


def test_input_is_a_partial_scan(dataset):
    rec = json.load(open(os.path.join(dataset, "scene0000_00", "_scene.json")))
    assert 0 < rec["n_input_frames"] < rec["n_frames"] == 30
    assert rec["n_input_voxels"] < rec["n_target_voxels"]
    keep = input_frame_mask(30, 0.5, 0, "scene0000_00", 5)
    assert keep.sum() == rec["n_input_frames"]
    assert all(len(set(keep[i:i + 5])) == 1 for i in range(0, 30, 5))  # dropped in runs


def test_resume_skips_done_scenes(scenes, dataset):
    crop = os.path.join(dataset, load_manifest(dataset)["scenes"]["scene0000_00"]["crops"][0])
    t = os.path.getmtime(crop)
    s = preprocess(scenes, dataset, CropConfig(**CFG), progress=False, val_fraction=0.5)
    assert s["done"] == [] and sorted(s["skipped"]) == ["scene0000_00", "scene0001_00"]
    assert os.path.getmtime(crop) == t


def _root_with_second_scene_as(scenes, tmp_path, name):
    """A ScanNet root with scene0000_00 and a copy of scene0001_00 renamed ``name``; -> (root, that scene's dir)."""
    root = tmp_path / "root"
    shutil.copytree(os.path.join(scenes, "scene0000_00"), root / "scene0000_00")
    bad = root / name
    shutil.copytree(os.path.join(scenes, "scene0001_00"), bad)
    for p in bad.iterdir():
        p.rename(bad / p.name.replace("scene0001_00", name))
    return root, bad


def test_corrupt_scene_is_reported_and_run_goes_on(scenes, tmp_path, capsys):
    from data_tools.cli import main
    root, bad = _root_with_second_scene_as(scenes, tmp_path, "scene0007_00")
    sens = bad / "scene0007_00.sens"
    sens.write_bytes(sens.read_bytes()[:sens.stat().st_size // 2])
    code = main(["preprocess", str(root), str(tmp_path / "out"), "--voxel-size", "0.08", "--crop-size", "16,16,32",
                 "--min-target-voxels", "50", "--workers", "2", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert "scene0007_00.sens: frame" in err and "truncated" in err
    man = load_manifest(tmp_path / "out")
    assert list(man["scenes"]) == ["scene0000_00"] and "scene0007_00" in man["failed"]


def test_bad_config_raises():
    with pytest.raises(ValueError, match=r"crop_size: expected positive multiples of 2\*\*\(n_levels-1\) = 4"):
        CropConfig(crop_size=(30, 32, 32)).validate()
    with pytest.raises(ValueError, match="drop_prob"):
        CropConfig(drop_prob=1.0).validate()


def test_cli_register_hook_adds_commands():
    import argparse
    from data_tools.cli import register
    p = argparse.ArgumentParser(prog="sparse3d")
    register(p.add_subparsers(dest="command", required=True))
    a = p.parse_args(["preprocess", "in", "out", "--workers", "2", "--crop-size", "64,64,128"])
    assert a.workers == 2 and a.crop_size == (64, 64, 128) and callable(a.func)
    g = p.parse_args(["generate", "o", "--n-scenes", "3"])
    assert g.n_scenes == 3 and g.frames == 100


def test_load_crop_bad_file_names_it(tmp_path):
    p = tmp_path / "crop_0_0_0.npz"
    p.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"crop_0_0_0\.npz: cannot read crop npz"):
        load_crop(p)
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match=r"other\.npz: not a sparse3d crop \(missing key 'crop_size'; found keys \['a'\]\)"):
        load_crop(tmp_path / "other.npz")


def _run_one_or_die(src, out, cfg, threads, label_tsv=None):
    """Worker stand-in (runs in a spawned worker): scene0007_00 kills its process, as the OOM killer would."""
    if src.scene_id == "scene0007_00":
        os._exit(9)
    from data_tools.pipeline import _run_one
    return _run_one(src, out, cfg, threads, label_tsv)


def test_killed_worker_fails_unfinished_scenes_with_a_summary(scenes, tmp_path, monkeypatch, capsys):
    import data_tools.pipeline as pipeline
    from data_tools.cli import main
    root, bad = _root_with_second_scene_as(scenes, tmp_path, "scene0007_00")
    monkeypatch.setattr(pipeline, "_run_one", _run_one_or_die)
    code = main(["preprocess", str(root), str(tmp_path / "out"), "--voxel-size", "0.08", "--crop-size", "16,16,32",
                 "--min-target-voxels", "50", "--workers", "2", "--quiet"])
    cap = capsys.readouterr()
    assert code == 1
    assert "failed in" in cap.out and "failed scenes:" in cap.err
    man = load_manifest(tmp_path / "out")
    assert "scene0007_00" in man["failed"] and "worker process died" in man["failed"]["scene0007_00"]
    assert "BrokenProcessPool" in man["failed"]["scene0007_00"]
    # every scene is accounted for: done (in the manifest) or failed with the reason
    assert set(man["scenes"]) | set(man["failed"]) == {"scene0000_00", "scene0007_00"}
    assert not set(man["scenes"]) & set(man["failed"])
    assert all("worker process died" in msg for msg in man["failed"].values())


@pytest.mark.parametrize("flag,value,msg", [("--workers", "0", "expected an integer >= 1, got 0"),
                                            ("--workers", "-2", "expected an integer >= 1, got -2"),
                                            ("--val-fraction", "1.0", "expected a number in [0, 1), got 1.0"),
                                            ("--val-fraction", "-0.1", "expected a number in [0, 1), got -0.1")])
def test_cli_rejects_bad_workers_and_val_fraction(flag, value, msg, capsys):
    from data_tools.cli import main
    with pytest.raises(SystemExit) as e:
        main(["preprocess", "in", "out", flag, value])
    assert e.value.code == 2
    assert f"argument {flag}: {msg}" in capsys.readouterr().err


def test_unknown_scene_ids_raise(scenes, tmp_path):
    with pytest.raises(ValueError, match=r"scenes: \['scene0099_00', 'scenex'\] not found under"):
        preprocess(scenes, tmp_path / "o", CropConfig(**CFG), scenes=["scene0000_00", "scenex", "scene0099_00"],
                   progress=False)
    with pytest.raises(ValueError, match=r"val_fraction: expected a number in \[0, 1\), got 1\.5"):
        preprocess(scenes, tmp_path / "o", CropConfig(**CFG), val_fraction=1.5, progress=False)


def test_labels_come_from_labels_ply_or_aggregation_and_tsv_never_silent_zeros(scenes, tmp_path):
    """Without .labels.ply a scene is labelled from aggregation + segs through the tsv; with no label
    source at all it is marked unlabelled (has_labels False) instead of getting all-zero labels."""
    from data_tools.chunks import load_crop
    from data_tools.pipeline import preprocess
    from data_tools.scene_crops import CropConfig
    tsv = shared_path("scannet", "scannetv2-labels.combined.tsv")
    cfg = CropConfig(voxel_size=0.08, crop_size=(16, 16, 32), min_target_voxels=50)
    runs = {}
    for name, with_tsv in (("tsv", True), ("none", False)):
        root, scene = _root_with_second_scene_as(scenes, tmp_path / name, "scene0009_00")
        (scene / "scene0009_00_vh_clean_2.labels.ply").unlink()
        s = preprocess(root, tmp_path / name / "out", cfg, scenes=["scene0009_00"], progress=False,
                       label_tsv=tsv if with_tsv else None)
        assert s["done"] == ["scene0009_00"], s
        crops = sorted((tmp_path / name / "out" / "scene0009_00").glob("crop_*.npz"))
        assert crops
        runs[name] = [load_crop(str(c)) for c in crops]
    assert all(bool(c["has_labels"]) for c in runs["tsv"])
    assert max(int(c["target_nyu40"].max()) for c in runs["tsv"]) > 0  # real nyu40 ids from the aggregation
    assert not any(bool(c["has_labels"]) for c in runs["none"])

"""The completion recipe of data_tools (sparse3d.crops format) reproduces the dense completion samples
that `sparse3d demo` trained and evaluated on before issue 18 (sparse3d/data/completion_prep.py:
`scan_sample` + `random_crops`, stored as float16 dense volumes). `_dense_reference` below is that
pipeline, kept verbatim in substance as the ground truth."""
import json
import os

import numpy as np
import pytest

from _data_helpers import native_or_skip
from data_tools import build_crops, dense_volumes, generate_scenes, load_crop, load_manifest, preprocess, recipe_config
from data_tools.chunks import FORMAT_VERSION, save_crop
from data_tools.frames import FrameSource, frame_subset, scene_seed
from data_tools.scannet import RGBDFolder, ScanNetScene

SID = "scene0000_00"


# ---- the dense pipeline before issue 18 (reference) -------------------------------------------------
def _reference_fuse(frames, indices, voxel_size, trunc, depth_max):
    from data_tools.fusion import fuse_frames
    g = fuse_frames(frames, indices, voxel_size=voxel_size, trunc_voxels=trunc, depth_max=depth_max, with_color=False)
    return g.coords.astype(np.int64), g.tsdf.astype(np.float32), g.weight


def _dense_reference(frames, voxel_size, trunc, fraction, segments, seed, depth_max=5.0, pad_to=8):
    """(input_tsdf, input_known, target_tsdf, target_known, origin) of the old scan_sample."""
    n = len(frames)
    tidx = list(range(n))
    idx = [tidx[i] for i in frame_subset(n, fraction, segments, seed)]
    tc, tt, tw = _reference_fuse(frames, tidx, voxel_size, trunc, depth_max)
    ic, it, iw = _reference_fuse(frames, idx, voxel_size, trunc, depth_max)
    lo = tc.min(0) - 2
    shape = tc.max(0) - lo + 3
    shape = ((shape + pad_to - 1) // pad_to) * pad_to

    def dense(c, t, w):
        vol = np.zeros(shape, np.float32)
        known = np.zeros(shape, bool)
        r = c - lo
        ok = ((r >= 0) & (r < shape)).all(1) & (w > 0)
        vol[tuple(r[ok].T)] = np.clip(t[ok], -trunc, trunc)
        known[tuple(r[ok].T)] = True
        return vol, known

    return (*dense(ic, it, iw), *dense(tc, tt, tw), lo)


def _reference_random_crops(vols, size, n, seed, min_surface=50, tries=20):
    """[(origin, (input_tsdf, input_known, target_tsdf, target_known))] of the old random_crops."""
    arrs, origin = list(vols[:4]), vols[4]
    if any(d < size for d in arrs[0].shape):
        pad = [(0, max(0, size - d)) for d in arrs[0].shape]
        arrs = [np.pad(a, pad) for a in arrs]
    surf = arrs[3] & (np.abs(arrs[2]) < 1.0)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n * tries):
        if len(out) == n:
            break
        lo = [int(rng.integers(0, d - size + 1)) for d in arrs[0].shape]
        sl = tuple(slice(a, a + size) for a in lo)
        if surf[sl].sum() >= min_surface:
            out.append((origin + np.asarray(lo), [a[sl] for a in arrs]))
    return out
# -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    native_or_skip()
    root = tmp_path_factory.mktemp("scannet")
    return generate_scenes(root, 1, seed=2, n_frames=40, width=96, height=72)[0]


def _roundtrip(tmp_path, name, crop):
    p = os.path.join(tmp_path, name)
    save_crop(p, crop)
    return load_crop(p)


def _assert_same(got, want, trunc=3.0):
    """got: dense_volumes of a crop; want: reference arrays. Known masks exact; tsdf equal after the old
    format's float16 rounding, and within 1e-5 voxels in float32 (clipped values: 2.999997 vs 3)."""
    names = ("input_tsdf", "input_known", "target_tsdf", "target_known")
    for name, g, w in zip(names, got, want):
        assert g.shape == w.shape, name
        if name.endswith("known"):
            np.testing.assert_array_equal(g, w, err_msg=name)
        else:
            np.testing.assert_array_equal(g.astype(np.float16), w.astype(np.float16), err_msg=name)
            np.testing.assert_allclose(g, w, atol=1e-5, rtol=0, err_msg=name)


def test_random_crops_equal_the_dense_pipeline(scene_dir, tmp_path):
    frames = ScanNetScene(scene_dir)
    seed = scene_seed(0, SID)
    cfg = recipe_config("completion", crops_per_scene=5, min_surface=30)
    crops = []
    rec = build_crops(frames, SID, cfg, None, lambda n, c: crops.append((n, c)))
    ref = _reference_random_crops(_dense_reference(frames, 0.05, 3.0, 0.3, 6, seed), 32, 5, seed, min_surface=30)
    frames.close()
    assert len(ref) == 5 and len(crops) == 5
    assert rec["known"] == "fused" and rec["input_frames"] == frame_subset(40, 0.3, 6, seed)
    assert rec["target_frames"] == list(range(40))
    from sparse3d.tasks.completion.dataset import load_data_tools_crop  # the completion task's one loader
    for (name, c), (origin, want) in zip(crops, ref):
        loaded = _roundtrip(tmp_path, name, c)
        assert loaded["known_semantics"] == "fused" and int(loaded["format_version"]) == FORMAT_VERSION
        sample = load_data_tools_crop(os.path.join(tmp_path, name))
        np.testing.assert_array_equal(sample.origin, origin)
        assert sample.voxel_size == pytest.approx(0.05) and sample.trunc == 3.0
        _assert_same((sample.input_tsdf, sample.input_known, sample.target_tsdf, sample.target_known), want)


def test_whole_scene_crop_equals_the_dense_pipeline_including_clipped_signs(scene_dir, tmp_path):
    frames = ScanNetScene(scene_dir)
    seed = scene_seed(7, SID)
    cfg = recipe_config("completion", placement="whole", seed=7)
    crops = []
    rec = build_crops(frames, SID, cfg, None, lambda n, c: crops.append((n, c)))
    want = _dense_reference(frames, 0.05, 3.0, 0.3, 6, seed)
    frames.close()
    assert len(crops) == 1
    loaded = _roundtrip(tmp_path, *crops[0])
    np.testing.assert_array_equal(loaded["crop_origin"], want[4])
    np.testing.assert_array_equal(rec["grid_origin"], want[4])
    got = dense_volumes(loaded)
    _assert_same(got, want[:4])
    # the clipped values outside the band keep their sign: both signs occur and match
    for g, w, k in ((got[0], want[0], want[1]), (got[2], want[2], want[3])):
        outside = k & (np.abs(w) >= 2.999)
        assert (w[outside] > 0).any() and (w[outside] < 0).any()
        np.testing.assert_array_equal(np.sign(g[outside]), np.sign(w[outside]))


def test_dense_volumes_signs_outside_band():
    """A hand-made crop: band values, -trunc behind, +trunc elsewhere known, 0 unknown."""
    size = (4, 4, 4)
    known = np.zeros(size, bool)
    known[0] = True
    behind = np.zeros(size, bool)
    behind[0, 0, 0] = True
    crop = {"crop_size": np.array(size), "trunc_voxels": np.float32(3), "input_coords": np.array([[0, 1, 1]], np.int32),
            "input_tsdf": np.array([-0.5], np.float32), "input_known": known, "input_behind": behind,
            "target_coords": np.array([[1, 2, 3]], np.int32), "target_tsdf": np.array([0.25], np.float32),
            "target_known": known, "target_behind": np.zeros(size, bool)}
    it, ik, tt, tk = dense_volumes(crop)
    assert it[0, 0, 0] == -3 and it[0, 1, 1] == -0.5 and it[0, 3, 3] == 3 and it[2, 2, 2] == 0
    assert tk[1, 2, 3] and tt[1, 2, 3] == 0.25 and tt[0, 0, 0] == 3 and not ik[1, 1, 1]


def test_preprocess_completion_recipe_records_the_world_frame(scene_dir, tmp_path):
    out = tmp_path / "ds"
    cfg = recipe_config("completion", crops_per_scene=3, min_surface=30)
    s = preprocess(os.path.dirname(scene_dir), out, cfg, progress=False, val_fraction=0.0)
    assert s["failed"] == {} and s["done"] == [SID]
    man = load_manifest(out)
    assert man["version"] == FORMAT_VERSION and man["recipe"] == "completion" and man["known"] == "fused"
    assert man["placement"] == "random" and len(man["splits"]["train"]) == 3
    sc = man["scenes"][SID]
    assert sc["source"] == os.path.abspath(scene_dir) and sc["source_kind"] == "scannet"
    assert sc["voxel_to_world"][0][0] == pytest.approx(0.05) and len(sc["target_frames"]) == 40
    assert sc["frame_ids"] == list(range(40)) and set(sc["input_frames"]) < set(sc["target_frames"])
    with open(out / SID / "_scene.json") as f:
        assert json.load(f)["input_frames"] == sc["input_frames"]
    # resumable: a second run skips the scene
    assert preprocess(os.path.dirname(scene_dir), out, cfg, progress=False, val_fraction=0.0)["skipped"] == [SID]


def test_frame_sources_satisfy_the_protocol(scene_dir):
    assert isinstance(ScanNetScene(scene_dir), FrameSource)
    assert not isinstance(object(), FrameSource)
    assert hasattr(RGBDFolder, "frame") and hasattr(RGBDFolder, "__len__")


def test_recipe_config_rejects_unused_and_unknown_fields():
    with pytest.raises(ValueError, match=r"does not use \['drop_prob'\]"):
        recipe_config("completion", drop_prob=0.3)
    with pytest.raises(ValueError, match="unknown CropConfig field"):
        recipe_config("labels", fraction=0.3)
    with pytest.raises(ValueError, match="recipe: expected one of"):
        recipe_config("semantic")
    assert recipe_config("completion", placement="whole").placement == "whole"


def test_crop_of_newer_version_names_both_versions(tmp_path):
    p = tmp_path / "crop_0_0_0.npz"
    np.savez(p, crop_size=np.array([2, 2, 2]), input_coords=np.zeros((0, 3), np.int32),
             target_coords=np.zeros((0, 3), np.int32), format_version=np.int32(FORMAT_VERSION + 1))
    with pytest.raises(ValueError, match=rf"crop_0_0_0.npz: sparse3d.crops format version {FORMAT_VERSION + 1}; "
                                         rf"this reader reads versions \[1, 2\]"):
        load_crop(p)
    np.savez(p, crop_size=np.array([2, 2, 2]), input_coords=np.zeros((0, 3), np.int32),
             target_coords=np.zeros((0, 3), np.int32), input_known=np.packbits(np.ones(8, bool)),
             target_known=np.packbits(np.ones(8, bool)), format_version=np.int32(1))
    c = load_crop(p)  # version 1 loads: visibility semantics, no behind voxels
    assert c["known_semantics"] == "visibility" and not c["target_behind"].any() and c["input_known"].all()


def test_pairs_and_target_fraction(scene_dir, tmp_path):
    """Self-supervised pairs: <scene>_pair<q>, each its own seeded target subset; both in the scan's split."""
    cfg = recipe_config("completion", placement="whole", pairs=2, target_fraction=0.6)
    s = preprocess(os.path.dirname(scene_dir), tmp_path / "p", cfg, progress=False, val_fraction=0.5)
    assert s["done"] == [f"{SID}_pair00", f"{SID}_pair01"] and s["failed"] == {}
    man = load_manifest(tmp_path / "p")
    a, b = (man["scenes"][f"{SID}_pair0{q}"] for q in (0, 1))
    assert len(a["target_frames"]) == len(b["target_frames"]) == 24 and a["target_frames"] != b["target_frames"]
    assert set(a["input_frames"]) <= set(a["target_frames"]) and a["source_id"] == SID
    assert a["split"] == b["split"] and len(man["splits"][a["split"]]) == 2


def test_cli_preprocess_help_shows_both_recipes_and_rejects_unused_options(capsys):
    from data_tools.cli import main
    with pytest.raises(SystemExit) as e:
        main(["preprocess", "--help"])
    assert e.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--recipe {labels,completion,segmentation}" in out
    assert "(default completion: 0.05; labels: 0.04; segmentation: 0.05)" in out
    assert "(default completion: random; labels: grid; segmentation: whole)" in out
    assert main(["preprocess", "in", "out", "--recipe", "completion", "--drop-prob", "0.2"]) == 2
    assert "does not use ['drop_prob']" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["preprocess", "in", "out", "--placement", "diagonal"])
    assert e.value.code == 2 and "invalid choice: 'diagonal'" in capsys.readouterr().err


def test_random_origins_counts_surface_in_the_box():
    from data_tools.placement import padded_scene_grid, random_origins
    surf = np.zeros((10, 10, 10), bool)
    surf[2:4, 2:4, 2:4] = True  # 8 voxels
    o = random_origins(surf, np.array([4, 4, 4]), 5, 0, min_surface=8)
    assert len(o) == 5 and all(surf[x:x + 4, y:y + 4, z:z + 4].sum() == 8 for x, y, z in o)
    assert len(random_origins(surf, np.array([4, 4, 4]), 3, 0, min_surface=9)) == 0
    lo, dims = padded_scene_grid(np.array([[5, 5, 5], [9, 6, 5]]), 8, np.array([16, 16, 16]))
    assert lo.tolist() == [3, 3, 3] and dims.tolist() == [16, 16, 16]


def test_align_up_records_the_rotation_in_the_world_frame(scene_dir, tmp_path):
    cfg = recipe_config("completion", placement="whole", align_up=True)
    s = preprocess(scene_dir, tmp_path / "u", cfg, progress=False, val_fraction=0.0)
    assert s["failed"] == {}
    sc = load_manifest(tmp_path / "u")["scenes"][SID]
    r = np.asarray(sc["up_rotation"])
    assert r.shape == (4, 4) and np.allclose(r @ r.T, np.eye(4)) and np.allclose(r[:3, 3], 0)
    np.testing.assert_allclose(sc["voxel_to_world"], r.T @ np.diag([0.05, 0.05, 0.05, 1.0]))


def test_completion_dataset_refuses_dense_sample_folders(tmp_path):
    from sparse3d.tasks.completion.dataset import CompletionDataset
    np.savez(tmp_path / "scene0000_00.npz", input_tsdf=np.zeros((2, 2, 2), np.float16))
    with pytest.raises(ValueError, match=r"found dense completion samples \(\*\.npz without a manifest\); "
                                         r"re-run preprocessing: `sparse3d preprocess SCANS .* --recipe completion`"):
        CompletionDataset(str(tmp_path))
    (tmp_path / "manifest.json").write_text(json.dumps({"samples": ["scene0000_00.npz"], "voxel_size": 0.05}))
    with pytest.raises(ValueError, match=rf"{tmp_path}: expected a sparse3d.crops dataset, found dense completion "
                                         r"samples \(a manifest with a 'samples' list"):
        CompletionDataset(str(tmp_path))

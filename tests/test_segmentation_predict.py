"""Whole-scene prediction in the benchmark format (`sparse3d predict segmentation`): vertices placed in the
scene lattice, nearest-voxel labels, `<scan>.txt` + `<scan>_voxels.npz`, resumable, clear errors."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from data_tools.scannet.benchmark_export import export_gt, read_label_file
from data_tools.scannet.labels import SCANNET20_NYU40_IDS
from data_tools.scannet.ply import read_ply
from sparse3d import nn as snn
from sparse3d.tasks.segmentation.benchmark import evaluate
from sparse3d.tasks.segmentation.predict import (checkpoint_label_fn, dataset_scenes, module_label_fn,
                                                 predict_dataset, vertex_labels, world_to_local)
from sparse3d.tasks.segmentation.sample import SegSample, load_sample
from sparse3d.train.checkpoint import save_checkpoint

VOXEL = 0.1


@pytest.fixture
def data(seg_scans):
    """Two synthetic scans and their whole-scene crops at 10 cm, input fused from every frame."""
    return seg_scans


def _oracle(sample: SegSample) -> np.ndarray:
    """The sample's own labels (ignore -> otherfurniture): a perfect voxel classifier."""
    return np.where(sample.labels == 255, 19, sample.labels).astype(np.uint8)


def test_world_to_local_inverts_the_lattice_transform():
    rng = np.random.default_rng(0)
    a = np.deg2rad(30.0)
    up = np.eye(4)
    up[:3, :3] = [[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]
    v2w = up.T @ np.diag([0.05, 0.05, 0.05, 1.0])  # as _scene.json writes it with align_up
    coords = rng.integers(0, 40, (50, 3)).astype(np.int32)
    s = SegSample("s", coords, np.zeros((50, 3), np.uint8), np.zeros(50, np.float32), np.zeros(50, np.uint8),
                  np.array([-7, 3, -2], np.int32), np.array([40, 40, 40], np.int32), 0.05, v2w)
    np.testing.assert_allclose(world_to_local(s.world_points(), v2w, s.crop_origin), coords, atol=1e-9)
    with pytest.raises(ValueError, match=r"points must be float \[V, 3\], got shape \(4,\)"):
        world_to_local(np.zeros(4), v2w, s.crop_origin)


def test_vertex_labels_take_the_nearest_voxel():
    voxels = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0]], np.float64)
    labels = np.array([0, 19, 14], np.uint8)  # wall, otherfurniture, refrigerator
    verts = np.array([[1, 0.5, 0], [9, 1, 0], [-3, 10, 4], [6, 0, 0]])
    out, dist = vertex_labels(voxels, labels, verts, return_distance=True)
    assert out.dtype == np.uint8 and out.tolist() == [1, 39, 24, 39]
    np.testing.assert_allclose(dist, [np.hypot(1, 0.5), np.hypot(1, 1), 5.0, 4.0])
    with pytest.raises(ValueError, match=r"voxel_labels must be ScanNet-20 classes in \[0, 19\], got range \[0, 255\]"):
        vertex_labels(voxels, np.array([0, 255, 3]), verts)
    with pytest.raises(ValueError, match=r"voxel_points must be float \[N, 3\] with N >= 1"):
        vertex_labels(np.zeros((0, 3)), np.zeros(0), verts)


def test_oracle_predictions_score_well_and_files_are_benchmark_files(data):
    """With a perfect voxel classifier the vertices' labels are right wherever the scan saw them: the transfer
    (mesh vertices -> scene lattice -> nearest voxel) works in the right frame. (Not 1: parts of the rooms are
    unseen by the 12 frames, and at 10 cm thin wall-mounted classes share their voxels with the wall.)"""
    pred, gt = str(data["root"] / "pred_oracle"), str(data["root"] / "gt")
    s = predict_dataset(data["crops"], pred, _oracle, progress=False)
    assert sorted(s["done"]) == ["scene0000_00", "scene0001_00"] and not s["failed"] and not s["skipped"]
    assert export_gt(data["scans"], gt, progress=False)["failed"] == {}
    for scan, r in s["done"].items():
        n = len(read_ply(os.path.join(data["scans"], scan, scan + "_vh_clean_2.ply")).vertices)
        ids = read_label_file(os.path.join(pred, scan + ".txt"), n_expected=n)
        assert set(ids.tolist()) <= set(SCANNET20_NYU40_IDS)
        assert r["n_vertices"] == n and r["mean_distance_voxels"] < 3.0
        z = np.load(os.path.join(pred, scan + "_voxels.npz"))
        sample = load_sample(os.path.join(data["crops"], dataset_scenes(data["crops"], [scan])[0][1]))
        np.testing.assert_array_equal(z["coords"], sample.coords)
        np.testing.assert_array_equal(z["labels"], _oracle(sample))
        np.testing.assert_array_equal(z["gt_labels"], sample.labels)
        assert str(z["scene_id"]) == scan and float(z["voxel_size"]) == pytest.approx(VOXEL)
    scores = evaluate(pred, gt)
    walls = predict_dataset(data["crops"], str(data["root"] / "pred_wall"),
                            lambda smp: np.zeros(len(smp), np.uint8), progress=False)
    assert len(walls["done"]) == 2
    constant = evaluate(str(data["root"] / "pred_wall"), gt)
    assert scores.accuracy > 0.7 and scores.accuracy > constant.accuracy + 0.2
    assert scores.miou > 0.4 > 0.1 > constant.miou
    # classes of large surfaces, which a scan's voxels resolve, come out nearly right
    big = [c for c in (1, 3, 4, 5, 6) if scores.present[c]]  # floor, bed, chair, sofa, table
    assert big and all(scores.iou[c] > 0.5 for c in big), scores.format_table()


def test_a_sparse_module_runs_fully_convolutionally_and_runs_resume(data, one_thread):
    torch.manual_seed(0)
    net = torch.nn.Sequential(snn.SubMConv3d(3, 8, 3), snn.ReLU(), snn.SubMConv3d(8, 20, 1))
    fn = module_label_fn(net, lambda smp: torch.from_numpy(smp.color.astype(np.float32) / 255.0 - 0.5))
    out = str(data["root"] / "pred_net")
    s = predict_dataset(data["crops"], out, fn, split="val", progress=False)
    val = [sid for sid, e in json.load(open(os.path.join(data["crops"], "manifest.json")))["scenes"].items()
           if e["split"] == "val"]
    assert sorted(s["done"]) == sorted(val) and len(val) == 1
    scan = val[0]
    sample = load_sample(os.path.join(data["crops"], dataset_scenes(data["crops"], [scan])[0][1]))
    np.testing.assert_array_equal(np.load(os.path.join(out, scan + "_voxels.npz"))["labels"], fn(sample))
    txt = os.path.join(out, scan + ".txt")
    before = os.stat(txt).st_mtime_ns
    assert predict_dataset(data["crops"], out, fn, split="val", progress=False) == {
        "done": {}, "skipped": [scan], "failed": {}}
    assert os.stat(txt).st_mtime_ns == before
    again = predict_dataset(data["crops"], out, fn, scenes=[scan], overwrite=True, progress=False)
    assert list(again["done"]) == [scan]
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]
    # a module whose output is not [N, 20] logits on the input voxels
    bad = module_label_fn(snn.SubMConv3d(3, 5, 1), lambda smp: torch.zeros(len(smp), 3))
    with pytest.raises(ValueError, match=r"model output feats must be \[N, 20\]"):
        bad(sample)


def test_height_is_the_up_aligned_z_and_floor_lowest_measures_it_from_the_scan(data, tmp_path):
    from dataclasses import replace

    from sparse3d.tasks.segmentation.dataset import voxel_heights
    from sparse3d.tasks.segmentation.sample import lowest_floor
    scan = "scene0001_00"
    sample = load_sample(os.path.join(data["crops"], dataset_scenes(data["crops"], [scan])[0][1]))
    z = (sample.coords[:, 2] + sample.crop_origin[2]) * sample.voxel_size
    np.testing.assert_allclose(voxel_heights(sample), z, atol=1e-6)
    # --align-up: voxel_to_world leads back to a source world whose up is -y; the height stays the lattice's z
    up = np.array([[1.0, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])  # source -> aligned
    rotated = replace(sample, voxel_to_world=up.T @ np.diag([VOXEL, VOXEL, VOXEL, 1.0]))
    np.testing.assert_allclose(voxel_heights(rotated), z, atol=1e-6)
    assert np.abs(rotated.world_points()[:, 2] - z).max() > 0.5  # the source's z is not the height
    # the floor: the synthetic room's is z = 0; raised by 1 m, --floor lowest finds it again
    assert abs(lowest_floor(sample)) <= VOXEL + 1e-6  # the floor voxels straddle z = 0
    raised = replace(sample, crop_origin=sample.crop_origin + np.array([0, 0, 10], np.int32))
    assert lowest_floor(raised) == pytest.approx(lowest_floor(sample) + 1.0)
    np.testing.assert_allclose(voxel_heights(replace(raised, floor_z=lowest_floor(raised))),
                               z - lowest_floor(sample), atol=1e-6)
    # predict_dataset: the label function sees the floor's heights, _voxels.npz records floor_z
    fn = lambda s: (voxel_heights(s) > 0.55).astype(np.uint8)  # noqa: E731 (between voxel heights)
    for floor in ("zero", "lowest"):
        out = str(tmp_path / floor)
        assert list(predict_dataset(data["crops"], out, fn, scenes=[scan], progress=False, floor=floor)["done"]) \
            == [scan]
        with np.load(os.path.join(out, scan + "_voxels.npz")) as f:
            want = 0.0 if floor == "zero" else lowest_floor(sample)
            assert float(f["floor_z"]) == pytest.approx(want)
            np.testing.assert_array_equal(f["labels"], (z - want > 0.55).astype(np.uint8))
    with pytest.raises(ValueError, match=r"floor must be one of \['zero', 'lowest'\], got 'top'"):
        predict_dataset(data["crops"], str(tmp_path / "x"), fn, floor="top")


def test_prediction_errors_are_clear(data, tmp_path):
    # a scan whose mesh is gone: that scene fails with the mesh's path, the others go on
    crops = str(tmp_path / "crops")
    scans = str(tmp_path / "scans")
    os.makedirs(scans)
    import shutil
    shutil.copytree(data["crops"], crops)
    for sid in os.listdir(data["scans"]):
        shutil.copytree(os.path.join(data["scans"], sid), os.path.join(scans, sid))
        rec_path = os.path.join(crops, sid, "_scene.json")
        rec = json.load(open(rec_path))
        rec["source"] = os.path.join(scans, sid)
        json.dump(rec, open(rec_path, "w"))
    gone = os.path.join(scans, "scene0000_00", "scene0000_00_vh_clean_2.ply")
    os.remove(gone)
    s = predict_dataset(crops, str(tmp_path / "pred"), _oracle, progress=False)
    assert list(s["done"]) == ["scene0001_00"] and list(s["failed"]) == ["scene0000_00"]
    assert gone in s["failed"]["scene0000_00"] and "mesh not found" in s["failed"]["scene0000_00"]
    with pytest.raises(ValueError, match=r"split must be one of the dataset's splits \['train', 'val'\], got 'test'"):
        predict_dataset(crops, str(tmp_path / "p2"), _oracle, split="test", progress=False)
    with pytest.raises(ValueError, match=r"scenes: \['scene9999_00'\] are not in"):
        predict_dataset(crops, str(tmp_path / "p2"), _oracle, scenes=["scene9999_00"], progress=False)
    man_path = os.path.join(crops, "manifest.json")
    man = json.load(open(man_path))
    man["placement"] = "grid"
    json.dump(man, open(man_path, "w"))
    with pytest.raises(ValueError, match=r"manifest.json: placement must be 'whole'.*got 'grid'"):
        predict_dataset(crops, str(tmp_path / "p2"), _oracle, progress=False)


def test_checkpoints_of_another_task_are_refused(data, tmp_path, capsys, predict_cli):
    ckpt = str(tmp_path / "completion.pt")
    save_checkpoint(ckpt, {"model": {}, "config": {}}, task="completion")
    with pytest.raises(ValueError, match=r"completion.pt' was written by task 'completion', expected one of "
                                         r"\('segmentation', 'segmentation-window'\)"):
        checkpoint_label_fn(ckpt)
    assert predict_cli(["predict", "segmentation", ckpt, data["crops"], "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "written by task 'completion'" in capsys.readouterr().err
    assert predict_cli(["predict", "segmentation", str(tmp_path / "none.pt"), data["crops"], "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        predict_cli(["predict", "segmentation", ckpt, data["crops"], "--out", "o", "--backend", "cuda-magic"])
    assert e.value.code == 2


def test_predict_command_with_unet_and_window_checkpoints(data, tmp_path, capsys, one_thread, predict_cli):
    """`sparse3d predict segmentation` end to end from checkpoints of both models (untrained, tiny)."""
    from sparse3d.tasks.segmentation.config import SegmentationModelConfig, SegmentationTrainConfig
    from sparse3d.tasks.segmentation.model import SegmentationUNet
    from sparse3d.tasks.segmentation.window_model import TASK as WINDOW_TASK, WindowModelConfig, WindowNet
    from sparse3d.tasks.segmentation.window_train import WindowTrainConfig
    torch.manual_seed(0)
    cfg = SegmentationTrainConfig(model=SegmentationModelConfig(in_features=("color",), widths=(4, 8)))
    unet = str(tmp_path / "unet.pt")
    save_checkpoint(unet, {"model": SegmentationUNet(cfg.model).state_dict(), "config": cfg.to_dict(),
                           "data": {"voxel_size": VOXEL}}, task="segmentation")
    wcfg = WindowTrainConfig(model=WindowModelConfig(widths=[2, 2, 2], hidden=4))
    window = str(tmp_path / "window.pt")
    save_checkpoint(window, {"model": WindowNet(wcfg.model).state_dict(), "config": wcfg.to_dict()}, task=WINDOW_TASK)
    scan = "scene0001_00"
    n = len(read_ply(os.path.join(data["scans"], scan, scan + "_vh_clean_2.ply")).vertices)
    for ckpt, extra in ((unet, ["--backend", "torch"]), (unet, ["--tta", "3"]), (window, [])):
        out = str(tmp_path / ("pred_" + os.path.basename(ckpt)[:-3] + "_".join(extra)))
        assert predict_cli(["predict", "segmentation", ckpt, data["crops"], "--out", out, "--scenes", scan, "--quiet"]
                    + extra) == 0
        assert "1 written" in capsys.readouterr().out
        ids = read_label_file(os.path.join(out, scan + ".txt"), n_expected=n)
        assert set(ids.tolist()) <= set(SCANNET20_NYU40_IDS)
    assert predict_cli(["predict", "segmentation", window, data["crops"], "--out", str(tmp_path / "w2"), "--backend",
                 "native"]) == 2
    assert "backend applies to the sparse U-Net" in capsys.readouterr().err
    assert predict_cli(["predict", "segmentation", window, data["crops"], "--out", str(tmp_path / "w3"), "--tta", "2"]) == 2
    assert "tta applies to the sparse U-Net" in capsys.readouterr().err
    assert predict_cli(["predict", "segmentation", unet, data["crops"], "--out", str(tmp_path / "w4"), "--tta", "9"]) == 2
    assert "tta must be an int in 1..8, got 9" in capsys.readouterr().err


def test_rgbd_source_gets_voxel_labels_only(data, tmp_path):
    """A scan from an RGB-D folder has no mesh: predict writes its voxel labels (`_voxels.npz`) and no `.txt`,
    says so in its summary ("mesh": None), and skips it on a second run; segment voting fails for it."""
    import shutil
    crops = str(tmp_path / "crops")
    shutil.copytree(data["crops"], crops)
    rec_path = os.path.join(crops, "scene0000_00", "_scene.json")
    rec = json.load(open(rec_path))
    rec["source_kind"] = "rgbd"
    json.dump(rec, open(rec_path, "w"))
    out = str(tmp_path / "pred")
    s = predict_dataset(crops, out, _oracle, progress=False)
    assert s["failed"] == {} and s["done"]["scene0000_00"]["mesh"] is None
    assert s["done"]["scene0001_00"]["mesh"].endswith("_vh_clean_2.ply")
    assert not os.path.exists(os.path.join(out, "scene0000_00.txt"))
    with np.load(os.path.join(out, "scene0000_00_voxels.npz")) as z:
        assert len(z["labels"]) == len(z["coords"]) > 0
    again = predict_dataset(crops, out, _oracle, progress=False)
    assert sorted(again["skipped"]) == ["scene0000_00", "scene0001_00"]
    # it has no segs json either: segment voting is refused for it, by name, and the other scan is voted
    r = predict_dataset(crops, str(tmp_path / "pred_vote"), _oracle, progress=False, vote_segments=True)
    assert "vote_segments needs the scan's mesh and segs json; 'scene0000_00' is an RGB-D folder" in \
        r["failed"]["scene0000_00"] and "scene0001_00" in r["done"]

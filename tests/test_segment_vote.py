"""Segment voting (`sparse3d predict segmentation --vote-segments`): each segment of the scan's segs json takes
the majority label of its vertices; checked by hand, against the ground truth's own constancy over segments, and
through the command on real files in the ScanNet layout."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from data_tools.scannet.benchmark_export import read_label_file
from data_tools.scannet.labels import read_segs
from sparse3d.tasks.segmentation.benchmark import evaluate
from sparse3d.tasks.segmentation.predict import predict_dataset
from sparse3d.tasks.segmentation.sample import SegSample
from sparse3d.tasks.segmentation.segment_vote import (scene_segments, segs_path_of_mesh, vote_over_segments,
                                                      vote_scene_segments, vote_scores_over_segments)


def test_majority_by_hand_ties_to_the_smallest_id():
    labels = np.array([1, 1, 2, 3, 3, 4, 7, 5, 5, 9], np.uint8)
    segs = np.array([10, 10, 10, 2, 2, 2, -1, 8, 8, 8])
    out = vote_over_segments(labels, segs)
    assert out.dtype == np.uint8
    # segment 10: 1,1,2 -> 1; segment 2: 3,3,4 -> 3; segment -1: 7 alone; segment 8: 5,5,9 -> 5
    assert out.tolist() == [1, 1, 1, 3, 3, 3, 7, 5, 5, 5]
    tie = vote_over_segments(np.array([39, 4, 4, 39], np.int64), np.array([0, 0, 0, 0]))
    assert tie.tolist() == [4, 4, 4, 4]
    assert vote_over_segments(np.array([6, 3], np.uint8), np.array([0, 0])).tolist() == [3, 3]
    assert vote_over_segments(np.zeros(0, np.uint8), np.zeros(0, np.int64)).shape == (0,)


def test_score_vote_sums_probabilities_per_segment():
    """Two confident vertices outweigh three hesitant ones, where a majority of labels would not."""
    p = np.array([[0.9, 0.1, 0.0], [0.9, 0.1, 0.0], [0.4, 0.6, 0.0], [0.4, 0.6, 0.0], [0.45, 0.55, 0.0],
                  [0.0, 0.2, 0.8]], np.float32)
    segs = np.array([3, 3, 3, 3, 3, 7])
    assert vote_scores_over_segments(p, segs).tolist() == [0, 0, 0, 0, 0, 2]
    assert vote_over_segments(p.argmax(1), segs).tolist() == [1, 1, 1, 1, 1, 2]
    assert vote_scores_over_segments(np.full((2, 4), 0.25), np.array([0, 0])).tolist() == [0, 0]  # tie: smallest
    with pytest.raises(ValueError, match=r"scores must be float \[V, C\] \(class scores per vertex\), got int64 \(6,\)"):
        vote_scores_over_segments(segs, segs)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"segments must be \[V\] = \[3\] \(one segment id per vertex\), got shape \(2,\)"):
        vote_over_segments(np.zeros(3, np.uint8), np.zeros(2, np.int64))
    with pytest.raises(TypeError, match="labels must be an integer array, got float64"):
        vote_over_segments(np.zeros(3), np.zeros(3, np.int64))
    with pytest.raises(TypeError, match="segments must be an integer array, got float64"):
        vote_over_segments(np.zeros(3, np.uint8), np.zeros(3))
    with pytest.raises(ValueError, match="labels must be >= 0, got min -2"):
        vote_over_segments(np.array([1, -2]), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="mesh_path must end in '_vh_clean_2.ply'"):
        segs_path_of_mesh("scene0000_00.ply")


@pytest.fixture
def scans(seg_scans):
    return seg_scans


def test_the_ground_truth_is_a_fixed_point(scans):
    """ScanNet's labels are given per segment, so voting leaves the ground truth as it is; a noisy copy of it
    comes back closer to it."""
    rng = np.random.default_rng(0)
    for scan in ("scene0000_00", "scene0001_00"):
        mesh = os.path.join(scans["scans"], scan, scan + "_vh_clean_2.ply")
        gt = read_label_file(os.path.join(scans["gt"], scan + ".txt"))
        np.testing.assert_array_equal(vote_scene_segments(gt, mesh), gt)
        noisy = gt.copy()
        flip = rng.random(len(gt)) < 0.2
        noisy[flip] = rng.choice([3, 5, 39], int(flip.sum()))
        voted = vote_scene_segments(noisy, mesh)
        assert (voted == gt).mean() > 0.97 > 0.85 > (noisy == gt).mean()
        assert len(np.unique(read_segs(segs_path_of_mesh(mesh)))) > 10


def _noisy_oracle(sample: SegSample) -> np.ndarray:
    """The sample's labels with 30 % of the voxels replaced by random classes."""
    rng = np.random.default_rng(len(sample))
    lab = np.where(sample.labels == 255, 19, sample.labels).astype(np.uint8)
    flip = rng.random(len(lab)) < 0.3
    lab[flip] = rng.integers(0, 20, int(flip.sum()))
    return lab


def test_predict_with_votes_scores_higher_and_errors_name_the_file(scans, tmp_path):
    plain, voted = str(tmp_path / "plain"), str(tmp_path / "voted")
    assert not predict_dataset(scans["crops"], plain, _noisy_oracle, progress=False)["failed"]
    assert not predict_dataset(scans["crops"], voted, _noisy_oracle, progress=False, vote_segments=True)["failed"]
    a, b = evaluate(plain, scans["gt"]), evaluate(voted, scans["gt"])
    assert b.miou > a.miou + 0.1 and b.accuracy > a.accuracy + 0.1, (a.format_table(), b.format_table())
    # a missing segs json, or one of another length than the mesh, is an error naming the file
    crops = str(tmp_path / "scans_copy")
    shutil.copytree(scans["scans"], crops)
    gone = os.path.join(crops, "scene0000_00", "scene0000_00_vh_clean_2.0.010000.segs.json")
    os.remove(gone)
    with pytest.raises(FileNotFoundError, match="segs.json: the scan's over-segmentation not found"):
        vote_scene_segments(np.zeros(5, np.uint8), os.path.join(crops, "scene0000_00", "scene0000_00_vh_clean_2.ply"))
    with pytest.raises(ValueError, match=r"has \d+ segIndices, but .*scene0000_00_vh_clean_2.ply has 5 vertices"):
        scene_segments(os.path.join(scans["scans"], "scene0000_00", "scene0000_00_vh_clean_2.ply"), 5)


def _noisy_scores(sample: SegSample) -> np.ndarray:
    """float32 [N, 20]: the noisy oracle's labels as a confident one-hot, blurred towards uniform."""
    return (np.eye(20, dtype=np.float32)[_noisy_oracle(sample)] * 0.8 + 0.01).astype(np.float32)


def test_scores_from_the_label_fn_are_voted_and_argmaxed(scans, tmp_path):
    """A label_fn may return class scores [N, 20]: the voxel labels are their argmax, and voting with them
    gives what voting the one-hot of the same labels gives."""
    a, b = str(tmp_path / "labels"), str(tmp_path / "scores")
    for fn, out in ((_noisy_oracle, a), (_noisy_scores, b)):
        assert not predict_dataset(scans["crops"], out, fn, progress=False, vote_segments=True)["failed"]
    for scan in ("scene0000_00", "scene0001_00"):
        np.testing.assert_array_equal(read_label_file(os.path.join(a, scan + ".txt")),
                                      read_label_file(os.path.join(b, scan + ".txt")))
        with np.load(os.path.join(b, scan + "_voxels.npz")) as z:
            assert z["labels"].dtype == np.uint8 and z["labels"].max() < 20
    with pytest.raises(ValueError, match=r"label_fn must return \[N\] = \[\d+\] labels or float \[N, 20\] class "
                                         r"scores"):
        from sparse3d.tasks.segmentation.predict import voxel_scores
        from sparse3d.tasks.segmentation.predict import dataset_scenes
        from sparse3d.tasks.segmentation.sample import load_sample
        sample = load_sample(dataset_scenes(scans["crops"])[0][1])
        voxel_scores(sample, lambda smp: np.zeros((len(smp), 19), np.float32))


def test_the_command_takes_vote_segments(scans, tmp_path, capsys, one_thread, predict_cli):
    import torch
    from sparse3d.tasks.segmentation.config import SegmentationModelConfig, SegmentationTrainConfig
    from sparse3d.tasks.segmentation.model import SegmentationUNet
    from sparse3d.train.checkpoint import save_checkpoint
    torch.manual_seed(0)
    cfg = SegmentationTrainConfig(model=SegmentationModelConfig(widths=(8, 16)))
    ckpt = str(tmp_path / "unet.pt")
    save_checkpoint(ckpt, {"model": SegmentationUNet(cfg.model).state_dict(), "config": cfg.to_dict(),
                           "data": {"voxel_size": 0.1}}, task="segmentation")
    out = str(tmp_path / "pred")
    assert predict_cli(["predict", "segmentation", ckpt, scans["crops"], "--out", out, "--vote-segments", "--quiet"]) == 0
    assert "2 written" in capsys.readouterr().out
    for scan in ("scene0000_00", "scene0001_00"):
        ids = read_label_file(os.path.join(out, scan + ".txt"))
        mesh = os.path.join(scans["scans"], scan, scan + "_vh_clean_2.ply")
        np.testing.assert_array_equal(vote_scene_segments(ids, mesh), ids)  # already constant per segment

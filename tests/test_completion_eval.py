"""`sparse3d eval completion`: precision / recall on observed and unobserved space (hand-computed cases),
the decision threshold and its tuning, and samples without a surface reported and skipped."""
import json
import math

import numpy as np
import pytest
import torch

from data_tools import crop_from_dense, write_crop_dataset
from sparse3d.tasks.completion import evaluate
from sparse3d.tasks.completion.evaluate import NO_TARGET_SURFACE, evaluate_dataset, tune_threshold
from sparse3d.tasks.completion.metrics import precision_recall, region_metrics, voxel_chamfer
from sparse3d.tasks.completion.model import CompletionConfig, CompletionNet
from sparse3d.tasks.completion.predict import NetworkOutput, decide, threshold_logit
from sparse3d.tasks.completion.procedural import procedural_sample

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_precision_recall_by_region_hand_computed():
    t = np.zeros((2, 2, 4), bool)
    p = np.zeros_like(t)
    t[0, 0, :] = True            # 4 target voxels, z = 0..3
    p[0, 0, :2] = True           # 2 hits (z = 0, 1)
    p[1, 1, 0] = p[1, 1, 3] = True  # 2 invented voxels
    known = np.ones_like(t)
    seen = np.zeros_like(t)
    seen[:, :, :2] = True        # the input observed z = 0, 1
    assert precision_recall(p, t, known) == (0.5, 0.5)
    m = region_metrics(p, t, known, seen)
    # observed (z < 2): P = {(0,0,0), (0,0,1), (1,1,0)}, T = {(0,0,0), (0,0,1)}
    assert m["precision_observed"] == pytest.approx(2 / 3) and m["recall_observed"] == 1.0
    assert m["iou_observed"] == pytest.approx(2 / 3)
    # unobserved (z >= 2): P = {(1,1,3)}, T = {(0,0,2), (0,0,3)}: nothing right
    assert m["precision_unobserved"] == 0.0 and m["recall_unobserved"] == 0.0 and m["iou_unobserved"] == 0.0
    # nothing predicted in a region: precision is 0 / 0
    p2 = p & seen
    assert math.isnan(region_metrics(p2, t, known, seen)["precision_unobserved"])
    # unknown target space counts nowhere
    known[1, 1, 0] = False
    assert region_metrics(p, t, known, seen)["precision_observed"] == 1.0
    with pytest.raises(ValueError, match="share one shape"):
        precision_recall(p, t[:1], known)


def test_voxel_chamfer_hand_computed():
    a = np.zeros((4, 4, 4), bool)
    b = np.zeros_like(a)
    a[0, 0, 0] = True
    b[0, 0, 2] = b[0, 0, 0] = True
    # a -> b: 0; b -> a: mean(0, 2 voxels) = 1 voxel; symmetric mean 0.5 voxel = 0.05 m at 0.1 m
    assert voxel_chamfer(a, b, 0.1) == pytest.approx(0.05)
    assert voxel_chamfer(a, np.zeros_like(a), 0.1) == math.inf


def test_threshold_decides_on_the_finest_logits():
    s = procedural_sample(8, 0)
    s.input_known[:] = False
    raw = NetworkOutput(np.array([[1, 1, 1], [2, 2, 2], [3, 3, 3]]), np.array([0.2, -0.3, 0.5], np.float32),
                        np.array([0.1, 1.0, 2.0], np.float32))  # probabilities 0.52, 0.73, 0.88
    occ = [decide(s, raw, t, keep_observed=False).occ for t in (0.5, 0.7, 0.8, 0.9)]
    assert [int(o.sum()) for o in occ] == [3, 2, 1, 0]
    assert occ[2][3, 3, 3] and not occ[2][2, 2, 2]
    # a rejected voxel keeps its sign and leaves the band
    assert decide(s, raw, 0.8, keep_observed=False).tsdf[2, 2, 2] == -1.0
    assert threshold_logit(0.5) == 0.0 and threshold_logit(0.75) == pytest.approx(math.log(3))
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="threshold must be an occupancy probability in"):
            threshold_logit(bad)


def _plane_sample():
    """8 x 8 x 10 voxels, target surface = the layers z = 4, 5 (tsdf = z - 4.5), all known; the input
    observed the quarter x < 2."""
    z = np.arange(10, dtype=np.float32)[None, None, :].repeat(8, 0).repeat(8, 1)
    target = np.clip(z - 4.5, -3, 3).astype(np.float32)
    known = np.ones(target.shape, bool)
    seen = np.zeros_like(known)
    seen[:2] = True
    return crop_from_dense(np.where(seen, target, 0).astype(np.float32), seen, target, known, 0.1, 3.0,
                           scene_id="plane")


def _plane_network_output():
    """The unobserved part of the plane (x >= 2: 48 voxels per layer) at probability 0.9 and an invented
    layer z = 7 there at 0.6."""
    xs, ys = np.meshgrid(np.arange(2, 8), np.arange(8), indexing="ij")
    plane = [np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, z)], 1) for z in (4, 5)]
    extra = np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, 7)], 1)
    coords = np.concatenate(plane + [extra])
    logits = np.concatenate([np.full(96, math.log(9.0)), np.full(48, math.log(1.5))]).astype(np.float32)
    tsdf = np.concatenate([np.full(48, -0.5), np.full(48, 0.5), np.zeros(48)]).astype(np.float32)
    return NetworkOutput(coords, tsdf, logits)


def test_tune_threshold_picks_best_iou_without_worse_chamfer(tmp_path, monkeypatch):
    data = str(tmp_path / "d")
    write_crop_dataset(data, [_plane_sample()], split="val")
    raw = _plane_network_output()
    monkeypatch.setattr(evaluate, "run_network", lambda net, sample, device, frontier, tta=1: raw)
    tuned = tune_threshold(None, data, "val", thresholds=(0.5, 0.7, 0.8, 0.95), progress=False)
    by = {float(t): m for t, m in tuned["by_threshold"].items()}
    # 128 target voxels; 0.5 adds the 48 invented ones; 0.7 / 0.8 exactly the plane; 0.95 only the input's 32
    assert by[0.5]["iou"] == pytest.approx(128 / 176) and by[0.5]["precision"] == pytest.approx(128 / 176)
    assert by[0.5]["precision_unobserved"] == pytest.approx(96 / 144) and by[0.5]["recall_unobserved"] == 1.0
    assert by[0.7]["iou"] == 1.0 and by[0.8]["iou"] == 1.0
    assert by[0.95]["iou"] == pytest.approx(0.25) and by[0.95]["recall_unobserved"] == 0.0
    assert tuned["input"]["iou"] == pytest.approx(0.25)
    assert tuned["chosen"] == 0.7 and tuned["met_bound"]  # a tie in IoU goes to the threshold nearest 0.5
    assert by[0.7]["chamfer_m"] <= tuned["input"]["chamfer_m"]
    assert by[0.5]["chamfer_m"] > by[0.7]["chamfer_m"]  # the invented layer costs chamfer distance
    assert "0.70" in evaluate.format_tuning(tuned)


def _crop(target_tsdf, target_known, input_known, name):
    inp = np.where(input_known, target_tsdf, 0).astype(np.float32)
    return crop_from_dense(inp, input_known, target_tsdf.astype(np.float32), target_known, 0.05, 3.0,
                           scene_id=name)


@pytest.fixture
def mixed_dataset(tmp_path):
    """A scorable procedural crop, a crop whose target has no surface, and a crop whose target has surface
    voxels but no cube with all corners known (marching cubes finds no surface)."""
    s = procedural_sample(16, 3, holes=2)
    good = crop_from_dense(s.input_tsdf, s.input_known, s.target_tsdf, s.target_known, s.voxel_size, s.trunc,
                           scene_id="good")
    shape = (16, 16, 16)
    free = np.full(shape, 3.0)
    empty = _crop(free, np.ones(shape, bool), np.ones(shape, bool), "empty")
    t = free.copy()
    k = np.zeros(shape, bool)
    k[8:10, 8:10, 8:10] = True           # a known block, all free space
    t[2, 2, 2], k[2, 2, 2] = -0.5, True  # an isolated surface voxel: its sign change has no full cube
    k[2, 2, 3] = True
    sliver = _crop(t, k, k, "sliver")
    data = str(tmp_path / "mixed")
    write_crop_dataset(data, [good, empty, sliver], split="test")
    return data


def _tiny_net():
    torch.manual_seed(0)
    return CompletionNet(CompletionConfig(channels=[4, 8, 8], grow_steps=1)).eval()


def test_eval_skips_samples_without_surface_and_says_why(mixed_dataset, capsys):
    """A target without surface voxels is skipped with its reason; a target whose only sign change touches an
    unknown voxel (the sliver) is scored, its mesh empty and its chamfer distance null (sparse3d.utils.mesh
    returns an empty mesh where skimage's marching cubes raised "No surface found")."""
    res = evaluate_dataset(_tiny_net(), mixed_dataset, progress=False)
    assert sorted(k.split("/")[0] for k in res.rows) == ["good", "sliver"]
    reasons = {k.split("/")[0]: v for k, v in res.skipped.items()}
    assert reasons == {"empty": NO_TARGET_SURFACE}
    assert res.summary().startswith("scored 2 of 3 samples; skipped 1: ")
    out = capsys.readouterr().out
    assert "skipped empty/" in out and "sliver/" not in out.split("skipped", 1)[1].split("\n")[0]
    (good,) = [k for k in res.rows if k.startswith("good/")]
    (sliver,) = [k for k in res.rows if k.startswith("sliver/")]
    r = res.rows[good]["prediction"]
    for k in ("iou", "precision", "recall", "precision_unobserved", "recall_observed", "chamfer_m"):
        assert k in r, k
    assert res.rows[sliver]["prediction"]["chamfer_m"] == float("inf")  # an empty target mesh: "n/a", JSON null
    j = res.to_json()
    assert j["mean"]["prediction"]["chamfer_m"] == pytest.approx(r["chamfer_m"])  # the mean leaves it out
    assert j["settings"]["threshold"] == 0.5 and set(j["skipped"]) == set(res.skipped)
    ious = [res.rows[k]["prediction"]["iou"] for k in (good, sliver)]
    assert j["mean"]["prediction"]["iou"] == pytest.approx(sum(ious) / 2)


def test_cli_eval_reports_skips_threshold_and_tuning(mixed_dataset, tmp_path, capsys):
    from sparse3d.cli import main
    from sparse3d.train.checkpoint import save_checkpoint
    from sparse3d.tasks.completion.config import load_config
    net = _tiny_net()
    cfg = load_config(None, {"model": {"channels": [4, 8, 8], "grow_steps": 1}})
    ck = str(tmp_path / "m.pt")
    save_checkpoint(ck, {"model": net.state_dict(), "config": cfg.to_dict()}, "completion")
    js = str(tmp_path / "m.json")
    assert main(["eval", "completion", "--checkpoint", ck, "--data", mixed_dataset, "--json", js,
                 "--threshold", "0.6"]) == 0
    got = json.load(open(js))
    assert got["settings"]["threshold"] == 0.6 and len(got["samples"]) == 2 and len(got["skipped"]) == 1
    out = capsys.readouterr().out
    assert "scored 2 of 3 samples; skipped 1" in out and "P unobs" in out
    tj = str(tmp_path / "t.json")
    assert main(["eval", "completion", "--checkpoint", ck, "--data", mixed_dataset, "--split", "test",
                 "--tune-threshold", "--thresholds", "0.4", "0.6", "--json", tj]) == 0
    tuned = json.load(open(tj))
    assert tuned["chosen"] in (0.4, 0.6) and set(tuned["by_threshold"]) == {"0.4", "0.6"}
    with pytest.raises(SystemExit):
        main(["eval", "completion", "--checkpoint", ck, "--data", mixed_dataset, "--threshold", "1"])


def test_reach_recall_bins_the_unobserved_surface_by_distance_hand_computed():
    from sparse3d.tasks.completion.metrics import reach_recall
    from sparse3d.tasks.completion.predict import format_reach_table
    shape = (10, 1, 1)
    seen = np.zeros(shape, bool)
    seen[:2] = True                     # observed: x = 0, 1
    target = np.zeros(shape, bool)
    target[[2, 4, 7, 9]] = True         # distances to observed space 1, 3, 6, 8
    target[0] = True                    # observed: not counted
    pred = np.zeros(shape, bool)
    pred[[0, 2, 7, 5]] = True
    known = np.ones(shape, bool)
    r = reach_recall(pred, target, known, seen)
    assert r["recall_unobserved_d0_2"] == 1.0 and r["target_unobserved_d0_2"] == 1
    assert r["recall_unobserved_d2_4"] == 0.0 and r["target_unobserved_d2_4"] == 1
    assert r["recall_unobserved_d4_8"] == 0.5 and r["target_unobserved_d4_8"] == 2
    for k in ("d8_12", "d12_16", "d16_inf"):
        assert math.isnan(r[f"recall_unobserved_{k}"]) and r[f"target_unobserved_{k}"] == 0
    known[9] = False                    # unknown target space is not scored
    assert reach_recall(pred, target, known, seen)["target_unobserved_d4_8"] == 1
    blind = reach_recall(pred, target, np.ones(shape, bool), np.zeros(shape, bool))  # nothing observed
    assert blind["target_unobserved_d16_inf"] == 5 and blind["recall_unobserved_d16_inf"] == 0.6  # x = 0, 2, 7 of 5
    table = format_reach_table({"a": {"prediction": r}})
    assert "(4,8]" in table and "0.500" in table and "n/a" in table
    with pytest.raises(ValueError, match="must share one shape"):
        reach_recall(pred, target, known, seen[:5])

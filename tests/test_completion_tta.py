"""Test-time views of scene completion: the box views are exact on the grid, the merge averages each voxel's
occupancy probability over the views (0 where a view did not score it) and brings every voxel back to the
scene's own coordinates; `eval completion --tta` records the views it used."""
import json
import os

import numpy as np
import pytest
import torch

from data_tools import crop_from_dense, write_crop_dataset
from sparse3d.tasks.completion import predict
from sparse3d.tasks.completion.model import CompletionConfig, CompletionNet
from sparse3d.tasks.completion.predict import decide, run_network
from sparse3d.tasks.completion.procedural import procedural_sample
from sparse3d.utils.test_time_views import box_view, coords_from_view, tta_views, volume_to_view


def test_box_views_are_exact_permutations_of_the_box():
    rng = np.random.default_rng(0)
    shape = (5, 7, 3)
    vol = rng.standard_normal(shape).astype(np.float32)
    c = np.indices(shape).reshape(3, -1).T
    seen = set()
    for turns, flip, shift in tta_views(8):
        rot, offset, vshape = box_view(shape, turns, flip, shift)
        turned = (shape[1], shape[0]) if turns % 2 else shape[:2]
        assert vshape == tuple(int(v) for v in shift + np.array([*turned, shape[2]]))
        v = volume_to_view(vol, rot, offset, vshape, np.nan)
        q = c @ rot.T + offset
        assert (q >= shift).all() and (q < np.array(vshape)).all()
        np.testing.assert_array_equal(v[tuple(q.T)], vol[tuple(c.T)])  # every voxel lands once, unchanged
        assert int(np.isnan(v).sum()) == int(np.prod(vshape)) - vol.size  # the rest is the empty slab
        back, keep = coords_from_view(np.argwhere(~np.isnan(v)), rot, offset, shape)
        assert keep.all()
        np.testing.assert_array_equal(vol[tuple(back.T)], v[~np.isnan(v)])
        slab = np.argwhere(np.isnan(v))
        assert not coords_from_view(slab, rot, offset, shape)[1].any()  # the empty slab maps outside the box
        seen.add(rot.tobytes())
    assert len(seen) == 8  # eight different rotations / mirrors
    with pytest.raises(ValueError, match="shape must be 3 positive sizes"):
        box_view((4, 0, 4), 0, False, np.zeros(3))


def test_views_are_merged_by_mean_probability_in_the_scenes_coordinates(monkeypatch):
    """A stand-in network that scores the voxels with negative input distance (an equivariant rule) at a logit
    of its own per view: every view scores the same voxels once mapped back, so each gets the mean of the views'
    probabilities, and the mean distance; a voxel the views never scored is absent."""
    s = procedural_sample(12, 1)
    logits = [2.0, -1.0, 0.5, 3.0, 0.0, 1.5]
    calls = []

    def fake_once(net, tsdf, known, trunc, shape, device, frontier):
        assert tsdf.shape == tuple(shape) and known.shape == tuple(shape)
        c = np.argwhere(known & (tsdf < 0))
        calls.append(len(calls))
        return predict.NetworkOutput(c, tsdf[tuple(c.T)].astype(np.float32),
                                     np.full(len(c), logits[len(calls) - 1], np.float32))

    monkeypatch.setattr(predict, "_run_once", fake_once)
    monkeypatch.setattr(predict, "check_sample", lambda net, sample: None)
    net = CompletionNet(CompletionConfig(channels=[4, 8, 8], grow_steps=1))
    raw = run_network(net, s, tta=6)
    assert len(calls) == 6
    want = np.argwhere(s.input_known & (s.input_tsdf < 0))
    np.testing.assert_array_equal(raw.coords, want)
    np.testing.assert_allclose(raw.tsdf, s.input_tsdf[tuple(want.T)], rtol=1e-6)
    p = np.mean([1 / (1 + np.exp(-v)) for v in logits])
    np.testing.assert_allclose(raw.logits, np.log(p / (1 - p)), rtol=1e-5)
    calls.clear()
    one = run_network(net, s, tta=1)  # one view: the network's own output, no averaging
    assert len(calls) == 1 and np.all(one.logits == 2.0)


def test_real_network_views_stay_in_the_box_and_tta_1_is_the_single_run():
    torch.manual_seed(0)
    net = CompletionNet(CompletionConfig(channels=[4, 8, 8], grow_steps=1)).eval()
    with torch.no_grad():
        for head in net.occ:  # an untrained net prunes about everything: let every level keep most voxels
            head.module.bias.fill_(3.0)
    s = procedural_sample(16, 3, holes=2)
    single = predict._run_once(net, s.input_tsdf, s.input_known, s.trunc, s.shape, "cpu", True)
    one = run_network(net, s, tta=1)
    for a, b in zip((one.coords, one.tsdf, one.logits), (single.coords, single.tsdf, single.logits)):
        np.testing.assert_array_equal(a, b)
    assert len(single.coords) > 100
    eight = run_network(net, s, tta=8)
    assert len(eight.coords) and (eight.coords >= 0).all() and (eight.coords < np.array(s.shape)).all()
    assert len(np.unique(eight.coords, axis=0)) == len(eight.coords)
    assert np.isfinite(eight.logits).all() and np.isfinite(eight.tsdf).all()
    # view 0 is the single run, so every voxel it scores is in the views' union
    assert {tuple(c) for c in one.coords} <= {tuple(c) for c in eight.coords}
    pred = decide(s, eight, 0.5)
    assert pred.occ.shape == s.shape
    for bad in (0, 9, 2.0, True):
        with pytest.raises(ValueError, match="tta must be an int in 1..8"):
            run_network(net, s, tta=bad)


def test_cli_eval_and_predict_take_tta(tmp_path, capsys):
    from sparse3d.cli import main
    from sparse3d.tasks.completion.config import load_config
    from sparse3d.train.checkpoint import save_checkpoint
    torch.manual_seed(0)
    net = CompletionNet(CompletionConfig(channels=[4, 8, 8], grow_steps=1))
    cfg = load_config(None, {"model": {"channels": [4, 8, 8], "grow_steps": 1}})
    ck = str(tmp_path / "m.pt")
    save_checkpoint(ck, {"model": net.state_dict(), "config": cfg.to_dict()}, "completion")
    s = procedural_sample(16, 3, holes=2)
    data = str(tmp_path / "d")
    write_crop_dataset(data, [crop_from_dense(s.input_tsdf, s.input_known, s.target_tsdf, s.target_known,
                                              s.voxel_size, s.trunc, scene_id="room")], split="test")
    js = str(tmp_path / "m.json")
    assert main(["eval", "completion", "--checkpoint", ck, "--data", data, "--json", js, "--tta", "3",
                 "--no-chamfer"]) == 0
    assert json.load(open(js))["settings"]["tta"] == 3
    out = str(tmp_path / "pred")
    assert main(["predict", "completion", "--checkpoint", ck, "--input", data, "--out", out, "--tta", "2"]) == 0
    (m,) = [f for f in os.listdir(out) if f.endswith("_metrics.json")]
    assert json.load(open(f"{out}/{m}"))["tta"] == 2
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["eval", "completion", "--checkpoint", ck, "--data", data, "--tta", "9"])
    assert "--tta" in capsys.readouterr().err

"""3DMV end to end at the smallest size: textured rooms -> crops -> 2D pre-training -> joint training (fixed and
end to end) -> per-vertex predictions scored by the segmentation benchmark; the CLI and resume."""
import json
import os

import numpy as np
import pytest
import torch

from data_tools import preprocess, recipe_config
from data_tools.scannet.benchmark_export import export_gt
from data_tools.synthetic import generate_scenes
from sparse3d.tasks.segmentation.benchmark import evaluate
from sparse3d.tasks.threedmv.config import load_2d_config, load_config
from sparse3d.tasks.threedmv.data import load_scenes
from sparse3d.tasks.segmentation.dataset import sample_features
from sparse3d.tasks.threedmv.predict import _maps_2d, labels_2d, lift_scene, predict_checkpoint, predict_scene_labels
from sparse3d.tensor import SparseTensor
from sparse3d.tasks.threedmv.pretrain2d import load_net2d, train_2d
from sparse3d.tasks.threedmv.train import load_model, train


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tdmv")
    scans = root / "scans"
    tr = generate_scenes(scans, 2, seed=0, n_frames=4, width=64, height=48, appearance="textured")
    te = generate_scenes(scans, 1, seed=1, n_frames=4, width=64, height=48, appearance="textured", first_index=100)
    out = {"root": root, "train": str(root / "train"), "test": str(root / "test"), "gt": str(root / "gt")}
    for dirs, dst in ((tr, out["train"]), (te, out["test"])):
        r = preprocess(str(scans), dst, recipe_config("segmentation", seed=0),
                       scenes=[os.path.basename(d) for d in dirs], val_fraction=0.0)
        assert not r["failed"]
    export_gt(str(scans), out["gt"], scenes=[os.path.basename(te[0])], progress=False)
    cfg2 = load_2d_config(None, {"data": out["train"], "val_data": out["test"], "out": str(root / "r2d"),
                                 "steps": 2, "batch_size": 2, "threads": 1})
    logs = train_2d(cfg2, resume=False, progress=False)
    assert 0 <= logs["val_miou"] <= 1
    out["net2d"] = str(root / "r2d" / "last.pt")
    return out


def test_frames_of_a_crop(data):
    sc = load_scenes(data["test"], None, 1.0, 1, 2, 2, "", with_labels=True)[0]
    fr = sc.frames
    assert fr.color.shape == (4, 24, 32, 3) and fr.depth.shape == (4, 24, 32) and fr.labels.shape == (4, 24, 32)
    assert fr.intrinsics.shape == (4, 4) and fr.poses.shape == (4, 4, 4)
    lab = fr.labels[fr.labels != 255]
    assert len(lab) > 0 and lab.max() < 20


@pytest.mark.parametrize("fix", [True, False])
def test_train_predict_and_score(data, fix, tmp_path):
    out = tmp_path / "run"
    over = {"data": data["train"], "val_data": data["test"], "out": str(out), "steps": 2, "views": 2,
            "net2d": data["net2d"], "fix_2d": fix, "threads": 1, "box": [16, 16, 48],
            "model": {"widths": [8, 16]}}
    logs = train(load_config(None, over), resume=False, progress=False)
    m = json.loads((out / "metrics.json").read_text())
    assert m["miou"] == logs["val_miou"] and m["steps"] == 2
    model, cfg = load_model(str(out / "last.pt"))
    n2d = load_net2d(data["net2d"])
    w_before = n2d.enc1[0][0].weight
    w_after = model.net2d.enc1[0][0].weight
    assert torch.equal(w_before, w_after) == fix  # a frozen 2D net keeps its pre-trained weights
    pred = tmp_path / "pred"
    r = predict_checkpoint(str(out / "last.pt"), data["test"], str(pred), progress=False)
    assert not r["failed"] and len(r["done"]) == 1
    sc = evaluate(str(pred), data["gt"])
    assert 0 <= sc.miou <= 1 and sc.n_vertices > 0
    # whole-scene labels: tta 1 is the joint network's forward pass on [geometry, lifted]; tta 3 averages views
    scene = load_scenes(data["test"], None, cfg.max_abs_tsdf, cfg.frame_step, cfg.depth_step, cfg.color_step, "",
                        with_labels=False)[0]
    s = scene.sample
    x = SparseTensor(torch.cat([torch.zeros(len(s), 1, dtype=torch.int32), torch.from_numpy(s.coords)], 1),
                     sample_features(s, cfg.model.geometry()))
    lifted, _ = lift_scene(scene, s, _maps_2d(model.net2d, scene, 1, torch.device("cpu")), cfg.views, cfg.box[:2],
                           cfg.depth_thresh if cfg.depth_thresh > 0 else None)
    model.eval()
    with torch.no_grad():
        direct = model(x, lifted).feats.argmax(1).numpy()
    np.testing.assert_array_equal(predict_scene_labels(model, cfg, scene), direct)
    three = predict_scene_labels(model, cfg, scene, tta=3)
    assert three.shape == direct.shape and three.max() < 20
    # resume: a second call with the same steps trains nothing more (no new rows in metrics.jsonl)
    rows = (out / "metrics.jsonl").read_text().splitlines()
    train(load_config(None, {**over, "eval_at_end": False}), resume=True, progress=False)
    assert (out / "metrics.jsonl").read_text().splitlines() == rows and len(rows) == 2


def test_2d_only_labels_cover_every_voxel(data):
    sc = load_scenes(data["test"], None, 1.0, 1, 2, 2, "", with_labels=False)[0]
    labels, seen = labels_2d(load_net2d(data["net2d"]), sc, 1, (16, 16))
    assert labels.shape == (len(sc.sample),) and labels.max() < 20
    assert 0 < seen <= 1


def test_cli_train_and_predict(data, tmp_path):
    from sparse3d.cli import main
    out = tmp_path / "cli"
    rc = main(["train", "threedmv", "--data", data["train"], "--out", str(out), "--steps", "1", "--no-2d",
               "--box", "16,16,48", "--widths", "8,16", "--threads", "1", "--no-eval"])
    assert rc == 0 and (out / "last.pt").is_file()
    rc = main(["predict", "threedmv", str(out / "last.pt"), data["test"], "--out", str(tmp_path / "p"), "--quiet",
               "--tta", "2"])
    assert rc == 0
    lines = (tmp_path / "p" / "scene0100_00.txt").read_text().split()
    assert len(lines) > 0 and set(np.unique(np.array(lines, int))) <= {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16,
                                                                       24, 28, 33, 34, 36, 39}
    assert main(["train", "threedmv", "--data", data["train"], "--out", str(out)]) == 2  # fix_2d without net2d

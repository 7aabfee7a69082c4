"""benchmarks/bm_segments_alone.py: the segment descriptors and majority labels by hand, and the script end to end
on two tiny synthetic scans (one to train the classifier, one held out) with an untrained U-Net checkpoint."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from data_tools.scannet.labels import IGNORE, SCANNET20_NAMES
from sparse3d.train.checkpoint import save_checkpoint

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "bm_segments_alone.py"


@pytest.fixture(scope="module")
def bm():
    sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location("bm_segments_alone", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_segment_features_by_hand(bm):
    # segment 7: a 2 x 1 m patch of the floor; segment 3: a 1 m wide, 2 m tall patch of the wall x = 0
    g = np.linspace(0, 1, 11)
    fx, fy = np.meshgrid(2 * g, g)
    floor = np.stack([fx.ravel() + 1, fy.ravel() + 1, np.zeros(fx.size)], 1)
    wy, wz = np.meshgrid(g, 2 * g)
    wall = np.stack([np.zeros(wy.size), wy.ravel() + 1, wz.ravel()], 1)
    v = np.concatenate([floor, wall])
    colors = np.zeros((len(v), 4), np.uint8)
    colors[:len(floor), :3] = (255, 0, 0)
    colors[len(floor):, :3] = (0, 0, 255)
    segs = np.array([7] * len(floor) + [3] * len(wall))
    ids, f = bm.segment_features(v, colors, segs)
    assert ids.tolist() == [3, 7]
    col = {name: i for i, name in enumerate(bm.GEOMETRY + bm.COLOUR)}
    wall_f, floor_f = f[0], f[1]
    assert wall_f[col["log vertices"]] == pytest.approx(np.log(len(wall)))
    assert (wall_f[col["z min"]], wall_f[col["z max"]], wall_f[col["z mean"]]) == pytest.approx((0, 2, 1))
    assert floor_f[col["z max"]] == pytest.approx(0)
    # the room's horizontal box is x 0..3, y 1..2: the wall lies on its side, the floor patch's centre 0.5 m in
    assert wall_f[col["to room side"]] == pytest.approx(0) and floor_f[col["to room side"]] == pytest.approx(0.5)
    # thinnest axis: horizontal for the wall (|z| 0), vertical for the floor (|z| 1)
    assert wall_f[col["thinnest axis |z|"]] == pytest.approx(0, abs=1e-6)
    assert floor_f[col["thinnest axis |z|"]] == pytest.approx(1)
    # extents: the standard deviation along the principal axes, the longest first (an 11 x 11 grid over 2 m x 1 m)
    sd = lambda n: np.std(np.repeat(np.linspace(0, n, 11), 11), ddof=1)  # noqa: E731
    assert wall_f[col["extent 1"]] == pytest.approx(sd(2)) and wall_f[col["extent 2"]] == pytest.approx(sd(1))
    assert wall_f[col["extent 3"]] == pytest.approx(0, abs=1e-6)
    assert wall_f[col["horizontal extent 1"]] == pytest.approx(sd(1))
    assert wall_f[col["horizontal extent 2"]] == pytest.approx(0, abs=1e-6)
    assert floor_f[col["horizontal extent 1"]] == pytest.approx(sd(2))
    assert wall_f[[col["r mean"], col["g mean"], col["b mean"]]] == pytest.approx([0, 0, 1])
    assert floor_f[[col["r std"], col["g std"], col["b std"]]] == pytest.approx([0, 0, 0])


def test_segment_labels_take_the_majority_of_the_20_classes(bm):
    # nyu40 ids: 1 wall (class 0), 5 chair (class 4), 40 otherprop (not one of the 20), 0 unannotated
    gt = np.array([1, 1, 5, 5, 5, 40, 40, 40, 0, 5])
    segs = np.array([2, 2, 2, 9, 9, 9, 9, 9, 4, 4])
    ids = np.array([2, 4, 9])
    y, n = bm.segment_labels(gt, segs, ids)
    assert y.tolist() == [0, 4, 4]  # segment 9: three otherprop vertices do not outvote two chair ones
    assert n.tolist() == [3, 2, 5]
    y, _ = bm.segment_labels(np.array([40, 0]), np.array([1, 1]), np.array([1]))
    assert y.tolist() == [IGNORE]


def test_script_end_to_end_on_two_scans(bm, seg_scans, tmp_path, one_thread):
    from sparse3d.tasks.segmentation.config import SegmentationModelConfig, SegmentationTrainConfig
    from sparse3d.tasks.segmentation.model import SegmentationUNet
    torch.manual_seed(0)
    cfg = SegmentationTrainConfig(model=SegmentationModelConfig(in_features=("color",), widths=(4, 8)))
    ckpt = str(tmp_path / "unet.pt")
    save_checkpoint(ckpt, {"model": SegmentationUNet(cfg.model).state_dict(), "config": cfg.to_dict(),
                           "data": {"voxel_size": 0.1}}, task="segmentation")
    crops = seg_scans["crops"]
    common = ["--train", crops, "--train-split", "train", "--test", crops, "--test-split", "val"]
    res = subprocess.run([sys.executable, str(SCRIPT), *common, "--checkpoint", ckpt, "--tta", "2",
                          "--out-dir", str(tmp_path)], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    data = json.loads((tmp_path / "segments_alone.json").read_text())
    assert data["rooms"] == {"train": 1, "test": 1}
    assert data["train"] == [os.path.abspath(crops), "train"] and data["test"] == [os.path.abspath(crops), "val"]
    assert list(data["results"]) == ["segments: geometry + colour", "segments: geometry",
                                     "U-Net, 2 views + segment vote"]
    for r in data["results"].values():
        assert 0 <= r["miou"] <= 1 and 0 <= r["accuracy"] <= 1
        assert list(r["iou"]) == list(SCANNET20_NAMES)
        assert all(v is None or 0 <= v <= 1 for v in r["iou"].values()) and "wall" in r["iou"]
        assert r["iou"]["wall"] is not None
    assert data["results"]["segments: geometry"]["features"] == list(bm.GEOMETRY)
    assert data["results"]["segments: geometry + colour"]["training_segments"] > 0
    # bad input: a folder that is not a crops dataset, a tta out of range
    res = subprocess.run([sys.executable, str(SCRIPT), "--train", str(tmp_path), "--test", crops, "--out-dir",
                          str(tmp_path)], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert res.returncode == 2 and "--train" in res.stderr and "not a crops dataset" in res.stderr
    res = subprocess.run([sys.executable, str(SCRIPT), *common, "--checkpoint", ckpt, "--tta", "9", "--out-dir",
                          str(tmp_path)], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert res.returncode == 2 and "--tta" in res.stderr and "got 9" in res.stderr

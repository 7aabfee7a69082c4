"""`sparse3d eval completion --rgbd FOLDER`: a scan folder fused (input from a seeded ~30% of the frames,
target from all), scored, with its table, JSON, meshes and the input / prediction / target / errors picture;
and the error labels of that picture."""
import json
import os

import numpy as np
import pytest
import torch

from sparse3d.tasks.completion.config import load_config
from sparse3d.tasks.completion.model import CompletionNet
from sparse3d.tasks.completion.rgbd_eval import error_labels, fuse_scan
from sparse3d.train.checkpoint import save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_error_labels_hand_computed():
    p = np.zeros((3, 1, 1), bool)
    t = np.zeros_like(p)
    p[0], t[0] = True, True  # correct
    p[1] = True              # invented
    t[2] = True              # missed
    coords, lab = error_labels(p, t)
    assert coords.tolist() == [[0, 0, 0], [1, 0, 0], [2, 0, 0]] and lab.tolist() == [1, 2, 3]


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    from data_tools.synthetic import generate_scenes
    return generate_scenes(str(tmp_path_factory.mktemp("scans")), 1, seed=3, n_frames=12, width=64, height=48)[0]


def test_fuse_scan_input_is_a_seeded_subset(scan):
    a = fuse_scan(scan, 0.05, 3.0, 0.3, 2, seed=0)
    b = fuse_scan(scan, 0.05, 3.0, 0.3, 2, seed=0)
    c = fuse_scan(scan, 0.05, 3.0, 0.3, 2, seed=1)
    assert np.array_equal(a.input_known, b.input_known) and not np.array_equal(a.input_known, c.input_known)
    assert np.array_equal(a.target_known, c.target_known)  # the target fuses every frame
    assert 0 < a.input_known.sum() < a.target_known.sum()


def test_cli_eval_rgbd_writes_table_json_meshes_and_picture(scan, tmp_path, capsys):
    from PIL import Image
    from sparse3d.cli import main
    torch.manual_seed(0)
    cfg = load_config(None, {"model": {"channels": [4, 8, 8], "grow_steps": 1}})
    ck = str(tmp_path / "m.pt")
    save_checkpoint(ck, {"model": CompletionNet(cfg.model).state_dict(), "config": cfg.to_dict(),
                         "data": {"voxel_size": 0.05, "trunc": 3.0}}, "completion")
    out = tmp_path / "o"
    assert main(["eval", "completion", "--rgbd", scan, "--checkpoint", ck, "--out", str(out), "--threshold",
                 "0.7"]) == 0
    name = os.path.basename(scan)
    m = json.load(open(out / f"{name}_metrics.json"))
    assert m["settings"]["threshold"] == 0.7 and m["settings"]["input_fraction"] == pytest.approx(0.3)
    r = m["samples"][name]
    assert 0 < r["input"]["iou"] < 1 and 0 <= r["prediction"]["recall_unobserved"] <= 1
    for f in ("_input.ply", "_prediction.ply", "_target.ply", "_prediction_grid.npz"):
        assert (out / (name + f)).is_file(), f
    img = np.asarray(Image.open(out / f"{name}.png").convert("RGB"))
    assert img.shape == (520, 1600, 3)
    # the error panel's colours are in the picture: correct (green) and missed (yellow) voxels at least
    for rgb in ((70, 170, 90), (240, 180, 40)):
        near = np.abs(img.astype(int) - np.array(rgb)).sum(-1) < 60
        assert near.sum() > 50, rgb
    printed = capsys.readouterr().out
    assert "IoU input" in printed and "P unobs" in printed
    assert r["input"]["chamfer_m"] is not None and m["settings"]["chamfer"] is True
    # --no-chamfer is honoured with --rgbd too: no chamfer distance, the meshes are still written
    quick = tmp_path / "q"
    assert main(["eval", "completion", "--rgbd", scan, "--checkpoint", ck, "--out", str(quick), "--no-chamfer"]) == 0
    q = json.load(open(quick / f"{name}_metrics.json"))
    assert q["settings"]["chamfer"] is False
    assert q["samples"][name]["input"].get("chamfer_m") is None and q["samples"][name]["prediction"].get("chamfer_m") is None
    assert q["samples"][name]["input"]["iou"] == r["input"]["iou"]
    assert (quick / f"{name}_prediction.ply").is_file()
    with pytest.raises(SystemExit):
        main(["eval", "completion", "--rgbd", scan, "--data", scan, "--checkpoint", ck])
    with pytest.raises(SystemExit, match="--seed, --align-up only apply with --rgbd"):
        main(["eval", "completion", "--data", scan, "--checkpoint", ck, "--seed", "1", "--align-up"])

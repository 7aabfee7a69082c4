"""The ScanNet paper's sliding-window baseline: window extraction, the net's shapes, the ignore label, whole-scene
sliding-window coverage, training on the shared step loop (loss goes down, resume, the checkpoint's task)."""
from __future__ import annotations

import argparse
import os

import numpy as np
import pytest
import torch

from data_tools.chunks import write_crop_dataset
from data_tools.scannet.labels import IGNORE
from sparse3d.tasks.segmentation.benchmark import class_confusion, scores_from_confusion
from sparse3d.tasks.segmentation.sample import SegSample
from sparse3d.tasks.segmentation.window_data import SceneVolume, WindowDataset, augment_windows, window_input
from sparse3d.tasks.segmentation.window_infer import (load_window_model, sliding_window_labels,
                                                      timed_sliding_window_labels)
from sparse3d.tasks.segmentation.window_model import COLUMN_Z, TASK, WindowModelConfig, WindowNet
from sparse3d.tasks.segmentation.window_train import load_config, train, window_loss
from sparse3d.train.checkpoint import load_checkpoint, save_checkpoint

SMALL = {"widths": [4, 8], "hidden": 16, "dropout": 0.0}


def _sample(coords, labels, colors=None, size=(8, 6, 80), origin=(0, 0, 0), known=None) -> SegSample:
    """known: bool [size] camera visibility; None = every cell of the crop seen."""
    coords = np.asarray(coords, np.int32).reshape(-1, 3)
    order = np.lexsort(coords.T[::-1])
    n = len(coords)
    colors = np.full((n, 3), 100, np.uint8) if colors is None else np.asarray(colors, np.uint8)
    known = np.ones(tuple(size), bool) if known is None else known
    return SegSample(scene_id="hand", coords=coords[order], color=colors[order], tsdf=np.zeros(n, np.float32),
                     labels=np.asarray(labels, np.uint8)[order], crop_origin=np.asarray(origin, np.int32),
                     crop_size=np.asarray(size, np.int32), voxel_size=0.05, known=known)


def test_window_extraction_matches_hand_built_scene():
    # three voxels: two in column (2, 3) (z 5 and 9), one in column (7, 0) at z 70 -> second z block
    s = _sample([[2, 3, 5], [2, 3, 9], [7, 0, 70]], [1, 255, 4], [[10, 20, 30], [40, 50, 60], [70, 80, 90]])
    vol = SceneVolume.from_sample(s)
    assert vol.z0 == 5 and vol.blocks == 2  # z 5..70 spans 66 voxels > 62
    assert vol.features.shape == (5, 8 + 30, 6 + 30, 124)
    cols = vol.columns()
    assert cols.tolist() == [[2, 3, 0], [7, 0, 1]]
    assert vol.columns(labelled_only=True).tolist() == [[2, 3, 0], [7, 0, 1]]
    w = vol.windows(cols)
    assert w.shape == (2, 5, 31, 31, 62) and w.dtype == np.uint8
    # column (2, 3): its own voxels at the centre, heights 0 and 4; the other voxel is 5 away in x (another block)
    assert np.argwhere(w[0, 0]).tolist() == [[15, 15, 0], [15, 15, 4]]
    assert w[0, 2:, 15, 15, 0].tolist() == [10, 20, 30] and w[0, 2:, 15, 15, 4].tolist() == [40, 50, 60]
    # column (7, 0, block 1): voxel z 70 -> height 70 - 5 - 62 = 3
    assert np.argwhere(w[1, 0]).tolist() == [[15, 15, 3]]
    # known: inside the 8 x 6 grid (and z < 80 - z0), 0 in the padding around it
    assert w[0, 1, 15 - 2, 15 - 3, 0] == 1 and w[0, 1, 15 - 3, 15, 0] == 0 and w[0, 1, 15, 15 - 4, 0] == 0
    assert w[0, 1, 15 + 5, 15 + 2, 0] == 1 and w[0, 1, 15 + 6, 15, 0] == 0 and w[0, 1, 15, 15 + 3, 0] == 0
    assert w[1, 1, 15, 15, 61] == 0  # volume z 123 = crop z 128 >= 80
    lab = vol.column_labels(cols)
    assert lab[0, 0] == 1 and lab[0, 4] == IGNORE and lab[1, 3] == 4
    assert (np.delete(lab[0], 0) == IGNORE).all()
    x = window_input(w)
    assert x.dtype == torch.float32 and float(x[0, 2, 15, 15, 0]) == pytest.approx(10 / 255)
    # augmentation keeps the centre column (rotations / flips about it)
    a = augment_windows(w, np.random.default_rng(3))
    assert np.array_equal(a[:, :, 15, 15, :], w[:, :, 15, 15, :])


def test_out_of_grid_voxel_is_rejected():
    with pytest.raises(ValueError, match="coords must lie in"):
        SceneVolume.from_sample(_sample([[8, 0, 0]], [0]))


def test_known_channel_is_camera_visibility_plus_occupied_cells():
    # seen: the half x < 4 of the crop; the voxel at (6, 2, 10) lies in the unseen half but is occupied
    known = np.zeros((8, 6, 80), bool)
    known[:4] = True
    vol = SceneVolume.from_sample(_sample([[2, 3, 5], [6, 2, 10]], [1, 2], known=known))
    k = vol.features[1, 15:-15, 15:-15]  # volume z = crop z - 5
    assert k[:4, :, :75].all() and k[6, 2, 5] == 1
    assert k[4:].sum() == 1  # the occupied cell only
    assert vol.features[1, :15].sum() == 0 and vol.features[1, -15:].sum() == 0  # padding unknown
    # a box of the sample keeps the mask, cells outside the crop unknown
    b = _sample([[2, 3, 5]], [1], known=known).box([2, -1, 0], [4, 4, 80])
    assert b.known.shape == (4, 4, 80) and not b.known[:, 0].any()
    assert b.known[:2, 1:].all() and not b.known[2:].any()
    with pytest.raises(ValueError, match=r"'hand' has no camera-visibility mask.*known='visibility'"):
        SceneVolume.from_sample(SegSample("hand", np.zeros((1, 3), np.int32), np.zeros((1, 3), np.uint8),
                                          np.zeros(1, np.float32), np.zeros(1, np.uint8), np.zeros(3, np.int32),
                                          np.array([8, 6, 80], np.int32), 0.05))
    with pytest.raises(ValueError, match=r"known must be bool \[crop_size=\[8, 6, 80\]\], got shape \[8, 6, 79\]"):
        SceneVolume.from_sample(_sample([[2, 3, 5]], [1], known=np.ones((8, 6, 79), bool)))


def test_net_output_shape_and_input_check():
    torch.manual_seed(0)
    net = WindowNet(WindowModelConfig(**SMALL))
    assert net(torch.zeros(2, 5, 31, 31, 62)).shape == (2, 20, 62)
    with pytest.raises(ValueError, match=r"x must be \[B, 5, 31, 31, 62\]"):
        net(torch.zeros(2, 5, 31, 31, 64))
    with pytest.raises(ValueError, match="widths"):
        WindowModelConfig(widths=[])


def test_loss_ignores_label_255():
    torch.manual_seed(0)
    logits = torch.randn(3, 20, 62, requires_grad=True)
    labels = torch.full((3, 62), IGNORE, dtype=torch.long)
    labels[0, 5], labels[2, 7] = 3, 11
    loss, logs = window_loss(logits, labels)
    ref = (torch.nn.functional.cross_entropy(logits[0, :, 5][None], labels[0, 5][None])
           + torch.nn.functional.cross_entropy(logits[2, :, 7][None], labels[2, 7][None])) / 2
    assert float(loss.detach()) == pytest.approx(float(ref.detach()), rel=1e-5)
    loss.backward()
    grad = logits.grad.clone()
    grad[0, :, 5] = 0
    grad[2, :, 7] = 0
    assert float(grad.abs().max()) == 0.0  # ignored cells get no gradient
    empty, logs = window_loss(logits, torch.full((3, 62), IGNORE, dtype=torch.long))
    assert float(empty.detach()) == 0.0 and logs["loss"] == 0.0


class _ColourOracle(torch.nn.Module):
    """Reads each window's centre column: class = red channel * 255 where occupied; counts windows and
    occupied centre cells seen."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.windows = 0
        self.cells = 0

    def forward(self, x):
        centre = x[:, :, 15, 15, :]  # [B, 5, 62]
        self.windows += len(x)
        self.cells += int(centre[:, 0].sum())
        cls = torch.round(centre[:, 2] * 255).long().clamp(0, 19)
        return torch.nn.functional.one_hot(cls, 20).permute(0, 2, 1).float() + self.w


def test_sliding_window_covers_every_voxel_exactly_once():
    rng = np.random.default_rng(0)
    size = (12, 9, 150)  # three 62-voxel blocks
    allc = np.stack(np.meshgrid(*[np.arange(s) for s in size], indexing="ij"), -1).reshape(-1, 3)
    coords = allc[rng.choice(len(allc), 600, replace=False)]
    coords[0] = (0, 0, 3)
    coords[1] = (11, 8, 149)
    truth = rng.integers(0, 20, len(coords)).astype(np.uint8)
    colors = np.stack([truth, truth, truth], 1)
    s = _sample(coords, truth, colors, size=size)
    net = _ColourOracle()
    pred = sliding_window_labels(net, s, batch=7)
    assert pred.dtype == np.uint8 and pred.shape == (600,)
    assert np.array_equal(pred, s.labels)  # each voxel got the cell of its own column
    cols = SceneVolume.columns_of(s.coords, int(s.coords[:, 2].min()))
    assert net.windows == len(cols)  # one window per column holding a voxel
    assert net.cells == 600  # every voxel seen at a window centre exactly once
    labels, cost = timed_sliding_window_labels(net, s, batch=64)
    assert np.array_equal(labels, pred) and cost["columns"] == len(cols) and cost["blocks"] == 3
    assert cost["seconds"] >= 0 and cost["voxels"] == 600
    assert scores_from_confusion(class_confusion(pred, s.labels)).miou == 1.0
    empty = _sample(np.zeros((0, 3)), np.zeros(0))
    assert sliding_window_labels(net, empty).shape == (0,)


def _scene_crop(seed: int) -> dict:
    """A small labelled scene: floor (1) at z=1, a wall (0) at x=0, a red box (5) on the floor."""
    rng = np.random.default_rng(seed)
    size = np.array([18, 16, 20], np.int32)
    vox, lab, col = [], [], []
    for x in range(size[0]):
        for y in range(size[1]):
            vox.append((x, y, 1)), lab.append(1), col.append((120, 120, 120))
    for y in range(size[1]):
        for z in range(2, 16):
            vox.append((0, y, z)), lab.append(0), col.append((200, 200, 180))
    bx, by = rng.integers(4, 12, 2)
    for x in range(bx, bx + 4):
        for y in range(by, by + 3):
            for z in (2, 3, 4, 5):
                vox.append((x, y, z)), lab.append(5), col.append((200, 30, 30))
    c = np.array(vox, np.int32)
    _, keep = np.unique(c, axis=0, return_index=True)
    c, lab, col = c[keep], np.array(lab, np.uint8)[keep], np.array(col, np.uint8)[keep]
    lab[rng.random(len(lab)) < 0.1] = IGNORE
    n = len(c)
    mask = np.zeros(tuple(size), bool)
    seen = np.ones(tuple(size), bool)
    return {"scene_id": np.array(f"toy{seed}"), "crop_origin": np.zeros(3, np.int32), "crop_size": size,
            "voxel_size": np.float32(0.05), "trunc_voxels": np.float32(3.0), "n_levels": np.int32(1),
            "has_labels": np.bool_(True), "format_version": np.int32(2), "known_semantics": np.array("visibility"),
            "input_coords": c, "input_tsdf": np.zeros(n, np.float32), "input_weight": np.ones(n, np.float32),
            "input_color": col, "input_known": seen, "input_behind": mask,
            "target_coords": c, "target_tsdf": np.zeros(n, np.float32), "target_nyu40": np.zeros(n, np.uint8),
            "target_scannet20": lab, "target_known": seen, "target_behind": mask}


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("toy_crops"))
    write_crop_dataset(root, [_scene_crop(0), _scene_crop(1)], split="train")
    return root


def _cfg(data, out, steps, **kw):
    return load_config(None, {"data": data, "out": out, "steps": steps, "batch_size": 8, "lr": 3e-3, "threads": 1,
                              "augment": False, "checkpoint_every": 3, "lr_decay_at": [], "model": SMALL, **kw})


def _fixed_batch_loss(net, data):
    ds = WindowDataset(data, "train")
    wins, labels = ds.batch(np.arange(0, len(ds), max(1, len(ds) // 32)))
    net.eval()
    with torch.no_grad():
        return float(window_loss(net(window_input(wins)), torch.from_numpy(labels))[0])


def test_training_reduces_loss_and_writes_the_task(toy_data, tmp_path):
    out = str(tmp_path / "run")
    torch.manual_seed(0)
    before = _fixed_batch_loss(WindowNet(WindowModelConfig(**SMALL)), toy_data)
    train(_cfg(toy_data, out, 15, checkpoint_every=15), progress=False)
    net, cfg = load_window_model(os.path.join(out, "last.pt"))
    after = _fixed_batch_loss(net, toy_data)
    assert after < 0.7 * before, (before, after)
    state = load_checkpoint(os.path.join(out, "last.pt"))
    assert state["task"] == TASK and state["step"] == 15 and state["data"]["voxel_size"] == pytest.approx(0.05)
    assert os.path.isfile(os.path.join(out, "loss.png")) and cfg.model.widths == SMALL["widths"]
    # whole-scene inference with the trained net labels every voxel of a scene
    s = WindowDataset(toy_data, "train").samples[0]
    pred = sliding_window_labels(net, s, batch=16)
    assert pred.shape == (len(s),) and pred.max() < 20


def test_resume_continues_exactly(toy_data, tmp_path):
    straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
    train(_cfg(toy_data, straight, 6), progress=False)
    train(_cfg(toy_data, resumed, 3), progress=False)
    assert load_checkpoint(os.path.join(resumed, "last.pt"))["step"] == 3
    train(_cfg(toy_data, resumed, 6), progress=False)
    a = load_checkpoint(os.path.join(straight, "last.pt"))
    b = load_checkpoint(os.path.join(resumed, "last.pt"))
    assert b["step"] == 6
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


def test_checkpoint_task_is_checked(toy_data, tmp_path):
    path = str(tmp_path / "other.pt")
    save_checkpoint(path, {"model": {}, "config": {}, "step": 0}, "segmentation")
    with pytest.raises(ValueError, match="written by task 'segmentation', expected a 'segmentation-window'"):
        load_window_model(path)
    out = str(tmp_path / "run")
    os.makedirs(out)
    save_checkpoint(os.path.join(out, "last.pt"), {"model": {}, "optimizer": {}, "step": 1, "config": {}},
                    "completion")
    with pytest.raises(ValueError, match="expected a 'segmentation-window' checkpoint"):
        train(_cfg(toy_data, out, 2), progress=False)


def test_config_and_cli_errors(toy_data, tmp_path):
    with pytest.raises(ValueError, match=r"unknown config keys \['bogus'\]"):
        load_config(None, {"bogus": 1})
    with pytest.raises(ValueError, match="split must be one of"):
        WindowDataset(toy_data, "val")
    with pytest.raises(ValueError, match="manifest.json"):
        WindowDataset(str(tmp_path))
    from sparse3d.tasks.segmentation.window_cli import register_train
    from sparse3d.utils.argtypes import HelpFormatter
    ap = argparse.ArgumentParser(formatter_class=HelpFormatter)
    register_train(ap.add_subparsers(dest="task"))
    args = ap.parse_args(["segmentation-window", "--data", toy_data, "--out", str(tmp_path / "cli"), "--steps", "2",
                          "--batch-size", "4", "--threads", "1", "--augment", "off"])
    assert args.func(args) == 0
    assert load_checkpoint(str(tmp_path / "cli" / "last.pt"))["config"]["augment"] is False
    with pytest.raises(SystemExit):
        ap.parse_args(["segmentation-window", "--steps", "0"])

"""Validation during completion training: val.jsonl every val_every steps, best.pt = the weights of the
best-scoring step (written by the shared step loop), kept across a resume, and the loss plot's val panel."""
import json
import os

import pytest
import torch
from PIL import Image

from data_tools import load_manifest
from sparse3d.tasks.completion.config import load_config
from sparse3d.tasks.completion.train import train
from sparse3d.train.checkpoint import load_checkpoint, save_checkpoint
from sparse3d.train.jsonl import read_jsonl
from sparse3d.train.loop import is_better
from sparse3d.utils.atomic_io import atomic_write_json

from _completion_fixtures import write_tiny_dataset

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

TINY = {"model": {"channels": [4, 8, 8], "grow_steps": 1}, "batch_size": 2, "lr_decay_at": [], "threads": 1,
        "checkpoint_every": 2, "val_every": 1, "val_crops": 2}


@pytest.fixture(scope="module")
def split_data(tmp_path_factory):
    """6 procedural crops: 4 in the train split, 2 in the val split."""
    root = write_tiny_dataset(str(tmp_path_factory.mktemp("val")), n=6)
    m = load_manifest(root)
    names = m["splits"]["train"]
    m["splits"]["train"], m["splits"]["val"] = names[:4], names[4:]
    atomic_write_json(os.path.join(root, "manifest.json"), m)
    return root


def _cfg(data, out, steps, **kw):
    return load_config(None, {**TINY, "data": data, "out": str(out), "steps": steps, **kw})


def _scores(out):
    """The val.jsonl rows without their timing."""
    return [{k: v for k, v in r.items() if k != "time_s"} for r in read_jsonl(str(out / "val.jsonl"))]


def _same_weights(a, b):
    assert set(a) == set(b)
    for k, v in a.items():
        torch.testing.assert_close(b[k], v, rtol=0, atol=0, msg=k)


@pytest.fixture(scope="module")
def straight(split_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    train(_cfg(split_data, out, 4), progress=False)
    return out


def test_best_checkpoint_is_the_best_scoring_step(split_data, straight, tmp_path):
    val = read_jsonl(str(straight / "val.jsonl"))
    assert [r["step"] for r in val] == [1, 2, 3, 4]
    for r in val:
        assert 0 <= r["iou"] <= 1 and r["chamfer_vox"] >= 0 and r["iou_input"] == val[0]["iou_input"]
        assert r["time_s"] > 0
    best_step = max(val, key=lambda r: (r["iou"], -r["step"]))["step"]  # ties: the earlier step
    best = load_checkpoint(str(straight / "best.pt"))
    assert best["step"] == best_step and best["best"]["score"] == pytest.approx(val[best_step - 1]["iou"])
    assert best["val"]["step"] == best_step and best["best"]["key"] == "iou"
    assert load_checkpoint(str(straight / "last.pt"))["best"] == best["best"]
    # the same seeded run stopped at the best step has exactly best.pt's weights
    train(_cfg(split_data, tmp_path / "to_best", best_step), progress=False)
    _same_weights(load_checkpoint(str(tmp_path / "to_best" / "last.pt"))["model"], best["model"])


def test_validation_does_not_change_training(split_data, straight, tmp_path):
    train(_cfg(split_data, tmp_path / "noval", 4, val_every=0), progress=False)
    _same_weights(load_checkpoint(str(straight / "last.pt"))["model"],
                  load_checkpoint(str(tmp_path / "noval" / "last.pt"))["model"])
    assert not (tmp_path / "noval" / "best.pt").exists() and not (tmp_path / "noval" / "val.jsonl").exists()


def test_resume_keeps_the_best_score(split_data, straight, tmp_path):
    out = tmp_path / "r"
    train(_cfg(split_data, out, 2), progress=False)
    train(_cfg(split_data, out, 4), progress=False)  # resumed: the same val rows and best.pt as the straight run
    assert _scores(out) == _scores(straight)
    _same_weights(load_checkpoint(str(straight / "best.pt"))["model"], load_checkpoint(str(out / "best.pt"))["model"])
    # a resumed run compares with the best score its checkpoint records: one no score can beat stays
    out2 = tmp_path / "r2"
    train(_cfg(split_data, out2, 2), progress=False)
    state = load_checkpoint(str(out2 / "last.pt"))
    state["best"] = {"step": 1, "key": "iou", "score": 2.0}
    save_checkpoint(str(out2 / "last.pt"), state, "completion")
    before = load_checkpoint(str(out2 / "best.pt"))
    train(_cfg(split_data, out2, 4), progress=False)
    after = load_checkpoint(str(out2 / "best.pt"))
    assert after["step"] == before["step"] and load_checkpoint(str(out2 / "last.pt"))["best"]["score"] == 2.0


def test_loss_plot_has_the_validation_panel(straight, tmp_path):
    # two panels (training losses, validation) of 4.5 x 3.2 inches at 90 dpi
    assert Image.open(straight / "loss.png").size == (810, 288)
    rows = read_jsonl(str(straight / "metrics.jsonl"))
    assert all("iou" not in r for r in rows)  # validation rows live in val.jsonl only


def test_no_val_split_says_so(tmp_path, capsys):
    data = write_tiny_dataset(str(tmp_path / "d"), n=2)
    train(_cfg(data, tmp_path / "o", 1), progress=False)
    assert "has no val split: no validation and no best.pt" in capsys.readouterr().err
    assert not (tmp_path / "o" / "best.pt").exists()


def test_is_better():
    assert is_better(0.5, None, True) and not is_better(float("nan"), None, True)
    assert is_better(0.6, {"score": 0.5}, True) and not is_better(0.5, {"score": 0.5}, True)
    assert is_better(0.4, {"score": 0.5}, False) and not is_better(0.6, {"score": 0.5}, False)
    with pytest.raises(ValueError, match="val_every must be >= 0"):
        load_config(None, {"val_every": -1})
    assert json.loads(json.dumps(TINY))  # the test config is plain data

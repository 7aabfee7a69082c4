"""`sparse3d train segmentation`: the step loop on a tiny dataset of procedural rooms, resume, checkpoints,
the held-out metrics, the command line, DDP under torchrun and mixed precision."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from data_tools.chunks import write_crop_dataset
from sparse3d.tasks.segmentation import train as seg_train
from sparse3d.tasks.segmentation.checkpoint import load_model
from sparse3d.tasks.segmentation.config import SegmentationModelConfig, load_config
from sparse3d.tasks.segmentation.model import SegmentationUNet, predict_labels
from sparse3d.tasks.segmentation.sample import load_sample
from sparse3d.tasks.segmentation.train import train
from sparse3d.train.checkpoint import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {"model": {"widths": [8, 16], "in_features": ["color", "height"]}, "batch_size": 2, "box": [12, 12, 12],
        "checkpoint_every": 3, "threads": 1, "lr": 0.01}
PALETTE = np.array([[200, 200, 190], [120, 100, 80], [60, 90, 140], [150, 60, 60]], np.float64)


def room_crop(seed: int) -> dict:
    """A crop (sparse3d.crops keys) of a procedural room: floor (class 1), two walls (0), a table (6) and a
    chair (4) at seeded places, colours by class with noise."""
    rng = np.random.default_rng(seed)
    n, h = 20, 12
    vox = {}
    for x in range(n):
        for y in range(n):
            vox[(x, y, 0)] = 1
    for a in range(n):
        for z in range(1, h):
            vox[(0, a, z)] = 0
            vox[(a, 0, z)] = 0
    for cls, (w, hh) in ((6, (4, 4)), (4, (2, 3))):
        x0, y0 = rng.integers(3, n - 5, 2)
        for x in range(x0, x0 + w):
            for y in range(y0, y0 + w):
                for z in range(1, hh + 1):
                    vox[(int(x), int(y), z)] = cls
    coords = np.array(sorted(vox), np.int32)
    labels = np.array([vox[tuple(c)] for c in coords], np.uint8)
    pal = {0: PALETTE[0], 1: PALETTE[1], 6: PALETTE[2], 4: PALETTE[3]}
    color = np.clip(np.array([pal[int(c)] for c in labels]) + rng.normal(0, 6, (len(coords), 3)), 0, 255)
    return {"format_version": np.int32(2), "scene_id": np.array(f"room{seed:02d}"),
            "crop_origin": np.zeros(3, np.int32), "crop_size": np.array([n, n, h], np.int32),
            "voxel_size": np.float32(0.05), "trunc_voxels": np.float32(3.0), "n_levels": np.int32(1),
            "has_labels": np.array(True), "known_semantics": np.array("fused"),
            "input_coords": coords, "input_tsdf": np.zeros(len(coords), np.float32),
            "input_weight": np.ones(len(coords), np.float32), "input_color": color.astype(np.uint8),
            "target_coords": coords, "target_tsdf": np.zeros(len(coords), np.float32),
            "target_nyu40": np.zeros(len(coords), np.uint8), "target_scannet20": labels}


@pytest.fixture(scope="module")
def rooms(tmp_path_factory):
    root = tmp_path_factory.mktemp("rooms")
    write_crop_dataset(str(root / "train"), [room_crop(s) for s in range(4)], split="train")
    write_crop_dataset(str(root / "val"), [room_crop(s) for s in (10, 11)], split="val")
    return str(root / "train"), str(root / "val")


def _cfg(rooms, out, steps, **kw):
    return load_config(None, {**TINY, "data": rooms[0], "val_data": rooms[1], "out": str(out), "steps": steps, **kw})


def _rows(out):
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_default_config_file_matches_dataclass():
    cfg = load_config(os.path.join(REPO, "configs", "segmentation_default.yaml"))
    assert cfg.to_dict() == load_config(None).to_dict()


def test_training_decreases_loss_and_writes_held_out_metrics(rooms, tmp_path):
    out = tmp_path / "run"
    logs = train(_cfg(rooms, out, 40, box=[0, 0, 0], class_weighting="median_freq"), progress=False)
    rows = _rows(out)
    assert [r["step"] for r in rows] == list(range(40))
    first = np.mean([r["loss"] for r in rows[:5]])
    last = np.mean([r["loss"] for r in rows[-5:]])
    assert last < 0.5 * first, (first, last)
    assert {"loss", "miou", "acc", "lr", "voxels"} <= set(rows[-1])
    m = json.load(open(out / "metrics.json"))
    assert set(m["scenes"]) == {"room10", "room11"}
    assert logs["val_miou"] == m["miou"] and m["miou"] > 0.5
    present = [m["class_names"][c] for c in m["present"]]
    assert sorted(present) == sorted(["wall", "floor", "chair", "table"])
    assert np.asarray(m["confusion"]).sum() == m["voxels"]
    assert os.path.isfile(out / "loss.png")
    state = load_checkpoint(str(out / "last.pt"), task="segmentation")
    w, counts = np.asarray(state["data"]["class_weights"]), np.asarray(state["data"]["label_counts"])
    f = counts / counts.sum()
    present = [0, 1, 4, 6]
    np.testing.assert_allclose(w[present], np.median(f[present]) / f[present], rtol=1e-6)
    assert np.all(w[counts == 0] == 0) and (counts[present] > 0).all()


def test_resume_gives_the_same_weights(rooms, tmp_path, monkeypatch):
    straight = tmp_path / "straight"
    train(_cfg(rooms, straight, 6, eval_at_end=False), progress=False)
    broken = tmp_path / "broken"
    real_collate = seg_train.collate
    calls = []

    def interrupt_at_step_4(items):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real_collate(items)

    monkeypatch.setattr(seg_train, "collate", interrupt_at_step_4)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(rooms, broken, 6, eval_at_end=False), progress=False)
    assert load_checkpoint(str(broken / "last.pt"))["step"] == 4
    monkeypatch.setattr(seg_train, "collate", real_collate)
    train(_cfg(rooms, broken, 6, eval_at_end=False), progress=False)
    a = load_checkpoint(str(straight / "last.pt"))
    b = load_checkpoint(str(broken / "last.pt"))
    assert a["step"] == b["step"] == 6
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    assert [r["loss"] for r in _rows(straight)] == [r["loss"] for r in _rows(broken)]


def test_load_model_round_trip(rooms, tmp_path):
    out = tmp_path / "run"
    cfg = _cfg(rooms, out, 2, eval_at_end=False)
    train(cfg, progress=False)
    net, model_cfg = load_model(str(out / "last.pt"))
    assert isinstance(net, SegmentationUNet) and not net.training
    assert model_cfg.widths == (8, 16) and model_cfg.voxel_size == pytest.approx(0.05)
    state = load_checkpoint(str(out / "last.pt"))
    for k, v in net.state_dict().items():
        assert torch.equal(v, state["model"][k]), k
    s = load_sample(os.path.join(rooms[1], "room10", os.listdir(os.path.join(rooms[1], "room10"))[0]))
    lab = predict_labels(net, s, model_cfg)
    assert lab.shape == (len(s),) and lab.dtype == np.uint8


def test_load_model_refuses_other_tasks_and_mismatched_weights(rooms, tmp_path):
    from sparse3d.train.checkpoint import save_checkpoint
    net = SegmentationUNet(SegmentationModelConfig(widths=(4,)))
    p = str(tmp_path / "c.pt")
    save_checkpoint(p, {"model": net.state_dict(), "config": {}}, "completion")
    with pytest.raises(ValueError, match="written by task 'completion', expected a 'segmentation'"):
        load_model(p)
    save_checkpoint(p, {"model": net.state_dict(), "config": {"model": {"widths": [8]}}}, "segmentation")
    with pytest.raises(ValueError, match="weights do not fit the network"):
        load_model(p)


def test_training_refuses_a_voxel_size_mismatch(rooms, tmp_path):
    with pytest.raises(ValueError, match=r"voxel size \(0.05.* differs from the config's model.voxel_size \(0.04"):
        train(_cfg(rooms, tmp_path / "r", 1, model={"widths": [8], "voxel_size": 0.04}), progress=False)


def test_cli_trains_and_bad_values_exit_2(rooms, tmp_path, capsys):
    import argparse

    from sparse3d.tasks.segmentation.cli import register_train
    from sparse3d.utils.argtypes import polish_help
    parser = argparse.ArgumentParser(prog="sparse3d")
    sub = parser.add_subparsers(dest="command")
    tsub = sub.add_parser("train").add_subparsers(dest="task")
    register_train(tsub)
    polish_help(parser)
    out = tmp_path / "cli"
    args = parser.parse_args(["train", "segmentation", "--data", rooms[0], "--val-data", rooms[1], "--out", str(out),
                              "--steps", "2", "--batch-size", "2", "--widths", "8,8", "--box", "12,12,12",
                              "--in-features", "color", "--threads", "1", "--rotate", "right", "--norm", "batch"])
    assert args.func(args) == 0
    assert "held-out mIoU" in capsys.readouterr().out
    cfg = json.load(open(out / "config.json"))
    assert cfg["model"]["widths"] == [8, 8] and cfg["box"] == [12, 12, 12] and cfg["rotate"] == "right"
    assert cfg["model"]["norm"] == "batch"
    # the defaults: whole scenes, one per batch, each normalised over its own voxels
    out = tmp_path / "cli_whole"
    args = parser.parse_args(["train", "segmentation", "--data", rooms[0], "--val-data", rooms[1], "--out", str(out),
                              "--steps", "2", "--widths", "8,8", "--in-features", "color", "--threads", "1"])
    assert args.func(args) == 0
    assert "held-out mIoU" in capsys.readouterr().out
    cfg = json.load(open(out / "config.json"))
    assert cfg["model"]["norm"] == "sample" and cfg["box"] == [0, 0, 0] and cfg["batch_size"] == 1
    from sparse3d.tasks.segmentation.checkpoint import load_model
    model, model_cfg = load_model(str(out / "last.pt"))
    assert model_cfg.norm == "sample" and not any("running" in k for k in model.state_dict())
    for bad in (["--box", "4,4,4"], ["--widths", "8,x"], ["--in-features", "rgb"], ["--class-weighting", "yes"],
                ["--norm", "layer"]):
        with pytest.raises(SystemExit) as e:
            parser.parse_args(["train", "segmentation", "--data", rooms[0], *bad])
        assert e.value.code == 2


# DDP under torchrun (two gloo processes on the CPU) and mixed precision (--amp bf16 | fp16 on the CPU)

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("norm", ["sample", "batch"])
def test_ddp_two_gloo_processes_keep_identical_weights(rooms, tmp_path, norm):
    """Two processes, one whole room each per step (global batch 2): after 3 steps both replicas hold the same
    weights (the loop's replica digests), the checkpoint is at step 3 and the held-out metrics are written once."""
    out = tmp_path / "ddp"
    (tmp_path / "tiny.yaml").write_text(json.dumps({"model": {**TINY["model"], "norm": norm}, "lr": 0.01}))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           "-m", "sparse3d.cli", "train", "segmentation", "--data", rooms[0], "--val-data", rooms[1],
           "--out", str(out), "--steps", "3", "--batch-size", "2", "--threads", "1",
           "--config", str(tmp_path / "tiny.yaml")]
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    d0 = json.load(open(out / "replica_rank0.json"))
    d1 = json.load(open(out / "replica_rank1.json"))
    assert d0["digest"] == d1["digest"] and d0["step"] == d1["step"] == 3
    state = load_checkpoint(str(out / "last.pt"), task="segmentation")
    assert state["step"] == 3 and state["config"]["model"]["norm"] == norm
    rows = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert [row["step"] for row in rows] == [0, 1, 2]  # one line per step, from process 0 only
    m = json.load(open(out / "metrics.json"))
    assert set(m["scenes"]) == {"room10", "room11"} and 0 <= m["miou"] <= 1
    assert not [f for f in os.listdir(out) if ".tmp" in f]


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_trains_resumes_and_keeps_float32_weights(rooms, tmp_path, amp):
    """--amp on the CPU: the forward runs in the half type (the weights differ from a float32 run), the
    weights and the checkpoint stay float32, fp16 checkpoints its gradient scaler, and a run stopped at step 2
    resumes to the weights of a straight run (a constant learning rate: the cosine schedule is a function of
    ``steps``, which the two halves set differently)."""
    kw = {"box": [0, 0, 0], "batch_size": 1, "eval_at_end": False, "amp": amp, "lr_schedule": "constant"}
    train(_cfg(rooms, tmp_path / "a", 4, **kw), progress=False)
    rows = [json.loads(line) for line in open(tmp_path / "a" / "metrics.jsonl")]
    assert len(rows) == 4 and all(np.isfinite(row["loss"]) for row in rows)
    ref = load_checkpoint(str(tmp_path / "a" / "last.pt"), task="segmentation")
    assert ("scaler" in ref) == (amp == "fp16") and ref["config"]["amp"] == amp
    assert all(v.dtype == torch.float32 for v in ref["model"].values() if v.is_floating_point())
    train(_cfg(rooms, tmp_path / "b", 2, **kw), progress=False)
    train(_cfg(rooms, tmp_path / "b", 4, **kw), progress=False)
    got = load_checkpoint(str(tmp_path / "b" / "last.pt"), task="segmentation")
    for k, v in ref["model"].items():
        torch.testing.assert_close(got["model"][k], v, rtol=1e-5, atol=1e-6, msg=k)
    train(_cfg(rooms, tmp_path / "c", 4, **{**kw, "amp": "off"}), progress=False)
    f32 = load_checkpoint(str(tmp_path / "c" / "last.pt"), task="segmentation")["model"]
    assert any(not torch.equal(f32[k], v) for k, v in ref["model"].items() if v.is_floating_point())

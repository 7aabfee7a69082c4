"""`sparse3d train segmentation` under torchrun (two gloo processes on the CPU) and with mixed precision
(``--amp bf16 | fp16`` on the CPU): the two paths of the shared trainer that tests/test_segmentation_train.py
leaves out. The rooms are that file's procedural rooms."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from data_tools.chunks import write_crop_dataset
from sparse3d.tasks.segmentation.config import load_config
from sparse3d.tasks.segmentation.train import train
from sparse3d.train.checkpoint import load_checkpoint

from test_segmentation_train import TINY, room_crop

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def rooms(tmp_path_factory):
    root = tmp_path_factory.mktemp("rooms_ddp_amp")
    write_crop_dataset(str(root / "train"), [room_crop(s) for s in range(4)], split="train")
    write_crop_dataset(str(root / "val"), [room_crop(s) for s in (10, 11)], split="val")
    return str(root / "train"), str(root / "val")


def _cfg(rooms, out, steps, **kw):
    return load_config(None, {**TINY, "data": rooms[0], "val_data": rooms[1], "out": str(out), "steps": steps, **kw})


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

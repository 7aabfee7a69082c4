import json
import os
import subprocess
import sys

import pytest
import torch

from sparse3d.train.checkpoint import load_checkpoint, load_model
from sparse3d.train.config import load_config
from sparse3d.train.loop import params_digest, train

from _completion_fixtures import write_tiny_dataset

import pytest as _pytest
from _completion_fixtures import one_thread


@_pytest.fixture(autouse=True)
def _one_thread():
    yield from one_thread()

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {"channels": [4, 8, 8], "grow_steps": 1, "batch_size": 2, "lr_decay_at": [], "checkpoint_every": 2}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return write_tiny_dataset(str(tmp_path_factory.mktemp("tiny")))


def _cfg(data, out, steps, **kw):
    return load_config(None, {**TINY, "data": data, "out": str(out), "steps": steps, **kw})


def test_default_config_file_matches_dataclass():
    cfg = load_config(os.path.join(REPO, "configs", "completion_default.yaml"))
    assert cfg == load_config(None, {"data": "", "out": "runs/completion"})
    with pytest.raises(ValueError, match="unknown config keys"):
        load_config(None, {"stepz": 3})


def test_train_writes_metrics_plot_checkpoint_and_resumes_exactly(tiny_data, tmp_path):
    train(_cfg(tiny_data, tmp_path / "a", 4), progress=False)
    ref = load_checkpoint(str(tmp_path / "a" / "last.pt"))
    assert ref["step"] == 4
    rows = [json.loads(l) for l in open(tmp_path / "a" / "metrics.jsonl")]
    assert [r["step"] for r in rows] == [0, 1, 2, 3] and all(r["loss"] > 0 for r in rows)
    assert os.path.getsize(tmp_path / "a" / "loss.png") > 1000
    # interrupted after 2 steps, then resumed to 4: the same weights as the straight run
    train(_cfg(tiny_data, tmp_path / "b", 2), progress=False)
    train(_cfg(tiny_data, tmp_path / "b", 4), progress=False)
    got = load_checkpoint(str(tmp_path / "b" / "last.pt"))
    for k, v in ref["model"].items():
        torch.testing.assert_close(got["model"][k], v, rtol=1e-5, atol=1e-6, msg=k)
    assert len(open(tmp_path / "b" / "metrics.jsonl").readlines()) == 4
    net, cfg = load_model(str(tmp_path / "b" / "last.pt"))
    assert cfg.channels == [4, 8, 8] and not net.training


def test_seeded_runs_are_identical(tiny_data, tmp_path):
    train(_cfg(tiny_data, tmp_path / "x", 2), progress=False)
    train(_cfg(tiny_data, tmp_path / "y", 2), progress=False)
    a, b = (load_model(str(tmp_path / d / "last.pt"))[0] for d in ("x", "y"))
    assert params_digest(a) == params_digest(b)


def test_ddp_two_gloo_processes_stay_identical(tiny_data, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "sparse3d.cli", "train", "completion", "--data", tiny_data, "--out", str(out), "--steps", "3",
           "--batch-size", "2", "--threads", "1", "--config", str(tmp_path / "tiny.yaml")]
    import yaml
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump({k: v for k, v in TINY.items() if k != "batch_size"}))
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    d0 = json.load(open(out / "replica_rank0.json"))
    d1 = json.load(open(out / "replica_rank1.json"))
    assert d0["digest"] == d1["digest"] and d0["step"] == 3
    assert load_checkpoint(str(out / "last.pt"))["step"] == 3


def test_cli_train_predict_eval(tiny_data, tmp_path):
    from sparse3d.cli import main
    out = tmp_path / "run"
    import yaml
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(TINY))
    assert main(["train", "completion", "--config", str(tmp_path / "c.yaml"), "--data", tiny_data,
                 "--out", str(out), "--steps", "2"]) == 0
    ck = str(out / "last.pt")
    assert main(["predict", "--checkpoint", ck, "--input", os.path.join(tiny_data, "tiny00.npz"),
                 "--out", str(tmp_path / "pred")]) == 0
    for f in ("tiny00_input.ply", "tiny00_target.ply", "tiny00_prediction_grid.npz", "tiny00_metrics.json"):
        assert (tmp_path / "pred" / f).is_file(), f
    m = json.load(open(tmp_path / "pred" / "tiny00_metrics.json"))
    assert 0 <= m["prediction"]["iou"] <= 1 and 0 < m["input"]["iou"] <= 1
    assert main(["eval", "--checkpoint", ck, "--data", tiny_data, "--json", str(tmp_path / "m.json")]) == 0
    assert len(json.load(open(tmp_path / "m.json"))) == 4

import json
import os
import signal
import socket
import subprocess
import sys

import pytest
import torch

from sparse3d.tasks.completion import train as completion_train
from sparse3d.tasks.completion.checkpoint import load_model
from sparse3d.tasks.completion.config import load_config
from sparse3d.tasks.completion.train import train
from sparse3d.train import jsonl, plots
from sparse3d.train.checkpoint import load_checkpoint
from sparse3d.train.loop import params_digest

from _completion_fixtures import crop_paths, write_tiny_dataset

import pytest as _pytest

pytestmark = _pytest.mark.usefixtures("one_thread")  # tests/conftest.py

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {"model": {"channels": [4, 8, 8], "grow_steps": 1}, "batch_size": 2, "lr_decay_at": [], "checkpoint_every": 2,
        "threads": 1}  # one thread whatever the fixture order: runs compared bit for bit use the same one


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
    assert cfg.model.channels == (4, 8, 8) and not net.training


def test_seeded_runs_are_identical(tiny_data, tmp_path):
    train(_cfg(tiny_data, tmp_path / "x", 2), progress=False)
    train(_cfg(tiny_data, tmp_path / "y", 2), progress=False)
    a, b = (load_model(str(tmp_path / d / "last.pt"))[0] for d in ("x", "y"))
    assert params_digest(a) == params_digest(b)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_gloo_processes_stay_identical(tiny_data, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
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
    assert not [f for f in os.listdir(out) if ".tmp" in f]  # replica files written via temp + os.replace


def test_cli_train_predict_eval(tiny_data, tmp_path):
    from sparse3d.cli import main
    out = tmp_path / "run"
    import yaml
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(TINY))
    assert main(["train", "completion", "--config", str(tmp_path / "c.yaml"), "--data", tiny_data,
                 "--out", str(out), "--steps", "2"]) == 0
    ck = str(out / "last.pt")
    first = crop_paths(tiny_data)[0]
    name = os.path.splitext(os.path.basename(first))[0]
    assert main(["predict", "completion", "--checkpoint", ck, "--input", first, "--out", str(tmp_path / "pred")]) == 0
    for f in ("_input.ply", "_target.ply", "_prediction_grid.npz", "_metrics.json"):
        assert (tmp_path / "pred" / (name + f)).is_file(), name + f
    m = json.load(open(tmp_path / "pred" / f"{name}_metrics.json"))
    assert 0 <= m["prediction"]["iou"] <= 1 and 0 < m["input"]["iou"] <= 1
    assert main(["eval", "completion", "--checkpoint", ck, "--data", tiny_data, "--json", str(tmp_path / "m.json")]) == 0
    assert len(json.load(open(tmp_path / "m.json"))["samples"]) == 4
    # a dataset folder as --input: every crop predicted
    assert main(["predict", "completion", "--checkpoint", ck, "--input", tiny_data, "--out", str(tmp_path / "all")]) == 0
    assert len([f for f in os.listdir(tmp_path / "all") if f.endswith("_metrics.json")]) == 4


# ---- resume robustness -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def straight4(tiny_data, tmp_path_factory):
    """A 4-step run without interruption: the reference of every resume test."""
    out = tmp_path_factory.mktemp("straight4")
    train(_cfg(tiny_data, out, 4), progress=False)
    return load_checkpoint(str(out / "last.pt"))


def _assert_same_weights(got, ref):
    assert set(got["model"]) == set(ref["model"])
    for k, v in ref["model"].items():  # parameters and BatchNorm statistics
        torch.testing.assert_close(got["model"][k], v, rtol=1e-5, atol=1e-6, msg=k)


def _steps(out):
    return [json.loads(l)["step"] for l in open(out / "metrics.jsonl")]


def test_resume_drops_partial_trailing_metrics_line(tiny_data, tmp_path, straight4):
    out = tmp_path / "r"
    train(_cfg(tiny_data, out, 2), progress=False)
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"step": 2, "loss": 0.5')  # a kill in the middle of an append
    train(_cfg(tiny_data, out, 4), progress=False)
    assert _steps(out) == [0, 1, 2, 3]
    _assert_same_weights(load_checkpoint(str(out / "last.pt")), straight4)


def test_jsonl_helpers(tmp_path):
    p = str(tmp_path / "m.jsonl")
    with open(p, "w") as f:
        f.write('{"step": 0, "loss": 1.0}\n{"step": 1, "loss": 2.0}\n{"step": 1, "loss": 3.0}\n{"st')
    # partial last line dropped; a step logged twice keeps its last row
    assert jsonl.read_jsonl(p) == [{"step": 0, "loss": 1.0}, {"step": 1, "loss": 3.0}]
    jsonl.append_jsonl(p, [{"step": 2, "loss": 4.0}])  # cuts the partial line before appending
    assert open(p).read().splitlines()[-2:] == ['{"step": 1, "loss": 3.0}', '{"step": 2, "loss": 4.0}']
    jsonl.truncate_jsonl(p, 2)
    assert open(p).read() == '{"step": 0, "loss": 1.0}\n{"step": 1, "loss": 3.0}\n'
    with open(p, "w") as f:
        f.write('{"step": 0}\nnot json\n{"step": 2}\n')
    with pytest.raises(ValueError, match=r"m\.jsonl: line 2 is not valid JSON"):
        jsonl.read_jsonl(p)


def test_interrupt_after_update_counts_the_step(tiny_data, tmp_path, monkeypatch, straight4):
    """Ctrl-C arriving while step 1's update is applied: the checkpoint says 2 steps, resume does not repeat it."""
    out = tmp_path / "i"
    orig, calls = torch.optim.Adam.step, []

    def step(self, *a, **k):
        r = orig(self, *a, **k)
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return r

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tiny_data, out, 4, checkpoint_every=100), progress=False)
    monkeypatch.undo()
    assert load_checkpoint(str(out / "last.pt"))["step"] == 2 and _steps(out) == [0, 1]
    train(_cfg(tiny_data, out, 4), progress=False)
    assert _steps(out) == [0, 1, 2, 3]
    _assert_same_weights(load_checkpoint(str(out / "last.pt")), straight4)


def test_interrupt_before_update_redoes_the_step(tiny_data, tmp_path, monkeypatch, straight4):
    """Ctrl-C after step 2's forward (BatchNorm statistics already moved), before its update."""
    out = tmp_path / "f"
    orig, calls = completion_train.completion_loss, []

    def loss_fn(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return orig(*a, **k)

    monkeypatch.setattr(completion_train, "completion_loss", loss_fn)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tiny_data, out, 4, checkpoint_every=100), progress=False)
    monkeypatch.undo()
    assert load_checkpoint(str(out / "last.pt"))["step"] == 2 and _steps(out) == [0, 1]
    train(_cfg(tiny_data, out, 4), progress=False)
    _assert_same_weights(load_checkpoint(str(out / "last.pt")), straight4)


def test_plot_metrics_leaves_global_backend_alone(tmp_path, monkeypatch):
    import matplotlib
    from PIL import Image

    def no_use(*a, **k):
        raise AssertionError("plot_metrics must not switch matplotlib's global backend")

    monkeypatch.setattr(matplotlib, "use", no_use)
    monkeypatch.setitem(matplotlib.rcParams, "backend", "svg")
    p = tmp_path / "m.jsonl"
    p.write_text("".join(json.dumps({"step": i, "loss": 1.0 / (i + 1), "lr": 1e-3}) + "\n" for i in range(5)))
    plots.plot_metrics(str(p), str(tmp_path / "loss.png"))
    assert dict.__getitem__(matplotlib.rcParams, "backend") == "svg"
    assert Image.open(tmp_path / "loss.png").size == (630, 360)  # 7 x 4 inches at 90 dpi


def test_thread_count_restored(tiny_data, tmp_path):
    assert torch.get_num_threads() == 1  # the autouse fixture
    train(_cfg(tiny_data, tmp_path / "t", 1, threads=2), progress=False)
    assert torch.get_num_threads() == 1
    with pytest.raises(ValueError, match="not a folder"):
        train(_cfg(str(tmp_path / "missing"), tmp_path / "t2", 1, threads=2), progress=False)
    assert torch.get_num_threads() == 1


def test_trunc_mismatch_with_data_raises(tiny_data, tmp_path):
    with pytest.raises(ValueError, match=r"trunc \(3\.0 voxels.*differs from the config's trunc \(2\.0 voxels\)"):
        train(_cfg(tiny_data, tmp_path / "x", 1, model={**TINY["model"], "trunc": 2.0}), progress=False)


def test_checkpoint_records_data_voxel_size(tiny_data, tmp_path):
    train(_cfg(tiny_data, tmp_path / "v", 1), progress=False)
    # sparse3d.crops stores the voxel size as float32
    assert load_checkpoint(str(tmp_path / "v" / "last.pt"))["data"] == {"voxel_size": pytest.approx(0.05), "trunc": 3.0}
    net, _ = load_model(str(tmp_path / "v" / "last.pt"))
    assert net.config.voxel_size == pytest.approx(0.05) and net.config.trunc == 3.0


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_train_mixed_precision_runs_and_resumes(tiny_data, tmp_path, amp):
    """amp: autocast on the training device (the CPU here, bfloat16 and float16); fp16 adds a gradient
    scaler whose state is checkpointed, so an interrupted run resumes to the same weights."""
    train(_cfg(tiny_data, tmp_path / "a", 4, amp=amp), progress=False)
    rows = [json.loads(l) for l in open(tmp_path / "a" / "metrics.jsonl")]
    assert len(rows) == 4 and all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
    ref = load_checkpoint(str(tmp_path / "a" / "last.pt"))
    assert ("scaler" in ref) == (amp == "fp16") and ref["config"]["amp"] == amp
    assert all(v.dtype != torch.bfloat16 and v.dtype != torch.float16 for v in ref["model"].values())
    train(_cfg(tiny_data, tmp_path / "b", 2, amp=amp), progress=False)
    train(_cfg(tiny_data, tmp_path / "b", 4, amp=amp), progress=False)
    got = load_checkpoint(str(tmp_path / "b" / "last.pt"))
    for k, v in ref["model"].items():
        torch.testing.assert_close(got["model"][k], v, rtol=1e-5, atol=1e-6, msg=k)
    # the float32 run differs (the forward really ran in the half type)
    train(_cfg(tiny_data, tmp_path / "c", 4), progress=False)
    f32 = load_checkpoint(str(tmp_path / "c" / "last.pt"))["model"]
    assert any(not torch.equal(f32[k], v) for k, v in ref["model"].items() if v.is_floating_point())


def test_amp_setting_is_checked():
    with pytest.raises(ValueError, match="amp must be one of"):
        load_config(None, {"amp": "fp8"})
    assert load_config(None, {"amp": False}).amp == "off"  # YAML's reading of `amp: off`


# ---- checkpoint format versions, config layout, command-line values ------------------------------------

def _write_format1_checkpoint(src: str, dst: str) -> None:
    """Rewrite a checkpoint in the layout written before format versions: no format_version / task, the
    network keys of the config at the top level (as the old TrainConfig.to_dict() wrote them)."""
    state = load_checkpoint(src)
    cfg = dict(state["config"])
    model = cfg.pop("model")
    cfg.update({k: model[k] for k in ("channels", "grow_steps", "coarse_dense", "blocks", "trunc")})
    old = {k: v for k, v in state.items() if k not in ("format_version", "task")}
    old["config"] = cfg
    torch.save(old, dst)


def test_format1_checkpoint_loads_and_resumes(tiny_data, tmp_path, straight4):
    out = tmp_path / "old"
    train(_cfg(tiny_data, out, 2), progress=False)
    new = load_checkpoint(str(out / "last.pt"))
    assert new["format_version"] == 2 and new["task"] == "completion" and new["config"]["model"]["grow_steps"] == 1
    _write_format1_checkpoint(str(out / "last.pt"), str(out / "last.pt"))
    assert "format_version" not in torch.load(str(out / "last.pt"), weights_only=True)
    net, cfg = load_model(str(out / "last.pt"))
    assert cfg.model.channels == (4, 8, 8) and cfg.model.grow_steps == 1 and net.config.voxel_size == pytest.approx(0.05)
    train(_cfg(tiny_data, out, 4), progress=False)  # resumes from the old file
    _assert_same_weights(load_checkpoint(str(out / "last.pt")), straight4)


def test_unknown_format_version_and_other_task_are_named(tiny_data, tmp_path):
    from sparse3d.train.checkpoint import save_checkpoint
    train(_cfg(tiny_data, tmp_path / "v", 1), progress=False)
    state = load_checkpoint(str(tmp_path / "v" / "last.pt"))
    torch.save({**state, "format_version": 99}, str(tmp_path / "future.pt"))
    with pytest.raises(ValueError, match=r"future\.pt' has format version 99; this sparse3d reads format versions 1 to 2"):
        load_model(str(tmp_path / "future.pt"))
    save_checkpoint(str(tmp_path / "g.pt"), {"modules": {}, "epoch": 0, "val": 1.0}, "gen2d")
    with pytest.raises(ValueError, match=r"g\.pt' was written by task 'gen2d', expected a 'completion' checkpoint"):
        load_model(str(tmp_path / "g.pt"))


def test_config_holds_the_model_config_and_reads_flat_keys(tmp_path):
    from sparse3d.tasks.completion.model import CompletionConfig
    cfg = load_config(None, {"model": {"channels": [8, 8]}, "steps": 3})
    assert cfg.model == CompletionConfig(channels=(8, 8)) and cfg.steps == 3
    old = tmp_path / "old.yaml"
    old.write_text("steps: 3\nchannels: [8, 8]\ntrunc: 2.0\n")
    with pytest.warns(FutureWarning, match=r"old\.yaml.*\['channels', 'trunc'\] belong under `model:`"):
        flat = load_config(str(old))
    assert flat.model == CompletionConfig(channels=(8, 8), trunc=2.0) and flat.steps == 3
    with pytest.raises(ValueError, match=r"unknown model keys \['chanels'\]"):
        load_config(None, {"model": {"chanels": [8]}})
    with pytest.raises(ValueError, match=r"\['trunc'\] given both at the top level and under model:"):
        load_config(None, {"trunc": 2.0, "model": {"trunc": 3.0}})


@pytest.mark.parametrize("argv, message", [
    (["train", "completion", "--amp", "fp8"], "argument --amp: invalid choice: 'fp8'"),
    (["train", "completion", "--backend", "cudnn"], "argument --backend: invalid choice: 'cudnn'"),
    (["train", "completion", "--steps", "0"], "argument --steps: expected an integer >= 1, got 0"),
    (["train", "completion", "--lr", "fast"], "argument --lr: expected a number > 0, got 'fast'"),
    (["predict", "completion", "--checkpoint", "a", "--input", "b", "--out", "c", "--input-fraction", "1.5"],
     "argument --input-fraction: expected a number in (0, 1], got 1.5"),
    (["eval", "completion", "--checkpoint", "a", "--data", "b", "--device", "gpu0"], "argument --device: expected a torch device"),
    (["demo", "--threads", "0"], "argument --threads: expected an integer >= 1, got 0"),
])
def test_bad_option_values_are_one_line_usage_errors(argv, message, capsys):
    from sparse3d.cli import main
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_train_completion_help_shows_every_default(capsys):
    from sparse3d.cli import main
    with pytest.raises(SystemExit):
        main(["train", "completion", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for opt in ("--steps", "--batch-size", "--lr", "--backend", "--amp", "--checkpoint-every", "--threads"):
        assert opt in out
    assert "{native,torch,spconv}" in out and "{off,bf16,fp16}" in out
    assert "(default: 300)" in out and "(default: native)" in out and "(default: off)" in out

"""Training loop: atomic checkpoints, early stopping, resume, CLI."""
import argparse
import json
import os

import pytest
import torch

from sparse3d.gen2d.cli import register_train
from sparse3d.train.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
from sparse3d.train.epochs import FitConfig, fit


pytestmark = pytest.mark.usefixtures("one_thread")


def _toy(out_dir, max_epochs, resume=False, patience=100, vals=None):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(32, 3)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
    calls = []

    def train_epoch(epoch, tick):
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        tick()
        return {"mse": loss.item()}

    def validate():
        calls.append(1)
        if vals is not None:
            return vals[len(calls) - 1]
        return float(((model(x) - y) ** 2).mean())

    cfg = FitConfig(str(out_dir), max_epochs=max_epochs, patience=patience, max_minutes=5, resume=resume,
                    progress=False)
    return model, fit({"m": model}, {"o": opt}, train_epoch, validate, cfg)


def test_checkpoint_round_trip_weights_only(tmp_path):
    p = tmp_path / "a" / "ck.pt"
    save_checkpoint(str(p), {"w": torch.arange(3.0), "n": 2, "h": [1.5, float("inf")]}, "gen2d")
    ck = load_checkpoint(str(p), task="gen2d")
    assert torch.equal(ck["w"], torch.arange(3.0)) and ck["h"][0] == 1.5
    assert ck["format_version"] == FORMAT_VERSION and ck["task"] == "gen2d"
    assert [f for f in os.listdir(p.parent)] == ["ck.pt"]  # no temp file left
    with pytest.raises(FileNotFoundError, match="ck2.pt"):
        load_checkpoint(str(tmp_path / "ck2.pt"))


def test_early_stopping_keeps_best_epoch(tmp_path):
    vals = [5.0, 3.0, 4.0, 4.5, 4.2, 1.0]
    _, h = _toy(tmp_path, 10, patience=3, vals=vals)
    assert h["stopped"] == "early_stopping"
    assert h["val"] == [5.0, 3.0, 4.0, 4.5, 4.2] and h["best_epoch"] == 1
    assert load_checkpoint(str(tmp_path / "best.pt"))["epoch"] == 1


def test_resume_gives_the_same_result_as_one_run(tmp_path):
    m_full, h_full = _toy(tmp_path / "full", 6)
    _toy(tmp_path / "part", 3)
    m_res, h_res = _toy(tmp_path / "part", 6, resume=True)
    assert len(h_res["val"]) == 6 and h_res["val"] == pytest.approx(h_full["val"])
    assert torch.allclose(m_full.weight, m_res.weight)


def test_cli_trains_a_tiny_model(tmp_path):
    parser = argparse.ArgumentParser()
    register_train(parser.add_subparsers(dest="task"))
    out = tmp_path / "run"
    args = parser.parse_args(["gen2d", "pixelcnn", "--out", str(out), "--epochs", "2", "--hidden", "8",
                              "--layers", "1", "--quiet", "--no-samples"])
    assert args.func(args) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["epochs_run"] == 2 and res["test_nll_nats"] < res["baseline_nll_nats"] + 20
    assert res["test_bits_per_dim"] == pytest.approx(res["test_nll_nats"] / (64 * 0.6931471805599453))
    assert (out / "loss.png").stat().st_size > 1000 and (out / "best.pt").exists()
    with pytest.raises(SystemExit):
        parser.parse_args(["gen2d", "no_such_model"])


@pytest.mark.parametrize("argv,bad", [(["pixelcnn", "--n-train", "10"], "--n-train"),
                                      (["wavenet", "--levels", "17"], "--levels"),
                                      (["pix2pix", "--layers", "3", "--lambda-flow", "1"], "--layers, --lambda-flow"),
                                      (["gated_pixelcnn", "--unconditional"], "--unconditional")])
def test_cli_rejects_options_the_model_does_not_read(tmp_path, argv, bad):
    parser = argparse.ArgumentParser()
    register_train(parser.add_subparsers(dest="task"))
    args = parser.parse_args(["gen2d"] + argv + ["--out", str(tmp_path / "run")])
    with pytest.raises(ValueError, match=bad):
        args.func(args)
    assert not (tmp_path / "run").exists()  # refused before any work


def test_sparse3d_command_has_train_gen2d():
    from sparse3d import cli

    parser = cli.build_parser()
    args = parser.parse_args(["train", "gen2d", "wavenet", "--epochs", "1"])
    assert args.model == "wavenet" and args.epochs == 1 and callable(args.func)

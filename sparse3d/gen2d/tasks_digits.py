"""Training tasks of the autoregressive image models on the 8x8 digits:
pixelcnn, gated_pixelcnn, cond_gated_pixelcnn, row_lstm, diagonal_bilstm."""
from __future__ import annotations

import math
import os
import time

import torch

from sparse3d.train.epochs import FitConfig, batches, fit, mean_dicts
from sparse3d.train.plots import plot_history

from .autoregressive import AutoregressiveImageModel
from .data import digits, independent_pixel_nll
from .gated_pixelcnn import ClassConditionalGatedPixelCNN, GatedPixelCNN
from .options import TaskOptions
from .pixelcnn import PixelCNN
from .pixelrnn import PixelRNN
from .plots import save_grid

DIGIT_MODELS = ("pixelcnn", "gated_pixelcnn", "cond_gated_pixelcnn", "row_lstm", "diagonal_bilstm")


def build_digit_model(name: str, levels: int, hidden: int, layers: int) -> AutoregressiveImageModel:
    """A 1-channel model with ``levels`` softmax classes."""
    if name == "pixelcnn":
        return PixelCNN(1, levels, hidden, layers)
    if name == "gated_pixelcnn":
        return GatedPixelCNN(1, levels, hidden, layers)
    if name == "cond_gated_pixelcnn":
        return ClassConditionalGatedPixelCNN(10, in_channels=1, n_levels=levels, hidden=hidden, n_layers=layers)
    if name == "row_lstm":
        return PixelRNN(1, levels, hidden, layers, "row")
    if name == "diagonal_bilstm":
        return PixelRNN(1, levels, hidden, layers, "diagonal")
    raise ValueError(f"model: expected one of {list(DIGIT_MODELS)}, got {name!r}")


def _mean_nll(model, x, y, cond: bool, bs: int = 256) -> float:
    tot = 0.0
    for idx in batches(len(x), bs, 0, shuffle=False):
        tot += float(model.nll(x[idx], y[idx] if cond else None).sum())
    return tot / len(x)


def run_digits(name: str, opts: TaskOptions) -> dict:
    """Train ``name`` on the digits (opts.levels = 2 or 17); returns the results dict
    (test nll in nats/image and bits/dim, baseline, times)."""
    torch.manual_seed(opts.seed)
    levels = opts.levels
    d = digits(levels, seed=opts.seed)
    tr, va, te = d["train"], d["val"], d["test"]
    rnn = name in ("row_lstm", "diagonal_bilstm")
    hidden = opts.get("hidden", 32 if rnn else 64)
    layers = opts.get("layers", 2 if rnn else 6)
    model = build_digit_model(name, levels, hidden, layers)
    cond = name == "cond_gated_pixelcnn"
    opt = torch.optim.Adam(model.parameters(), lr=opts.get("lr", 2e-3))
    bs = opts.get("batch_size", 64)
    dims = 64

    def train_epoch(epoch, tick):
        out = []
        for idx in batches(len(tr["x"]), bs, opts.seed * 1000 + epoch):
            loss = model.nll(tr["x"][idx], tr["y"][idx] if cond else None).mean() / dims
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            out.append({"nll_per_dim": loss.item()})
            tick()
        return mean_dicts(out)

    cfg = FitConfig(opts.out_dir, opts.get("epochs", 200), opts.get("patience", 8),
                    opts.get("max_minutes", 5.0), opts.seed, opts.resume, opts.progress)
    hist = fit({"model": model}, {"opt": opt}, train_epoch,
               lambda: _mean_nll(model, va["x"], va["y"], cond), cfg)
    with torch.no_grad():
        test_nats = _mean_nll(model, te["x"], te["y"], cond)
    base = independent_pixel_nll(tr["x"], te["x"], levels)
    res = {"task": name, "data": f"digits{levels}", "levels": levels, "hidden": hidden, "layers": layers,
           "params": sum(p.numel() for p in model.parameters()),
           "test_nll_nats": test_nats, "test_bits_per_dim": test_nats / (dims * math.log(2)),
           "baseline_nll_nats": base, "baseline_bits_per_dim": base / (dims * math.log(2)),
           "epochs_run": len(hist["val"]), "best_epoch": hist["best_epoch"], "train_time_s": hist["elapsed_s"],
           "stopped": hist["stopped"], "n_train": len(tr["x"]), "n_val": len(va["x"]), "n_test": len(te["x"])}
    plot_history(hist, os.path.join(opts.out_dir, "loss.png"), f"{name} digits{levels}", "val nll (nats/image)")
    if opts.samples:
        t = time.perf_counter()
        c = torch.arange(10).repeat_interleave(8) if cond else None
        n = 80 if cond else 64
        s = model.sample(n, (8, 8), seed=opts.seed, cond=c)
        res["sample_time_s"] = time.perf_counter() - t
        save_grid(s.float() / (levels - 1), 8 if not cond else 8, os.path.join(opts.out_dir, "samples.png"),
                  f"{name} samples" + (" (row = class 0..9)" if cond else ""))
    return res

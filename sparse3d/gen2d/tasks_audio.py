"""WaveNet training task on the synthetic tones."""
from __future__ import annotations

import math
import os
import time

import torch

from sparse3d.train.epochs import FitConfig, batches, fit, mean_dicts
from sparse3d.train.plots import plot_history

from .data import tones
from .options import TaskOptions
from .plots import save_waveforms
from .wavenet import WaveNet, mu_law_decode, mu_law_encode


def marginal_bits(train_codes: torch.Tensor, test_codes: torch.Tensor, n_levels: int = 256) -> float:
    """Baseline: one categorical over codes fitted on train (add-one), bits/sample on test."""
    counts = torch.bincount(train_codes.flatten(), minlength=n_levels).double() + 1.0
    logp = (counts / counts.sum()).log()
    return float(-logp[test_codes.flatten()].mean() / math.log(2))


def run_wavenet(opts: TaskOptions) -> dict:
    """Train a globally conditioned (on the tone class) WaveNet; extra={"conditional": False}
    for an unconditional one. Returns test bits/sample, baseline, times."""
    torch.manual_seed(opts.seed)
    length = int(opts.extra.get("length", 512))
    cond = bool(opts.extra.get("conditional", True))
    n_train = opts.get("n_train", 512)
    tr = tones(n_train, length, seed=opts.seed)
    va = tones(64, length, seed=opts.seed + 1)
    te = tones(128, length, seed=opts.seed + 2)
    xtr, xva, xte = (mu_law_encode(d["audio"]) for d in (tr, va, te))
    res_ch = opts.get("hidden", 32)
    n_stack = opts.get("layers", 2)
    dil = [2 ** i for i in range(7)] * n_stack
    model = WaveNet(256, res_ch, 2 * res_ch, dil, n_classes=4 if cond else 0)
    opt = torch.optim.Adam(model.parameters(), lr=opts.get("lr", 2e-3))
    bs = opts.get("batch_size", 16)

    def bits(x, y):
        tot = 0.0
        for idx in batches(len(x), 32, 0, shuffle=False):
            tot += float(model.bits_per_sample(x[idx], y[idx] if cond else None).sum())
        return tot / len(x)

    def train_epoch(epoch, tick):
        out = []
        for idx in batches(len(xtr), bs, opts.seed * 1000 + epoch):
            loss = model.nll(xtr[idx], tr["y"][idx] if cond else None).mean() / length
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            out.append({"nats_per_sample": loss.item()})
            tick()
        return mean_dicts(out)

    cfg = FitConfig(opts.out_dir, opts.get("epochs", 100), opts.get("patience", 5),
                    opts.get("max_minutes", 5.0), opts.seed, opts.resume, opts.progress)
    hist = fit({"model": model}, {"opt": opt}, train_epoch, lambda: bits(xva, va["y"]), cfg)
    with torch.no_grad():
        test_bits = bits(xte, te["y"])
    res = {"task": "wavenet", "data": "tones", "conditional": cond, "length": length,
           "receptive_field": model.receptive_field, "params": sum(p.numel() for p in model.parameters()),
           "test_bits_per_sample": test_bits, "baseline_bits_per_sample": marginal_bits(xtr, xte),
           "epochs_run": len(hist["val"]), "best_epoch": hist["best_epoch"], "train_time_s": hist["elapsed_s"],
           "stopped": hist["stopped"], "n_train": n_train}
    plot_history(hist, os.path.join(opts.out_dir, "loss.png"), "wavenet tones", "val bits/sample")
    if opts.samples:
        t = time.perf_counter()
        c = torch.arange(4) if cond else None
        g = model.generate(4, length, seed=opts.seed, cond=c, cached=True)
        res["sample_time_s"] = time.perf_counter() - t
        waves = [mu_law_decode(g[k]).numpy() for k in range(4)] + [te["audio"][k].numpy() for k in range(2)]
        labels = [f"sample c={k}" if cond else f"sample {k}" for k in range(4)] + ["real", "real"]
        save_waveforms(waves, labels, os.path.join(opts.out_dir, "samples.png"), "wavenet samples (cached)")
    return res

"""The epoch loop (used by gen2d): epochs with tqdm progress, a validation metric after every epoch,
early stopping, a wall-clock budget, atomic checkpoints (``last.pt`` to resume, ``best.pt`` with the
best weights, both in the format of :mod:`sparse3d.train.checkpoint`), and a loss history
(:func:`sparse3d.train.plots.plot_history` draws it).

    last.pt  {"modules": {name: state_dict}, "optimizers": {name: state_dict}, "history": dict}
    best.pt  {"modules": {name: state_dict}, "epoch": int, "val": float}
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List

import torch
import torch.nn as nn

from sparse3d.train.checkpoint import load_checkpoint, save_checkpoint
from sparse3d.utils.checks import require_int


def batches(n: int, batch_size: int, seed: int, shuffle: bool = True) -> Iterator[torch.Tensor]:
    """Index batches over range(n), shuffled with ``seed``; yields int64 [<=batch_size]."""
    require_int(batch_size, "batch_size", low=1)
    if shuffle:
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    else:
        perm = torch.arange(n)
    for s in range(0, n, batch_size):
        yield perm[s: s + batch_size]


@dataclass
class FitConfig:
    """out_dir: checkpoint folder; max_epochs; patience: epochs without validation
    improvement before stopping; max_minutes: wall-clock budget (over resumes);
    seed; resume: continue from out_dir/last.pt when it exists; progress: tqdm bars."""

    out_dir: str
    max_epochs: int = 50
    patience: int = 5
    max_minutes: float = 5.0
    seed: int = 0
    resume: bool = False
    progress: bool = True


def fit(modules: Dict[str, nn.Module], optimizers: Dict[str, torch.optim.Optimizer],
        train_epoch: Callable[[int, Callable[[], None]], Dict[str, float]],
        validate: Callable[[], float], cfg: FitConfig, task: str = "gen2d") -> dict:
    """Run epochs until ``max_epochs``, early stopping or the time budget.

    train_epoch(epoch, tick) trains one epoch (calling ``tick()`` after each batch
    for the progress bar) and returns mean training losses. validate() returns the
    validation metric (lower is better). Returns the history dict (also stored in the
    checkpoints): epochs, train (list of dicts), val, best_val, best_epoch, elapsed_s,
    stopped ("max_epochs" | "early_stopping" | "time_budget").
    On return the modules hold the best weights. ``task`` is written into (and checked in) the checkpoints.
    """
    last_path = os.path.join(cfg.out_dir, "last.pt")
    best_path = os.path.join(cfg.out_dir, "best.pt")
    hist = {"train": [], "val": [], "best_val": float("inf"), "best_epoch": -1, "elapsed_s": 0.0,
            "bad_epochs": 0, "epoch": -1, "stopped": ""}
    if cfg.resume and os.path.isfile(last_path):
        ck = load_checkpoint(last_path, task=task, require=("modules", "optimizers", "history"))
        for k, m in modules.items():
            m.load_state_dict(ck["modules"][k])
        for k, o in optimizers.items():
            o.load_state_dict(ck["optimizers"][k])
        hist = ck["history"]
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    t0 = time.perf_counter() - hist["elapsed_s"]
    stopped = "max_epochs"
    for epoch in range(hist["epoch"] + 1, cfg.max_epochs):
        if hist["bad_epochs"] >= cfg.patience:
            stopped = "early_stopping"
            break
        if time.perf_counter() - t0 > cfg.max_minutes * 60:
            stopped = "time_budget"
            break
        torch.manual_seed(cfg.seed * 100003 + epoch)  # dropout / noise of this epoch
        for m in modules.values():
            m.train()
        bar = tqdm(desc=f"epoch {epoch}", leave=False, disable=not cfg.progress) if tqdm else None
        losses = train_epoch(epoch, (lambda: bar.update(1)) if bar is not None else (lambda: None))
        if bar is not None:
            bar.close()
        for m in modules.values():
            m.eval()
        with torch.no_grad():
            val = float(validate())
        hist["train"].append({k: float(v) for k, v in losses.items()})
        hist["val"].append(val)
        hist["epoch"] = epoch
        if val < hist["best_val"]:
            hist["best_val"], hist["best_epoch"], hist["bad_epochs"] = val, epoch, 0
            save_checkpoint(best_path, {"modules": {k: m.state_dict() for k, m in modules.items()}, "epoch": epoch,
                                        "val": val}, task)
        else:
            hist["bad_epochs"] += 1
        hist["elapsed_s"] = time.perf_counter() - t0
        save_checkpoint(last_path, {"modules": {k: m.state_dict() for k, m in modules.items()},
                                    "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
                                    "history": hist}, task)
        if cfg.progress:
            print(f"epoch {epoch}: train {_fmt(hist['train'][-1])} val {val:.4f} "
                  f"(best {hist['best_val']:.4f} @ {hist['best_epoch']}) {hist['elapsed_s']:.0f}s", flush=True)
    else:
        if hist["bad_epochs"] >= cfg.patience:
            stopped = "early_stopping"
    hist["stopped"] = stopped
    if os.path.isfile(best_path):
        ck = load_checkpoint(best_path, task=task, require=("modules",))
        for k, m in modules.items():
            m.load_state_dict(ck["modules"][k])
    for m in modules.values():
        m.eval()
    return hist


def _fmt(d: Dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4f}" for k, v in d.items())


def mean_dicts(ds: List[Dict[str, float]]) -> Dict[str, float]:
    """Average a list of loss dicts key by key."""
    if not ds:
        return {}
    return {k: sum(d[k] for d in ds) / len(ds) for k in ds[0]}

"""Training loop of scene completion: seeded, resumable, tqdm progress, metrics per step
(``metrics.jsonl``) plotted to ``loss.png``, atomic checkpoints (``last.pt``), CPU or GPU,
DistributedDataParallel under torchrun (each process takes ``batch_size / world_size`` samples
of the same seeded global batch).

Resume invariants: a checkpoint's ``step`` is the number of optimizer updates in its weights
(Ctrl-C is held while an update is applied, so an update is never half done or uncounted);
``metrics.jsonl`` is appended before the checkpoint is written, so it always covers the
checkpoint's steps; on resume, rows of later steps and a partial last line (a kill during an
append) are dropped."""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import signal
import threading
import time
from typing import Any, Dict, Iterator, List, Optional

import numpy as np
import torch
from tqdm import tqdm

from data_tools.io_utils import atomic_write_json

import sparse3d.nn as snn
from sparse3d.data.completion_dataset import CompletionDataset, augment, collate
from sparse3d.models.completion import CompletionNet
from sparse3d.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from sparse3d.train.completion_loss import LossWeights, completion_loss
from sparse3d.train.config import AMP_DTYPES, TrainConfig
from sparse3d.train.distributed import DistInfo, init_distributed, resolve_device, shutdown


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Step schedule: x0.3 at each fraction in ``lr_decay_at`` (stateless, so resuming is exact)."""
    n = sum(step >= int(f * cfg.steps) for f in cfg.lr_decay_at)
    return cfg.lr * (0.3 ** n)


def batch_indices(cfg: TrainConfig, step: int, n: int) -> List[int]:
    """The global batch of ``step``: a function of (seed, step) only."""
    rng = np.random.default_rng([cfg.seed, step])
    return rng.choice(n, cfg.batch_size, replace=n < cfg.batch_size).tolist()


def _append_jsonl(path: str, rows: List[Dict]) -> None:
    """Append ``rows`` (one JSON object per line). A partial last line left by a killed writer is cut
    off first, so it never ends up in the middle of the file."""
    if not rows:
        return
    with open(path, "ab+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size:
            f.seek(size - 1)
            if f.read(1) != b"\n":
                f.seek(0)
                data = f.read()
                f.truncate(data.rfind(b"\n") + 1)
        f.write("".join(json.dumps(r) + "\n" for r in rows).encode())


def _read_jsonl(path: str) -> List[Dict[str, Any]]:
    """Rows of ``metrics.jsonl`` in step order, the last row kept where a step was logged twice; a last
    line that is not valid JSON (cut by a kill during an append) is dropped. A bad line before the
    last raises ValueError naming the file and line."""
    with open(path, "rb") as f:
        lines = f.read().decode("utf-8", errors="replace").split("\n")
    numbered = [(i + 1, ln) for i, ln in enumerate(lines) if ln.strip()]
    rows: Dict[int, Dict[str, Any]] = {}
    for k, (lineno, ln) in enumerate(numbered):
        try:
            r = json.loads(ln)
        except json.JSONDecodeError as e:
            if k == len(numbered) - 1:
                break  # partial trailing line
            raise ValueError(f"{path}: line {lineno} is not valid JSON ({e})") from e
        if not isinstance(r, dict) or not isinstance(r.get("step"), int):
            raise ValueError(f"{path}: line {lineno} is not a metrics row (a JSON object with an int 'step')")
        rows[r["step"]] = r
    return [rows[k] for k in sorted(rows)]


def _truncate_jsonl(path: str, before_step: int) -> None:
    """Keep the rows of steps < ``before_step`` (those in the checkpoint being resumed), atomically."""
    if not os.path.isfile(path):
        return
    rows = [r for r in _read_jsonl(path) if r["step"] < before_step]
    with open(path + ".tmp", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    os.replace(path + ".tmp", path)


def plot_metrics(jsonl: str, png: str) -> None:
    """Plot every logged loss term against the step (atomic PNG write). Uses matplotlib's object API
    (Figure + FigureCanvasAgg): the global backend (pyplot, notebooks) is left alone."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    rows = _read_jsonl(jsonl)
    if not rows:
        return
    fig = Figure(figsize=(7, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    steps = [r["step"] for r in rows]
    for k in [k for k in rows[-1] if k not in ("step", "lr", "time_s", "voxels")]:
        ax.plot(steps, [r.get(k, np.nan) for r in rows], label=k)
    ax.set_xlabel("step")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = png + ".tmp.png"
    fig.savefig(tmp, dpi=90)
    os.replace(tmp, png)


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) until the block is over, then raise it: the block (an optimizer update and
    its step count) runs whole. Signal handlers can only be set in the main thread; elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: List[int] = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: got.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
    if got:
        if callable(old):
            old(signal.SIGINT, None)
        elif old != signal.SIG_IGN:
            raise KeyboardInterrupt


def params_digest(model: torch.nn.Module) -> str:
    """sha1 of every parameter and buffer (to check that DDP replicas are identical)."""
    h = hashlib.sha1()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def train(cfg: TrainConfig, resume: bool = True, progress: bool = True) -> Dict[str, float]:
    """Train; returns the last step's logged values. Under torchrun, every process calls this."""
    threads = torch.get_num_threads()
    info: DistInfo = init_distributed(cfg.device)
    try:
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        return _train(cfg, info, resume, progress)
    finally:
        shutdown()
        torch.set_num_threads(threads)  # the caller's setting (cfg.threads is for this run only)


def _train(cfg: TrainConfig, info: DistInfo, resume: bool, progress: bool) -> Dict[str, float]:
    if cfg.batch_size % info.world_size:
        raise ValueError(f"batch_size ({cfg.batch_size}) must be divisible by the number of processes "
                         f"({info.world_size})")
    device = resolve_device(cfg.device, info)
    ds = CompletionDataset(cfg.data)
    first = ds[0]
    if not math.isclose(first.trunc, cfg.trunc, rel_tol=1e-4):
        raise ValueError(f"the training samples' trunc ({first.trunc} voxels, {ds.paths[0]}) differs from the "
                         f"config's trunc ({cfg.trunc} voxels): set trunc: {first.trunc} in the config")
    data_info = {"voxel_size": float(first.voxel_size), "trunc": float(first.trunc)}
    torch.manual_seed(cfg.seed)
    net = snn.set_backend(CompletionNet(cfg.model_config()), cfg.backend).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    amp_dtype = AMP_DTYPES[cfg.amp]
    # float16 needs loss scaling (its small gradients underflow); bfloat16 has float32's range and does not
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
    os.makedirs(cfg.out, exist_ok=True)
    ckpt_path = os.path.join(cfg.out, "last.pt")
    jsonl = os.path.join(cfg.out, "metrics.jsonl")
    start = 0
    if resume and latest_checkpoint(cfg.out):
        state = load_checkpoint(ckpt_path, device)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if scaler.is_enabled() and "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        start = int(state["step"])
    else:
        if cfg.init:
            net.load_state_dict(load_checkpoint(cfg.init, device)["model"])
        if info.is_main and os.path.isfile(jsonl):
            os.remove(jsonl)
    if info.is_main:
        _truncate_jsonl(jsonl, start)
        with open(os.path.join(cfg.out, "config.json.tmp"), "w") as f:
            json.dump(cfg.to_dict(), f, indent=1)
        os.replace(os.path.join(cfg.out, "config.json.tmp"), os.path.join(cfg.out, "config.json"))
    model: torch.nn.Module = net
    if info.enabled:
        model = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True)
    weights = LossWeights(cfg.loss_occupancy, cfg.loss_distance, cfg.log_l1)
    per_rank = cfg.batch_size // info.world_size
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="train completion",
               disable=not (progress and info.is_main), dynamic_ncols=True)
    logs: Dict[str, float] = {}
    pending: List[Dict] = []

    def checkpoint(step_done: int) -> None:
        if info.is_main:
            # metrics first: the rows always cover the checkpoint's steps (later rows are cut on resume)
            _append_jsonl(jsonl, pending)
            pending.clear()
            state = {"model": net.state_dict(), "optimizer": opt.state_dict(), "step": step_done,
                     "config": cfg.to_dict(), "data": data_info}
            if scaler.is_enabled():
                state["scaler"] = scaler.state_dict()
            save_checkpoint(ckpt_path, state)
            plot_metrics(jsonl, os.path.join(cfg.out, "loss.png"))

    done = start  # optimizer updates in the weights (what a checkpoint records)
    buffers: Optional[List[torch.Tensor]] = None  # BatchNorm statistics before the step in progress
    try:
        net.train()
        for step in bar:
            t0 = time.perf_counter()
            buffers = [b.detach().clone() for b in net.buffers()]
            for g in opt.param_groups:
                g["lr"] = lr_at(cfg, step)
            idx = batch_indices(cfg, step, len(ds))[info.rank * per_rank:(info.rank + 1) * per_rank]
            samples = [ds[i] for i in idx]
            if cfg.augment:
                samples = [augment(s, np.random.default_rng([cfg.seed, step, j])) for s, j in zip(samples, idx)]
            x, target = collate(samples, cfg.frontier, cfg.occ_thresh)
            x = x.to(device)
            target.tsdf, target.known = target.tsdf.to(device), target.known.to(device)
            target = type(target)(target.tsdf, target.known, cfg.occ_thresh)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                out = model(x, bounds=target.shape, target_fn=target.occupied)
                loss, logs = completion_loss(out, target, weights)
            if not loss.requires_grad:  # nothing observed in this shard (e.g. empty input crops):
                # a zero loss tied to every weight keeps backward (and DDP's all-reduce) in step
                loss = loss + 0.0 * sum(p.sum() for p in net.parameters())
                logs["empty"] = 1.0
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            with _sigint_held():  # the update, its count and its metrics row go together
                scaler.step(opt)  # = opt.step() unless fp16 gradients overflowed (then skipped, scale lowered)
                scaler.update()
                done = step + 1
                buffers = None
                logs = {"step": step, **logs, "lr": lr_at(cfg, step), "voxels": len(out.levels[-1]),
                        "time_s": round(time.perf_counter() - t0, 4)}
                if info.is_main and step % cfg.log_every == 0:
                    pending.append(logs)
            bar.set_postfix(loss=f"{logs['loss']:.3f}", l1=f"{logs['l1']:.3f}")
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
                checkpoint(step + 1)
    except KeyboardInterrupt:
        if buffers is not None:  # interrupted after the forward updated BatchNorm statistics, before the update
            with torch.no_grad():
                for b, v in zip(net.buffers(), buffers):
                    b.copy_(v)
        checkpoint(done)  # a step interrupted before its update is redone on resume; one after it is not
        raise
    if info.enabled:
        # DDP syncs buffers (BatchNorm running stats) at the start of each forward: sync the last update too
        import torch.distributed as dist
        for b in net.buffers():
            dist.broadcast(b, 0)
        atomic_write_json(os.path.join(cfg.out, f"replica_rank{info.rank}.json"),
                           {"rank": info.rank, "digest": params_digest(net), "step": cfg.steps})
    return logs

"""Training loop of scene completion: seeded, resumable, tqdm progress, metrics per step
(``metrics.jsonl``) plotted to ``loss.png``, atomic checkpoints (``last.pt``), CPU or GPU,
DistributedDataParallel under torchrun (each process takes ``batch_size / world_size`` samples
of the same seeded global batch)."""
from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Dict, List, Optional

import numpy as np
import torch
from tqdm import tqdm

import sparse3d.nn as snn
from sparse3d.data.completion_dataset import CompletionDataset, augment, collate
from sparse3d.models.completion import CompletionNet
from sparse3d.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from sparse3d.train.completion_loss import LossWeights, completion_loss
from sparse3d.train.config import TrainConfig
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
    with open(path, "a") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def _truncate_jsonl(path: str, before_step: int) -> None:
    if not os.path.isfile(path):
        return
    with open(path) as f:
        rows = [ln for ln in f if ln.strip() and json.loads(ln)["step"] < before_step]
    with open(path + ".tmp", "w") as f:
        f.writelines(rows)
    os.replace(path + ".tmp", path)


def plot_metrics(jsonl: str, png: str) -> None:
    """Plot every logged loss term against the step (atomic PNG write)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    with open(jsonl) as f:
        rows = [json.loads(ln) for ln in f if ln.strip()]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(7, 4))
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
    plt.close(fig)
    os.replace(tmp, png)


def params_digest(model: torch.nn.Module) -> str:
    """sha1 of every parameter and buffer (to check that DDP replicas are identical)."""
    h = hashlib.sha1()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def train(cfg: TrainConfig, resume: bool = True, progress: bool = True) -> Dict[str, float]:
    """Train; returns the last step's logged values. Under torchrun, every process calls this."""
    info: DistInfo = init_distributed(cfg.device)
    try:
        return _train(cfg, info, resume, progress)
    finally:
        shutdown()


def _train(cfg: TrainConfig, info: DistInfo, resume: bool, progress: bool) -> Dict[str, float]:
    if cfg.batch_size % info.world_size:
        raise ValueError(f"batch_size ({cfg.batch_size}) must be divisible by the number of processes "
                         f"({info.world_size})")
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device, info)
    ds = CompletionDataset(cfg.data)
    torch.manual_seed(cfg.seed)
    net = snn.set_backend(CompletionNet(cfg.model_config()), cfg.backend).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    os.makedirs(cfg.out, exist_ok=True)
    ckpt_path = os.path.join(cfg.out, "last.pt")
    jsonl = os.path.join(cfg.out, "metrics.jsonl")
    start = 0
    if resume and latest_checkpoint(cfg.out):
        state = load_checkpoint(ckpt_path, device)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
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
            save_checkpoint(ckpt_path, {"model": net.state_dict(), "optimizer": opt.state_dict(),
                                        "step": step_done, "config": cfg.to_dict()})
            _append_jsonl(jsonl, pending)
            pending.clear()
            plot_metrics(jsonl, os.path.join(cfg.out, "loss.png"))

    step = start
    try:
        net.train()
        for step in bar:
            t0 = time.perf_counter()
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
            out = model(x, bounds=target.shape, target_fn=target.occupied)
            loss, logs = completion_loss(out, target, weights)
            if not loss.requires_grad:  # nothing observed in this shard (e.g. empty input crops):
                # a zero loss tied to every weight keeps backward (and DDP's all-reduce) in step
                loss = loss + 0.0 * sum(p.sum() for p in net.parameters())
                logs["empty"] = 1.0
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            logs = {"step": step, **logs, "lr": lr_at(cfg, step), "voxels": len(out.levels[-1]),
                    "time_s": round(time.perf_counter() - t0, 4)}
            if info.is_main and step % cfg.log_every == 0:
                pending.append(logs)
            bar.set_postfix(loss=f"{logs['loss']:.3f}", l1=f"{logs['l1']:.3f}")
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
                checkpoint(step + 1)
    except KeyboardInterrupt:
        checkpoint(step)  # the interrupted step is redone on resume
        raise
    if info.enabled:
        # DDP syncs buffers (BatchNorm running stats) at the start of each forward: sync the last update too
        import torch.distributed as dist
        for b in net.buffers():
            dist.broadcast(b, 0)
        with open(os.path.join(cfg.out, f"replica_rank{info.rank}.json"), "w") as f:
            json.dump({"rank": info.rank, "digest": params_digest(net), "step": cfg.steps}, f)
    return logs

"""The step loop every step-trained task shares: seeded, resumable, tqdm progress, metrics per step
(``metrics.jsonl``) plotted to ``loss.png``, atomic checkpoints (``last.pt``), CPU or GPU, mixed
precision, DistributedDataParallel under torchrun (each process takes its shard of the same seeded
global batch).

The task supplies a :class:`StepTask` (how to build the model and its optimizer, the batch of a step,
the loss); :func:`run_steps` does the rest.

Validation (a task with ``validate`` and ``val_every > 0``): after every ``val_every`` updates (and the
last), ``validate(model)`` scores the weights (eval mode, no gradients); its row ``{"step": updates done,
<metric>: float, "time_s": seconds it took}`` goes to ``val.jsonl`` and the loss plot's validation panel, and when its ``val_key`` is
the best so far the weights are written to ``best.pt`` (atomic, the format of ``last.pt`` plus
``"val"``: that row). ``last.pt`` records the best score (``"best"``: {"step", "key", "score"}), so a
resumed run keeps it; validation uses no random numbers, so it never changes the training itself.

Resume invariants: a checkpoint's ``step`` is the number of optimizer updates in its weights
(Ctrl-C is held while an update is applied, so an update is never half done or uncounted);
``metrics.jsonl`` is appended before the checkpoint is written, so it always covers the
checkpoint's steps; on resume, rows of later steps and a partial last line (a kill during an
append) are dropped, and so are the temp files of atomic writes a killed run (kill -9) left in ``out``
(tests/test_faults_kill.py kills runs at random points and mid-write and checks the resumed run's weights
and metrics equal an uninterrupted one's). A Ctrl-C before an update restores the BatchNorm statistics its
forward moved and checkpoints the updates done, so the interrupted step is redone exactly on resume.
"""
from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import torch
from tqdm import tqdm

from sparse3d.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from sparse3d.train.distributed import DistInfo, init_distributed, resolve_device, shutdown, wrap_ddp
from sparse3d.train.jsonl import append_jsonl, read_jsonl, truncate_jsonl
from sparse3d.train.plots import plot_metrics
from sparse3d.utils.atomic_io import atomic_write_json, remove_stale_temps

# LoopSettings.amp -> the autocast dtype of the forward pass and the loss (None: float32 throughout)
AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# loss.png is redrawn at a checkpoint when this many seconds passed since the last drawing, and always at
# the end or on Ctrl-C (a drawing costs ~0.3 s: at every 50-step checkpoint of the main job it was ~2% of training)
PLOT_EVERY_S = 30.0


@dataclass
class LoopSettings:
    """What the loop needs of a task's config.

    out: folder of last.pt, metrics.jsonl, loss.png, config.json; steps: optimizer updates in all;
    seed: torch's seed before the model is built; batch_size: the global batch (divisible by the
    number of processes); checkpoint_every / log_every: steps between checkpoints / metrics rows;
    device: "cpu", "cuda", "cuda:1" (under torchrun cuda uses LOCAL_RANK); threads: torch threads for
    this run (0 = leave torch's setting); amp: "off" | "bf16" | "fp16" (fp16 adds gradient scaling);
    init: start from this checkpoint's weights (fresh optimizer; ignored when resuming); val_every: updates
    between validations of a task that has ``validate`` (0 = none)."""

    out: str
    steps: int
    seed: int = 0
    batch_size: int = 1
    checkpoint_every: int = 50
    log_every: int = 1
    device: str = "cpu"
    threads: int = 0
    amp: str = "off"
    init: str = ""
    val_every: int = 0

    @classmethod
    def of(cls, cfg: Any) -> "LoopSettings":
        """The loop settings held by a task's training config (any object with these attribute names;
        ``val_every`` is optional: 0 where the config has none)."""
        return cls(**{f: getattr(cfg, f) for f in ("out", "steps", "seed", "batch_size", "checkpoint_every",
                                                   "log_every", "device", "threads", "amp", "init")},
                   val_every=int(getattr(cfg, "val_every", 0)))

    def __post_init__(self) -> None:
        if self.amp not in AMP_DTYPES:
            raise ValueError(f"amp must be one of {sorted(AMP_DTYPES)}, got {self.amp!r}")
        for name in ("steps", "batch_size", "checkpoint_every", "log_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if int(self.val_every) < 0:
            raise ValueError(f"val_every must be >= 0 (0 = no validation), got {self.val_every}")


# batch(step, rank, world_size, device) -> the batch of this process (its shard of the global batch)
BatchFn = Callable[[int, DistInfo, torch.device], Any]
# loss(model, batch) -> (scalar loss, {name: float} logged and plotted, {name: float} logged only)
LossFn = Callable[[torch.nn.Module, Any], Tuple[torch.Tensor, Dict[str, float], Dict[str, float]]]
# validate(model) -> {metric: float} of the held-out data (called in eval mode, under torch.no_grad)
ValidateFn = Callable[[torch.nn.Module], Dict[str, float]]


@dataclass
class StepTask:
    """A task as the step loop sees it.

    name: written into checkpoints ("completion"); build_model(): called right after
    ``torch.manual_seed(seed)`` (same seed, same weights); make_optimizer(model); lr_at(step): the
    learning rate of a step (a pure function, so resuming is exact); batch / loss: see BatchFn / LossFn
    (``loss`` runs under autocast); config: stored as the checkpoint's "config" and config.json;
    extra_state: further checkpoint entries (e.g. the training data's voxel size);
    postfix: logged keys shown on the progress bar; validate: scores the weights on held-out data (see the
    module docstring), val_key: its metric that picks ``best.pt``, val_higher_is_better: its direction."""

    name: str
    build_model: Callable[[], torch.nn.Module]
    make_optimizer: Callable[[torch.nn.Module], torch.optim.Optimizer]
    lr_at: Callable[[int], float]
    batch: BatchFn
    loss: LossFn
    config: Dict[str, Any]
    extra_state: Dict[str, Any] = field(default_factory=dict)
    postfix: Tuple[str, ...] = ("loss",)
    not_plotted: Tuple[str, ...] = ()
    validate: Optional[ValidateFn] = None
    val_key: str = ""
    val_higher_is_better: bool = True

    def __post_init__(self) -> None:
        if self.validate is not None and not self.val_key:
            raise ValueError(f"task {self.name!r}: val_key must name the metric of validate that picks best.pt")


def is_better(score: float, best: Optional[Dict[str, Any]], higher_is_better: bool) -> bool:
    """Whether ``score`` beats the best so far (``best["score"]``; None: nothing yet). A tie keeps the
    earlier step; a nan score never wins."""
    if score != score:
        return False
    if best is None:
        return True
    return score > best["score"] if higher_is_better else score < best["score"]


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


def _check_same_start(start: int, out: str, device: torch.device) -> None:
    """Under DDP every process must resume from the same step (each reads ``<out>/last.pt`` itself): a
    ValueError on every process otherwise (e.g. nodes that do not share ``out``), not a hang."""
    import torch.distributed as dist
    lo = torch.tensor([start], dtype=torch.int64, device=device)
    hi = lo.clone()
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    if int(lo) != int(hi):
        raise ValueError(f"resume: the processes found different checkpoints in out={out!r} (steps {int(lo)} to "
                         f"{int(hi)}): on several nodes, out must be a folder every node shares (the same path)")


def run_steps(make_task: Callable[[DistInfo, torch.device], StepTask], settings: LoopSettings,
              resume: bool = True, progress: bool = True) -> Dict[str, float]:
    """Train; returns the last step's logged values. Under torchrun, every process calls this.

    make_task(info, device) builds the task once the process group and the device are known (it
    loads and checks the data). ``settings.threads`` applies to this run only: torch's thread count
    is restored on return, also when the run raises."""
    threads = torch.get_num_threads()
    info: DistInfo = init_distributed(settings.device)
    try:
        if settings.threads > 0:
            torch.set_num_threads(settings.threads)
        if settings.batch_size % info.world_size:
            raise ValueError(f"batch_size ({settings.batch_size}) must be divisible by the number of processes "
                             f"({info.world_size})")
        device = resolve_device(settings.device, info)
        return _run(make_task(info, device), settings, info, device, resume, progress)
    finally:
        shutdown()
        torch.set_num_threads(threads)  # the caller's setting (settings.threads is for this run only)


def _run(task: StepTask, s: LoopSettings, info: DistInfo, device: torch.device, resume: bool,
         progress: bool) -> Dict[str, float]:
    torch.manual_seed(s.seed)
    net = task.build_model().to(device)
    opt = task.make_optimizer(net)
    amp_dtype = AMP_DTYPES[s.amp]
    # float16 needs loss scaling (its small gradients underflow); bfloat16 has float32's range and does not
    scaler = torch.amp.GradScaler(device.type, enabled=s.amp == "fp16")
    os.makedirs(s.out, exist_ok=True)
    if info.is_main:
        remove_stale_temps(s.out)  # temp files of atomic writes a killed run (kill -9) left behind
    ckpt_path = os.path.join(s.out, "last.pt")
    best_path = os.path.join(s.out, "best.pt")
    jsonl = os.path.join(s.out, "metrics.jsonl")
    val_jsonl = os.path.join(s.out, "val.jsonl")
    validating = task.validate is not None and s.val_every > 0
    best: Optional[Dict[str, Any]] = None  # {"step", "key", "score"} of best.pt
    start = 0
    if resume and latest_checkpoint(s.out):
        state = load_checkpoint(ckpt_path, device, task=task.name, require=("model", "optimizer", "step"))
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if scaler.is_enabled() and "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        start = int(state["step"])
        best = state.get("best")
    else:
        if s.init:
            net.load_state_dict(load_checkpoint(s.init, device, task=task.name, require=("model",))["model"])
        if info.is_main:
            for stale in (jsonl, val_jsonl, best_path):  # of an earlier run in this folder
                if os.path.isfile(stale):
                    os.remove(stale)
    if info.enabled:
        _check_same_start(start, s.out, device)
    if info.is_main:
        truncate_jsonl(jsonl, start)
        if os.path.isfile(val_jsonl):
            truncate_jsonl(val_jsonl, start + 1)  # its rows count updates done: the checkpoint's own is kept
        atomic_write_json(os.path.join(s.out, "config.json"), task.config)
        if start >= s.steps and os.path.isfile(jsonl):
            # a run killed after its last checkpoint but before its plot: no checkpoint (and plot) comes again
            plot_metrics(jsonl, os.path.join(s.out, "loss.png"), exclude=task.not_plotted, val_jsonl=val_jsonl)
    model: torch.nn.Module = net
    if info.enabled:
        model = wrap_ddp(net, device)
    bar = tqdm(range(start, s.steps), initial=start, total=s.steps, desc=f"train {task.name}",
               disable=not (progress and info.is_main), dynamic_ncols=True)
    logs: Dict[str, float] = {}
    if start >= s.steps and os.path.isfile(jsonl):  # nothing left to do (rerun of a finished or killed run):
        rows = read_jsonl(jsonl)                     # the last step's logged values, as the run itself returned
        logs = rows[-1] if rows else {}
    pending: List[Dict] = []

    last_plot = -float("inf")  # perf_counter() of the last loss.png

    def weights_state(step_done: int) -> Dict[str, Any]:
        state = {"model": net.state_dict(), "optimizer": opt.state_dict(), "step": step_done,
                 "config": task.config, **task.extra_state}
        if scaler.is_enabled():
            state["scaler"] = scaler.state_dict()
        return state

    def validate(step_done: int) -> None:
        """Score the weights after ``step_done`` updates; keep them in best.pt when they are the best."""
        nonlocal best
        if task.validate is None:
            return
        t0 = time.perf_counter()
        net.eval()
        try:
            with torch.no_grad():
                scores = task.validate(net)
        finally:
            net.train()
        seconds = round(time.perf_counter() - t0, 4)
        if task.val_key not in scores:
            raise ValueError(f"task {task.name!r}: validate returned {sorted(scores)}, without val_key "
                             f"{task.val_key!r}")
        row = {"step": step_done, **{k: float(v) for k, v in scores.items()}, "time_s": seconds}
        append_jsonl(val_jsonl, [row])
        score = float(scores[task.val_key])
        if is_better(score, best, task.val_higher_is_better):
            best = {"step": step_done, "key": task.val_key, "score": score}
            save_checkpoint(best_path, {**weights_state(step_done), "val": row, "best": best}, task.name)
        text = ", ".join(f"{k} {v:.4g}" for k, v in scores.items())
        if best is not None:
            text += f" (best {task.val_key} {best['score']:.4g} at step {best['step']})"
        bar.write(f"validation after {step_done} steps: {text}")

    def checkpoint(step_done: int, final: bool = False) -> None:
        nonlocal last_plot
        redraw = final or step_done >= s.steps or time.perf_counter() - last_plot >= PLOT_EVERY_S
        if info.is_main:
            # metrics first: the rows always cover the checkpoint's steps (later rows are cut on resume)
            append_jsonl(jsonl, pending)
            pending.clear()
            state = weights_state(step_done)
            if best is not None:
                state["best"] = best
            save_checkpoint(ckpt_path, state, task.name)
            if redraw:
                plot_metrics(jsonl, os.path.join(s.out, "loss.png"), exclude=task.not_plotted, val_jsonl=val_jsonl)
        if redraw:
            # garbage in reference cycles (each loss plot leaves ~3,400 matplotlib objects in them) piles up
            # between Python's rare full collections: free it here, in every process (benchmarks/soak_memory.py:
            # +50-60 MiB per 1,000 steps without, flat with; docs/reliability.md)
            gc.collect()
            last_plot = time.perf_counter()

    done = start  # optimizer updates in the weights (what a checkpoint records)
    buffers: Optional[List[torch.Tensor]] = None  # BatchNorm statistics before the step in progress
    try:
        net.train()
        for step in bar:
            t0 = time.perf_counter()
            buffers = [b.detach().clone() for b in net.buffers()]
            for g in opt.param_groups:
                g["lr"] = task.lr_at(step)
            batch = task.batch(step, info, device)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                loss, logs, stats = task.loss(model, batch)
            if not loss.requires_grad:  # nothing to learn from in this shard (e.g. empty input crops):
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
                logs = {"step": step, **logs, "lr": task.lr_at(step), **stats,
                        "time_s": round(time.perf_counter() - t0, 4)}
                if info.is_main and step % s.log_every == 0:
                    pending.append(logs)
            bar.set_postfix({k: f"{logs[k]:.3f}" for k in task.postfix if k in logs})
            if validating and info.is_main and ((step + 1) % s.val_every == 0 or step + 1 == s.steps):
                validate(step + 1)  # before the checkpoint of the same step, which records the best score
            if (step + 1) % s.checkpoint_every == 0 or step + 1 == s.steps:
                checkpoint(step + 1)
    except KeyboardInterrupt:
        if buffers is not None:  # interrupted after the forward updated BatchNorm statistics, before the update
            with torch.no_grad():
                for b, v in zip(net.buffers(), buffers):
                    b.copy_(v)
        checkpoint(done, final=True)  # a step interrupted before its update is redone on resume; one after it is not
        raise
    if info.enabled:
        # DDP syncs buffers (BatchNorm running stats) at the start of each forward: sync the last update too
        import torch.distributed as dist
        for b in net.buffers():
            dist.broadcast(b, 0)
        atomic_write_json(os.path.join(s.out, f"replica_rank{info.rank}.json"),
                          {"rank": info.rank, "digest": params_digest(net), "step": s.steps})
    return logs

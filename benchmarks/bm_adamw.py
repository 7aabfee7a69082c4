"""AdamW implementations on the segmentation U-Net's weights: torch's per-tensor loop (foreach=False, the CPU
default), foreach (multi-tensor) and fused, side by side in one run.

    python benchmarks/bm_adamw.py [--data CROPS] [--steps 40] [--threads 2] [--device cpu]

1. Optimizer step alone: the default SegmentationUNet (configs/segmentation_default.yaml's widths), gradients of
   a fixed random draw, the median time of one ``opt.step()`` over ``--steps`` steps after 3 warm-up steps.
   Correctness first: the three run the same 5 steps from the same weights and gradients, and the largest
   weight difference to the per-tensor loop is reported (float32 rounding only).
2. With ``--data`` (a sparse3d.crops dataset of whole scenes, the segmentation recipe): the whole training step
   of `sparse3d train segmentation` (sparse3d.tasks.segmentation.train.segmentation_task: batch, forward, loss,
   backward, optimizer) with each implementation, the same weights and batches, the median over ``--steps``
   steps after 3 warm-up steps, the three interleaved step by step (in a rotating order) so that a noisy machine
   slows all alike. Each gets its own copy of the step's batch (the same boxes), so each builds its kernel maps.

Writes benchmarks/results/bm_adamw_<device>.json.
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from typing import Dict, List

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import machine_info, print_table, write_json  # noqa: E402

VARIANTS = {"per-tensor": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def optimizer_only(device: str, steps: int) -> Dict[str, Dict[str, float]]:
    from sparse3d.tasks.segmentation.config import load_config
    from sparse3d.tasks.segmentation.model import SegmentationUNet
    cfg = load_config(None, {})
    torch.manual_seed(0)
    base = SegmentationUNet(cfg.model).to(device)
    grads = [torch.randn_like(p) for p in base.parameters()]
    out: Dict[str, Dict[str, float]] = {}
    weights = {}
    for name, kw in VARIANTS.items():
        net = copy.deepcopy(base)
        params = list(net.parameters())
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **kw)
        for _ in range(5):
            opt.step()
        weights[name] = [p.detach().clone() for p in params]
        for _ in range(3):
            opt.step()
        times: List[float] = []
        for _ in range(steps):
            _sync(device)
            t = time.perf_counter()
            opt.step()
            _sync(device)
            times.append(time.perf_counter() - t)
        out[name] = {"step_ms": 1000 * statistics.median(times)}
    for name in VARIANTS:
        out[name]["max_abs_weight_diff_vs_per_tensor"] = max(
            float((a - b).abs().max()) for a, b in zip(weights[name], weights["per-tensor"]))
    out["_model"] = {"tensors": len(grads), "weights": sum(g.numel() for g in grads)}
    return out


def training_step(data: str, device: str, steps: int) -> Dict[str, Dict[str, float]]:
    from sparse3d.tasks.segmentation.config import load_config
    from sparse3d.tasks.segmentation.train import segmentation_task
    from sparse3d.train.distributed import DistInfo
    cfg = load_config(None, {"data": data, "out": os.devnull, "device": device})
    info = DistInfo(0, 1)
    dev = torch.device(device)
    task = segmentation_task(cfg, info, dev)
    torch.manual_seed(0)
    base = task.build_model().to(dev)
    runs = {}
    for name, kw in VARIANTS.items():
        net = copy.deepcopy(base)
        runs[name] = (net, torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, **kw))
    times: Dict[str, List[float]] = {n: [] for n in VARIANTS}
    names = list(runs)
    for s in range(3 + steps):
        for name in names[s % len(names):] + names[:s % len(names)]:  # the order rotates step by step
            net, opt = runs[name]
            b = task.batch(s, info, dev)  # a fresh copy per variant: each builds its own kernel maps
            _sync(device)
            t = time.perf_counter()
            loss, _, _ = task.loss(net, b)
            opt.zero_grad()
            loss.backward()
            opt.step()
            _sync(device)
            if s >= 3:
                times[name].append(time.perf_counter() - t)
    return {n: {"step_ms": 1000 * statistics.median(t)} for n, t in times.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=None, help="whole-scene crops (segmentation recipe) for the training step")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    result = {"machine": machine_info(a.device), "threads": a.threads, "device": a.device, "steps": a.steps,
              "optimizer_only": optimizer_only(a.device, a.steps)}
    rows = [[n, f"{r['step_ms']:.2f}", f"{result['optimizer_only']['per-tensor']['step_ms'] / r['step_ms']:.1f}x",
             f"{r['max_abs_weight_diff_vs_per_tensor']:.1e}"]
            for n, r in result["optimizer_only"].items() if not n.startswith("_")]
    print_table(["AdamW", "opt.step ms", "vs per-tensor", "max |w - w_per-tensor|"], rows)
    if a.data:
        result["training_step"] = training_step(a.data, a.device, a.steps)
        ref = result["training_step"]["per-tensor"]["step_ms"]
        print_table(["AdamW", "training step ms", "vs per-tensor"],
                    [[n, f"{r['step_ms']:.1f}", f"{ref / r['step_ms']:.2f}x"]
                     for n, r in result["training_step"].items()])
    path = write_json(f"bm_adamw_{a.device.split(':')[0]}", result)
    print("wrote", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Scene-completion training throughput and peak memory per conv backend.

    python benchmarks/bm_completion.py [--steps 10] [--size 32] [--batch 4] [--device cpu]

Backends: "native", "spconv" and "torch" (pure-PyTorch reference), each on every conv layer of
the model (spconv runs the generative transposed convs as its SparseConvTensor transposed conv).
Every backend trains the same model from the same seed on the same batches, one after another in
one run. A backend is reported "not available" only when ``get_backend(name)`` raises.
Each backend runs in its own fresh process (so none inherits another's allocator caches).
Peak memory: ``torch.cuda.max_memory_allocated`` on CUDA; on CPU the peak RSS (VmHWM, reset
after set-up through /proc/self/clear_refs) minus the RSS at the reset.
Writes benchmarks/results/bm_completion_<device>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import machine_info, write_json  # noqa: E402

import sparse3d.nn as snn  # noqa: E402
from sparse3d.backends import get_backend  # noqa: E402
from sparse3d.tasks.completion.dataset import collate  # noqa: E402
from sparse3d.tasks.completion.procedural import procedural_sample  # noqa: E402
from sparse3d.tasks.completion.model import CompletionConfig, CompletionNet  # noqa: E402
from sparse3d.tasks.completion.loss import completion_loss  # noqa: E402
from sparse3d.utils.measure import peak_rss_kib, reset_peak_rss  # noqa: E402


def bench(name: str, steps: int, size: int, batch: int, device: str, channels) -> dict:
    try:
        get_backend(name)
    except Exception as e:  # noqa: BLE001 - reported in the table
        return {"backend": name, "status": f"not available ({e})"}
    torch.manual_seed(0)
    net = CompletionNet(CompletionConfig(channels=tuple(channels))).to(device)
    snn.set_backend(net, name)
    assert all(getattr(m, "backend", name) == name for m in net.modules())
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    batches = [collate([procedural_sample(size, 100 * i + j) for j in range(batch)]) for i in range(2)]
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    rss0 = None if device.startswith("cuda") else reset_peak_rss()

    def step(i):
        x, t = batches[i % 2]
        x = x.to(device)
        t = type(t)(t.tsdf.to(device), t.known.to(device))
        out = net(x, bounds=t.shape, target_fn=t.occupied)
        loss, _ = completion_loss(out, t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return len(x)

    step(0)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    nvox = 0
    for i in range(steps):
        nvox += step(i)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda")
            else (peak_rss_kib() - rss0) / 1024)
    return {"backend": name, "status": "ok", "steps_per_s": steps / dt,
            "input_voxels_per_step": nvox / steps, "peak_mem_mib": peak}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--size", type=int, default=32, help="crop edge, voxels")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--channels", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--backends", nargs="+", default=["native", "spconv", "torch"])
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # one backend, JSON row on stdout
    a = ap.parse_args()
    if a.child:
        print("ROW " + json.dumps(bench(a.backends[0], a.steps, a.size, a.batch, a.device, a.channels)))
        return
    rows = []
    for b in a.backends:
        argv = [sys.executable, os.path.abspath(__file__), "--child", "--backends", b, "--steps", str(a.steps),
                "--size", str(a.size), "--batch", str(a.batch), "--device", a.device,
                "--channels", *map(str, a.channels)]
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(next(line[4:] for line in out.splitlines() if line.startswith("ROW "))))
    print(f"completion training, crops {a.size}^3 x {a.batch}, channels {a.channels}, device {a.device}, "
          f"threads {torch.get_num_threads()}")
    print(f"{'backend':<8} {'steps/s':>8} {'in vox/step':>12} {'peak MiB':>9} {'vs native':>10}")
    base = next((r["steps_per_s"] for r in rows if r["backend"] == "native" and r["status"] == "ok"), None)
    for r in rows:
        if r["status"] != "ok":
            print(f"{r['backend']:<8} {r['status']}")
        else:
            print(f"{r['backend']:<8} {r['steps_per_s']:>8.2f} {r['input_voxels_per_step']:>12.0f} "
                  f"{r['peak_mem_mib']:>9.1f} {r['steps_per_s'] / base if base else float('nan'):>9.2f}x")
    path = write_json(f"bm_completion_{a.device.split(':')[0]}", {"machine": machine_info(), "args": vars(a),
                                                                   "results": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""Scene-completion training throughput and peak memory per conv backend.

    python benchmarks/bm_completion.py [--steps 10] [--size 32] [--batch 4] [--device cpu] [--json out.json]

Backends: "native" (all layers), "torch" (pure-PyTorch reference, all layers) and "spconv"
(encoder only: the generative transposed convs that create child voxels have no spconv
equivalent and raise there, so the decoder stays on native). A backend is reported
"not available" only when ``sparse3d.backends.get_backend(name)`` raises.
Peak memory: ``torch.cuda.max_memory_allocated`` on CUDA; on CPU the growth of the process's
peak RSS during the run (a coarse upper bound; the first backend also pays allocator warm-up).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import sparse3d.nn as snn  # noqa: E402
from sparse3d.backends import get_backend  # noqa: E402
from sparse3d.data.completion_dataset import collate  # noqa: E402
from sparse3d.data.procedural import procedural_sample  # noqa: E402
from sparse3d.models.completion import CompletionConfig, CompletionNet  # noqa: E402
from sparse3d.nn.conv import GenerativeConvTranspose3d  # noqa: E402
from sparse3d.train.completion_loss import completion_loss  # noqa: E402


def set_backends(net: CompletionNet, name: str) -> str:
    """Apply ``name``; for spconv only the encoder (stem, enc, down). Returns what was applied."""
    if name != "spconv":
        snn.set_backend(net, name)
        return "all layers"
    snn.set_backend(net, "native")
    for part in (net.stem, net.enc, net.down):
        snn.set_backend(part, "spconv")
    assert not any(isinstance(m, GenerativeConvTranspose3d) and m.backend == "spconv" for m in net.modules())
    return "encoder only (generative transposed convs have no spconv equivalent)"


def bench(name: str, steps: int, size: int, batch: int, device: str, channels) -> dict:
    try:
        get_backend(name)
    except Exception as e:  # noqa: BLE001 - reported in the table
        return {"backend": name, "status": f"not available ({e})"}
    torch.manual_seed(0)
    net = CompletionNet(CompletionConfig(channels=tuple(channels))).to(device)
    scope = set_backends(net, name)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    batches = [collate([procedural_sample(size, 100 * i + j) for j in range(batch)]) for i in range(2)]
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

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
            else (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024)
    return {"backend": name, "status": "ok", "scope": scope, "steps_per_s": steps / dt,
            "input_voxels_per_step": nvox / steps, "peak_mem_mib": peak}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--size", type=int, default=32, help="crop edge, voxels")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--channels", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--backends", nargs="+", default=["native", "spconv", "torch"])
    ap.add_argument("--json", default="bm_completion.json")
    a = ap.parse_args()
    rows = [bench(b, a.steps, a.size, a.batch, a.device, a.channels) for b in a.backends]
    print(f"completion training, crops {a.size}^3 x {a.batch}, channels {a.channels}, device {a.device}, "
          f"threads {torch.get_num_threads()}")
    print(f"{'backend':<8} {'steps/s':>8} {'in vox/step':>12} {'peak MiB':>9}  scope")
    for r in rows:
        if r["status"] != "ok":
            print(f"{r['backend']:<8} {r['status']}")
        else:
            print(f"{r['backend']:<8} {r['steps_per_s']:>8.2f} {r['input_voxels_per_step']:>12.0f} "
                  f"{r['peak_mem_mib']:>9.1f}  {r['scope']}")
    with open(a.json + ".tmp", "w") as f:
        json.dump({"args": vars(a), "results": rows}, f, indent=1)
    os.replace(a.json + ".tmp", a.json)
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()

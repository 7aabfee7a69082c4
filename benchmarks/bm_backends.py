"""Backends side by side: one sparse U-Net, forward + backward, on native / spconv / torch.

A 4-level sparse U-Net (SubMConv3d blocks, Conv3d k2 s2 down, ConvTranspose3d k2 s2 up, skips by
channel concatenation) on a synthetic ScanNet-like room at 2 cm
(:func:`sparse3d.testing.scannet_like_room`). Every backend runs the *same* weights; each timed
step builds a fresh SparseTensor ("cold": kernel maps / spconv index pairs are built inside the
step, as for a new training batch), and again on the same tensor ("warm": maps cached). Medians
over ``--repeats`` (after one tiny untimed step per backend that loads libraries). The pure-PyTorch reference is slow, so it runs on a smaller room
(``--small-voxels``), where native and spconv are timed too for its ratio.

    python benchmarks/bm_backends.py                 # CPU, 250k + 20k voxels, 3 repeats
    python benchmarks/bm_backends.py --device cuda   # GPU (spconv uses its implicit GEMM there)

Prints a ratio table (time / native) and the max |diff| of each backend's output and gradients
against native, and writes benchmarks/results/bm_backends.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Dict, List

import torch
from torch import nn

import sparse3d as s3d
from sparse3d.testing import random_sparse, scannet_like_room
from sparse3d.utils.atomic_io import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results" / "bm_backends.json"


class SparseUNet(nn.Module):
    """4-level sparse U-Net: feats ``[N, in_ch]`` -> ``[N, n_out]`` on the input coordinates.

    Level l has ``channels[l]`` channels; each level has a SubMConv3d-ReLU block on the way down
    and (after ConvTranspose3d up + concatenation with the skip) on the way up.
    """

    def __init__(self, in_ch: int = 3, channels=(16, 32, 64, 128), n_out: int = 20, backend: str = "native"):
        super().__init__()
        S = s3d.nn
        self.stem = nn.Sequential(S.SubMConv3d(in_ch, channels[0], 3, backend=backend), S.ReLU())
        self.enc = nn.ModuleList(nn.Sequential(S.SubMConv3d(c, c, 3, backend=backend), S.ReLU()) for c in channels)
        self.down = nn.ModuleList(S.Conv3d(a, b, 2, 2, backend=backend) for a, b in zip(channels, channels[1:]))
        self.up = nn.ModuleList(S.ConvTranspose3d(b, a, 2, 2, backend=backend) for a, b in zip(channels, channels[1:]))
        self.dec = nn.ModuleList(nn.Sequential(S.SubMConv3d(2 * c, c, 3, backend=backend), S.ReLU())
                                 for c in channels[:-1])
        self.head = S.SubMConv3d(channels[0], n_out, 1, backend=backend)

    def forward(self, x: s3d.SparseTensor) -> s3d.SparseTensor:
        x = self.stem(x)
        skips = []
        for level, block in enumerate(self.enc):
            x = block(x)
            if level < len(self.down):
                skips.append(x)
                x = self.down[level](x)
        for level in reversed(range(len(self.up))):
            x = self.dec[level](s3d.ops.cat(skips[level], self.up[level](x)))
        return self.head(x)


def _step(model: nn.Module, coords: torch.Tensor, feats: torch.Tensor, target: torch.Tensor,
          x: s3d.SparseTensor | None = None):
    """One forward + backward; returns (output feats, {param name: grad}, the input tensor)."""
    model.zero_grad(set_to_none=True)
    if x is None:
        x = s3d.SparseTensor(coords, feats)
    out = model(x).feats
    loss = nn.functional.cross_entropy(out, target)
    loss.backward()
    return out.detach(), {n: p.grad.detach().clone() for n, p in model.named_parameters()}, x


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def bench_room(n_voxels: int, backends: List[str], repeats: int, device: str, seed: int = 0) -> Dict:
    coords = scannet_like_room(n_voxels, seed).to(device)
    g = torch.Generator().manual_seed(seed)
    feats = torch.rand(coords.shape[0], 3, generator=g).to(device)
    target = torch.randint(0, 20, (coords.shape[0],), generator=g).to(device)
    torch.manual_seed(seed)
    model = SparseUNet().to(device)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    res: Dict = {"n_voxels": int(coords.shape[0]), "backends": {}}
    ref_out = ref_grads = None
    for name in backends:
        model.load_state_dict(state)
        s3d.nn.set_backend(model, name)
        tiny = random_sparse(500, 24, 3, dtype=torch.float32, device=device)  # load libraries, JIT, allocator
        _step(model, tiny.coords, tiny.feats, target[:len(tiny)])
        cold, warm = [], []
        for r in range(repeats):
            _sync(device)
            t0 = time.perf_counter()
            o, gr, xr = _step(model, coords, feats, target)  # fresh tensor: maps / index pairs built inside
            _sync(device)
            cold.append(time.perf_counter() - t0)
            if r == 0:
                out, grads, x = o, gr, xr  # the outputs we compare
            t0 = time.perf_counter()
            _step(model, coords, feats, target, x)  # same tensor: maps / index pairs cached
            _sync(device)
            warm.append(time.perf_counter() - t0)
        entry = {"cold_s": statistics.median(cold), "warm_s": statistics.median(warm), "cold_all_s": cold,
                 "warm_all_s": warm}
        if ref_out is None:
            ref_out, ref_grads, ref_name = out, grads, name
        else:
            entry["vs"] = ref_name
            entry["out_max_abs_diff"] = (out - ref_out).abs().max().item()
            entry["out_max_abs"] = ref_out.abs().max().item()
            entry["grad_max_rel_diff"] = max(((grads[k] - ref_grads[k]).abs().max() /
                                              ref_grads[k].abs().max().clamp_min(1e-30)).item() for k in grads)
        res["backends"][name] = entry
        print(f"  {name:7s} n={coords.shape[0]:7d}  cold {entry['cold_s']:8.3f} s  warm {entry['warm_s']:8.3f} s"
              + (f"  |out - {ref_name}| max {entry['out_max_abs_diff']:.2e} (|out| max {entry['out_max_abs']:.2e}),"
                 f" grad rel diff max {entry['grad_max_rel_diff']:.2e}" if "vs" in entry else ""), flush=True)
    return res


def _table(rooms: List[Dict]) -> str:
    lines = ["| room voxels | backend | fwd+bwd cold (s) | ratio | fwd+bwd warm (s) | ratio | max abs diff vs native |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for room in rooms:
        base = room["backends"]["native"]
        for name, e in room["backends"].items():
            diff = f"{e['out_max_abs_diff']:.1e}" if "vs" in e else "-"
            lines.append(f"| {room['n_voxels']} | {name} | {e['cold_s']:.3f} | {e['cold_s'] / base['cold_s']:.2f} | "
                         f"{e['warm_s']:.3f} | {e['warm_s'] / base['warm_s']:.2f} | {diff} |")
    return "\n".join(lines)


def _write_json(path: Path, data: Dict) -> None:
    atomic_write_json(path, data, indent=2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--voxels", type=int, default=250_000, help="room size for native and spconv")
    p.add_argument("--small-voxels", type=int, default=20_000, help="room size that also runs the torch backend")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--out", type=Path, default=RESULTS)
    a = p.parse_args()
    if a.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device on this machine")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    rooms = []
    print(f"room {a.voxels} voxels: native, spconv")
    rooms.append(bench_room(a.voxels, ["native", "spconv"], a.repeats, a.device))
    if a.small_voxels:
        print(f"room {a.small_voxels} voxels: native, spconv, torch")
        rooms.append(bench_room(a.small_voxels, ["native", "spconv", "torch"], a.repeats, a.device))
    table = _table(rooms)
    print(table)
    import spconv

    data = {"benchmark": "bm_backends", "model": "SparseUNet 4 levels, channels (16, 32, 64, 128), 3 -> 20",
            "device": a.device, "repeats": a.repeats, "torch": torch.__version__,
            "spconv": getattr(spconv, "__version__", "unknown"), "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "rooms": rooms, "table_md": table,
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    _write_json(a.out, data)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()

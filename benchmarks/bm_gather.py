"""The native backend's two forms of a kernel map, side by side: neighbor tables vs pair lists.

``NativeBackend(gather="tables")`` reads the neighbor tables (CPU: the tiled kernel; CUDA: the pairs
are compacted from the table on every call, three times per forward+backward) and
``gather="pairs"`` the pair lists built once per kernel map (CPU: an ATen loop; CUDA: the
default). Submanifold 3x3x3 forward+backward on the ScanNet-like room, same inputs and weights,
medians of ``--repeats`` after warm-up (the maps are built before timing). Writes
``bm_gather_<device>.json``.

    python benchmarks/bm_gather.py [--device cpu|cuda] [--voxels 250000] [--channels 32 64] [--out DIR]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine_info, median_time, print_table, write_json  # noqa: E402

import sparse3d as s3d  # noqa: E402
from sparse3d.backends.native import NativeBackend  # noqa: E402
from sparse3d.testing import scannet_like_room  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--voxels", type=int, default=250_000)
    p.add_argument("--channels", type=int, nargs="+", default=[32, 64])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for bm_gather_<device>.json")
    a = p.parse_args()
    if a.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: torch.cuda.is_available() is False")
    dev = torch.device(a.device)
    coords = scannet_like_room(a.voxels, seed=0).to(dev)
    g = torch.Generator().manual_seed(0)
    rows = []
    for c in a.channels:
        x = s3d.SparseTensor(coords, torch.randn(len(coords), c, generator=g).to(dev))
        w = (torch.randn(27, c, c, generator=g) / (27 * c) ** 0.5).to(dev).requires_grad_(True)
        gout = torch.randn(len(coords), c, generator=g).to(dev)
        f = x.feats.clone().requires_grad_(True)
        xr = x.replace(f)
        times, outs = {}, {}
        for gather in ("tables", "pairs"):
            be = NativeBackend(gather=gather)

            def step(be=be):
                s3d.ops.conv3d(xr, w, None, 3, backend=be).feats.backward(gout)

            f.grad = w.grad = None
            step()  # also builds this form's structures on the shared kernel map
            outs[gather] = (f.grad.clone(), w.grad.clone())
            times[gather] = median_time(step, a.repeats, warmup=1, device=dev)
        diff = max(((outs["tables"][i] - outs["pairs"][i]).abs().max() / outs["tables"][i].abs().max()).item()
                   for i in range(2))  # float32 summation order differs between the forms
        rows.append(dict(voxels=len(coords), channels=c, tables_s=times["tables"], pairs_s=times["pairs"],
                         pairs_over_tables=times["pairs"] / times["tables"], max_rel_diff_grads=diff))
    print_table(["voxels", "C", "tables ms", "pairs ms", "pairs / tables", "max rel diff grads"],
                [(r["voxels"], r["channels"], r["tables_s"] * 1e3, r["pairs_s"] * 1e3, r["pairs_over_tables"],
                  r["max_rel_diff_grads"]) for r in rows])
    path = write_json(f"bm_gather_{a.device}", {"machine": machine_info(dev), "case": "subm k3 fwd+bwd",
                                               "repeats": a.repeats, "rows": rows}, a.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

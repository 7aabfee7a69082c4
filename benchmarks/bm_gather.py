"""The native backend's forms of a kernel map, side by side: neighbor tables, pair lists, implicit GEMM.

``NativeBackend(gather="tables")`` reads the neighbor tables (CPU: the tiled kernel; CUDA: the pairs
are compacted from the table on every call, three times per forward+backward);
``gather="pairs"`` the pair lists built once per kernel map (CPU: an ATen loop; CUDA: gather +
cuBLAS + scatter per offset, the default); ``gather="implicit"`` (CUDA only) the implicit-GEMM
kernels over row-sorted tables (csrc/conv/implicit_gemm.cuh). Submanifold 3x3x3 forward+backward
on the ScanNet-like room, same inputs and weights, medians of ``--repeats`` after warm-up (the maps
are built before timing); per dtype, each form's max relative difference from the tables form.
Writes ``bm_gather_<device>.json``.

    python benchmarks/bm_gather.py [--device cpu|cuda] [--voxels 250000] [--channels 32 64]
                                   [--dtypes float32 (cuda: float32 float16)] [--out DIR]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine_info, median_time, print_table, write_json  # noqa: E402

import sparse3d as s3d  # noqa: E402
from sparse3d import _ext  # noqa: E402
from sparse3d.backends.native import NativeBackend  # noqa: E402
from sparse3d.testing import scannet_like_room  # noqa: E402

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def tile_work(nbr: torch.Tensor, rows: torch.Tensor, tile: int = 64) -> float:
    """The implicit-GEMM kernels' tensor-core work with output rows visited in ``rows`` order: rows
    computed (tile rows x offsets active in some row of the tile) over useful rows (active pairs)."""
    t = nbr[rows] >= 0
    t = torch.cat([t, t.new_zeros((-len(t)) % tile, t.shape[1])]).reshape(-1, tile, t.shape[1])
    return float(t.any(1).sum()) * tile / max(int((nbr >= 0).sum()), 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--voxels", type=int, default=250_000)
    p.add_argument("--channels", type=int, nargs="+", default=[32, 64])
    p.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=None,
                   help="default: float32 on the CPU, float32 float16 on CUDA")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for bm_gather_<device>.json")
    a = p.parse_args()
    if a.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: torch.cuda.is_available() is False")
    dev = torch.device(a.device)
    dtypes = a.dtypes or (["float32", "float16"] if a.device == "cuda" else ["float32"])
    forms = ["tables", "pairs"] + (["implicit"] if a.device == "cuda" else [])
    torch.set_float32_matmul_precision("highest")  # no TF32 in the cuBLAS GEMMs of the pairs form
    coords = scannet_like_room(a.voxels, seed=0).to(dev)
    g = torch.Generator().manual_seed(0)
    rows = []
    for dname in dtypes:
        dtype = DTYPES[dname]
        for c in a.channels:
            x = s3d.SparseTensor(coords, torch.randn(len(coords), c, generator=g).to(dev, dtype))
            w = (torch.randn(27, c, c, generator=g) / (27 * c) ** 0.5).to(dev, dtype).requires_grad_(True)
            gout = torch.randn(len(coords), c, generator=g).to(dev, dtype)
            f = x.feats.clone().requires_grad_(True)
            xr = x.replace(f)
            times, outs = {}, {}
            for gather in forms:
                be = NativeBackend(gather=gather)

                def step(be=be):
                    s3d.ops.conv3d(xr, w, None, 3, backend=be).feats.backward(gout)

                f.grad = w.grad = None
                step()  # also builds this form's structures on the shared kernel map
                outs[gather] = (f.grad.clone(), w.grad.clone())
                times[gather] = median_time(step, a.repeats, warmup=1, device=dev)
            r = dict(voxels=len(coords), channels=c, dtype=dname)
            for gather in forms:
                r[f"{gather}_s"] = times[gather]
                if gather != "tables":  # summation order differs between the forms
                    r[f"max_rel_diff_grads_{gather}"] = max(
                        ((outs["tables"][i] - outs[gather][i]).abs().max() / outs["tables"][i].abs().max()).item()
                        for i in range(2))
            r["pairs_over_tables"] = times["pairs"] / times["tables"]
            if "implicit" in forms:
                r["implicit_over_pairs"] = times["implicit"] / times["pairs"]
            rows.append(r)
    x0 = s3d.SparseTensor(coords, torch.empty(len(coords), 1, device=dev))
    nbr = x0.manager.kernel_map(x0.key, x0.key, 3, 1).nbr_out.cpu()
    order = _ext.load().conv.implicit_table(nbr, len(coords)).order
    work = {"table_order": tile_work(nbr, torch.arange(len(nbr))), "offset_mask_sorted": tile_work(nbr, order)}
    print(f"implicit GEMM, 64-row tiles: rows computed / useful rows = {work['table_order']:.3f} in table order, "
          f"{work['offset_mask_sorted']:.3f} sorted by active-offset mask")
    heads = ["voxels", "C", "dtype"] + [f"{g_} ms" for g_ in forms] + ["pairs / tables"]
    heads += ["implicit / pairs"] if "implicit" in forms else []
    print_table(heads, [(r["voxels"], r["channels"], r["dtype"], *[r[f"{g_}_s"] * 1e3 for g_ in forms],
                         r["pairs_over_tables"], *([r["implicit_over_pairs"]] if "implicit" in forms else []))
                        for r in rows])
    path = write_json(f"bm_gather_{a.device}", {"machine": machine_info(dev), "case": "subm k3 fwd+bwd",
                                               "repeats": a.repeats, "rows": rows,
                                               "implicit_tile_work": work}, a.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""Sparse convolution on the CPU: sparse3d native vs spconv 2.3 (ConvAlgo.Native), side by side.

Same input (a ScanNet-like room at 2 cm, ~250k voxels, and a 10x smaller one), same weights,
one run. Times kernel-map build, submanifold 3x3x3 conv forward and forward+backward at C=32
and C=64, and strided convs (k=2 and k=3, stride 2). Prints medians and ratios, the max |diff|
between the two libraries, the measured dense GEMM rate and the fraction of it each conv
reaches (pairs x C_in x C_out x 2 flops per pass; x3 for forward+backward), and the peak
memory of forward+backward at 250k voxels, C=64. Writes benchmarks/results/bm_conv_cpu.json.

    python benchmarks/bm_conv.py [--repeats 5] [--sizes 250000 25000] [--no-memory]
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import gemm_rate, machine_info, median_time, peak_rss_mb, print_table, write_json  # noqa: E402

import sparse3d as s3d  # noqa: E402
from sparse3d.kernel import sparse_to_dense_weight  # noqa: E402
from sparse3d.testing import scannet_like_room  # noqa: E402

warnings.filterwarnings("ignore")


def _spconv():
    import spconv.pytorch as spconv
    from spconv.core import ConvAlgo
    from spconv.pytorch import ops as sops
    return spconv, ConvAlgo, sops


def to_spconv_weight(w: torch.Tensor) -> torch.Tensor:
    """sparse3d [K**3, C_in, C_out] -> spconv 2.x [C_out, K, K, K, C_in]."""
    return sparse_to_dense_weight(w).permute(0, 2, 3, 4, 1).contiguous()


def spconv_tensor(coords: torch.Tensor, feats: torch.Tensor):
    spconv, _, _ = _spconv()
    shape = (coords[:, 1:].max(0).values + 3).tolist()
    return spconv.SparseConvTensor(feats, coords, shape, int(coords[:, 0].max()) + 1)


def rows_in_our_order(ours: s3d.SparseTensor, sp_indices: torch.Tensor) -> torch.Tensor:
    """Row of each spconv output coordinate in our output tensor."""
    idx = s3d.ops.lookup(ours, sp_indices.int())
    assert (idx >= 0).all(), "spconv produced a coordinate sparse3d does not have"
    assert len(idx) == len(ours), f"spconv has {len(idx)} outputs, sparse3d {len(ours)}"
    return idx


def bench_size(n: int, repeats: int, gemm: float) -> list:
    spconv, ConvAlgo, sops = _spconv()
    coords = scannet_like_room(n, seed=0)
    n = len(coords)
    rows = []
    g = torch.Generator().manual_seed(0)

    # ---- kernel-map build (hash table + submanifold 3x3x3 map) ----------------------
    def ours_kmap():
        x = s3d.SparseTensor._make(torch.empty(n, 1), s3d.CoordinateManager(), 0)
        x.manager.insert(coords, 1)
        x.manager.kernel_map(0, 0, 3, 1).tables.get()  # both tables (built lazily)

    sp_in = spconv_tensor(coords, torch.empty(n, 1))

    def spconv_kmap():
        sops.get_indice_pairs(coords, 1, sp_in.spatial_shape, ConvAlgo.Native, [3, 3, 3], [1, 1, 1], [1, 1, 1],
                              [1, 1, 1], [0, 0, 0], True, False)

    t_o, t_s = median_time(ours_kmap, repeats), median_time(spconv_kmap, repeats)
    rows.append(dict(size=n, case="kernel map subm k3", ours_s=t_o, spconv_s=t_s, speedup=t_s / t_o,
                     max_abs_diff=0.0, gemm_frac_ours=None, gemm_frac_spconv=None))

    # ---- convolutions ---------------------------------------------------------------
    x_base = s3d.SparseTensor(coords, torch.empty(n, 1))
    cases = [("subm k3", 3, 1, 32, 32), ("subm k3", 3, 1, 64, 64), ("strided k2s2", 2, 2, 32, 64),
             ("strided k3s2", 3, 2, 32, 64)]
    for name, k, s, c_in, c_out in cases:
        feats = torch.randn(n, c_in, generator=g)
        w = torch.randn(k**3, c_in, c_out, generator=g) / (k**3 * c_in) ** 0.5
        x = x_base.replace(feats)
        y = s3d.ops.conv3d(x, w, None, k, s)  # builds and caches the maps
        km = x.manager.kernel_map(x.key, y.key, k, s)
        pairs = km.num_pairs
        if s == 1:
            layer = spconv.SubMConv3d(c_in, c_out, k, bias=False, indice_key="bm", algo=ConvAlgo.Native)
        else:
            layer = spconv.SparseConv3d(c_in, c_out, k, s, padding=(k - 1) // 2, bias=False, algo=ConvAlgo.Native)
        with torch.no_grad():
            layer.weight.copy_(to_spconv_weight(w))
        sx = spconv_tensor(coords, feats)
        sy = layer(sx)
        order = rows_in_our_order(y, sy.indices)
        diff = (sy.features - y.feats[order]).abs().max().item()
        # spconv re-uses its pairs through indice_dict for subm; strided pairs are rebuilt each call
        sx2 = spconv_tensor(coords, feats)
        if s == 1:
            sx2.indice_dict = sy.indice_dict

        def ours_fwd():
            with torch.no_grad():
                s3d.ops.conv3d(x, w, None, k, s)

        def spconv_fwd():
            with torch.no_grad():
                layer(sx2)

        gout = torch.randn(len(y), c_out, generator=g)
        fr = feats.clone().requires_grad_(True)
        wr = w.clone().requires_grad_(True)

        def ours_fb():
            out = s3d.ops.conv3d(x.replace(fr), wr, None, k, s)
            out.feats.backward(gout)

        sfeat = feats.clone().requires_grad_(True)
        sx3 = spconv_tensor(coords, sfeat)
        if s == 1:
            sx3.indice_dict = sy.indice_dict

        def spconv_fb():
            out = layer(sx3)
            out.features.backward(gout)  # same values, spconv's row order: same cost

        for label, fo, fs, mult in (("fwd", ours_fwd, spconv_fwd, 1), ("fwd+bwd", ours_fb, spconv_fb, 3)):
            t_o, t_s = median_time(fo, repeats), median_time(fs, repeats)
            flops = pairs * c_in * c_out * 2 * mult
            rows.append(dict(size=n, case=f"{name} C={c_in}->{c_out} {label}", ours_s=t_o, spconv_s=t_s,
                             speedup=t_s / t_o, max_abs_diff=diff, pairs=pairs,
                             gemm_frac_ours=flops / t_o / gemm, gemm_frac_spconv=flops / t_s / gemm))
    return rows


MEMORY_CODE = """
import sys, torch, warnings
warnings.filterwarnings('ignore')
sys.path.insert(0, {bench!r})
from bm_conv import spconv_tensor, to_spconv_weight, _spconv
import sparse3d as s3d
from sparse3d.testing import scannet_like_room
coords = scannet_like_room({n}, seed=0)
n = len(coords)
feats = torch.randn(n, 64, requires_grad=True)
w = torch.randn(27, 64, 64, requires_grad=True)
gout = torch.randn(n, 64)
which = {which!r}
if which == 'spconv':
    spconv, ConvAlgo, _ = _spconv()
    layer = spconv.SubMConv3d(64, 64, 3, bias=False, indice_key='m', algo=ConvAlgo.Native)
    x = spconv_tensor(coords, feats)
else:
    x = s3d.SparseTensor(coords, feats.detach()).replace(feats)
RESET_PEAK
for _ in range(2):
    if which == 'spconv':
        layer(x).features.backward(gout)
    else:
        s3d.ops.conv3d(x, w, None, 3).feats.backward(gout)
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--sizes", type=int, nargs="+", default=[250_000, 25_000])
    p.add_argument("--no-memory", action="store_true")
    args = p.parse_args()
    gemm = gemm_rate()
    print(f"dense GEMM rate (2048^3 sgemm, {torch.get_num_threads()} threads): {gemm / 1e9:.1f} GFLOP/s")
    rows = []
    for n in args.sizes:
        rows += bench_size(n, args.repeats, gemm)
    table = [(r["size"], r["case"], r["ours_s"] * 1e3, r["spconv_s"] * 1e3, r["speedup"], r["max_abs_diff"],
              r["gemm_frac_ours"] if r["gemm_frac_ours"] is not None else "-",
              r["gemm_frac_spconv"] if r["gemm_frac_spconv"] is not None else "-") for r in rows]
    print_table(["voxels", "case", "sparse3d ms", "spconv ms", "speedup", "max|diff|", "GEMM frac s3d",
                 "GEMM frac spconv"], table)
    memory = {}
    if not args.no_memory:
        bench = str(Path(__file__).resolve().parent)
        n = max(args.sizes)
        for which in ("sparse3d", "spconv"):
            memory[which] = peak_rss_mb(MEMORY_CODE.format(bench=bench, n=n, which=which))
        print(f"peak RSS growth, subm k3 C=64 fwd+bwd at {n} voxels: sparse3d {memory['sparse3d']:.0f} MiB, "
              f"spconv {memory['spconv']:.0f} MiB")
    path = write_json("bm_conv_cpu", {"machine": machine_info(), "gemm_flops": gemm, "rows": rows,
                                       "peak_rss_mib": memory, "repeats": args.repeats})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

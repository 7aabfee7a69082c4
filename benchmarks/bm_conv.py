"""Sparse convolution: sparse3d native vs spconv 2.3, side by side, on the CPU or on a CUDA GPU.

Same input (a ScanNet-like room at 2 cm), same weights, one run. Times the kernel-map build,
submanifold 3x3x3 conv forward and forward+backward, and strided convs (k=2 and k=3, stride 2,
C=32->64). Prints medians and ratios (speedup = spconv time / sparse3d time), the max |diff|
between the two libraries (forward; relative for the gradients), the measured dense GEMM rate and
the fraction of it each conv reaches (pairs x C_in x C_out x 2 flops per pass; x3 for
forward+backward), and peak memory.

``--device cpu`` (default): spconv runs ``ConvAlgo.Native``; rooms of 250k and 25k voxels, C=32
and 64, float32; dense sgemm 2048^3 on the torch threads; peak RSS growth of forward+backward (C=64,
largest room) in a child process per library. Writes benchmarks/results/bm_conv_cpu.json.
(``--dtypes float16`` / ``--unet`` run on the CPU too, to check those code paths; CPU float16
matmul is slow, its rates mean little.)

``--device cuda``: spconv runs its implicit GEMM (``ConvAlgo.MaskImplicitGemm``, its CUDA
default), sparse3d the "native" backend (its own CUDA kernels); rooms of 250k and 1M voxels,
C=32, 64 and 128, float32 and float16, plus a 4-level sparse U-Net (``SparseUNet`` of
bm_backends.py, the same weights on backend "native" and "spconv") forward and forward+backward.
Times are medians of runs synchronized before and after (``torch.cuda.synchronize``), after
``--warmup`` runs (spconv tunes its kernels on first use); dense GEMM rates are 8192^3
``torch.mm`` in float32 with TF32 off (``torch.set_float32_matmul_precision("highest")``, which
our cuBLAS calls follow; spconv's own TF32 switch is off by default, both recorded) and in float16
(tensor cores). Peak memory of each forward+backward is the CUDA caching allocator's peak
(``torch.cuda.max_memory_allocated``). float16 rows also give each library's max |diff| from
our float32 result. Writes benchmarks/results/bm_conv_cuda.json.

``--gather`` picks sparse3d's form of the kernel map (``NativeBackend(gather=...)``): ``auto`` (the
default: tables on the CPU, pair lists + cuBLAS on CUDA) or ``implicit`` (the implicit-GEMM CUDA
kernels, csrc/conv/implicit_gemm.cuh), written to bm_conv_<device>_<gather>.json. ``--simd`` (CPU) caps
the instruction set of sparse3d's direct float32 kernels (``NativeBackend(simd=...)``: ``auto``, ``avx512``,
``avx2``, ``none`` for the tiled GEMM path), written to bm_conv_cpu_simd-<simd>.json when not ``auto``.

The JSON is rewritten after each room (``"complete": false`` until the end). A case that raises
is reported (traceback), recorded under ``"errors"`` and skipped; the exit status is then 1.

    python benchmarks/bm_conv.py [--repeats 5] [--sizes 250000 25000] [--no-memory] [--out DIR]
    python benchmarks/bm_conv.py --device cuda [--sizes 250000 1000000] [--dtypes float32 float16]
                                 [--channels 32 64 128] [--no-unet] [--warmup 3] [--no-memory] [--out DIR]
                                 [--gather auto|tables|pairs|implicit]
    python benchmarks/bm_conv.py --simd avx2       # the AVX2 kernels on a CPU that also has AVX-512
"""
from __future__ import annotations

import argparse
import copy
import sys
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (RESULTS, cuda_peak_mib, gemm_rate, machine_info, median_time, peak_rss_mb,  # noqa: E402
                    print_table, write_json)

import sparse3d as s3d  # noqa: E402
from sparse3d.backends.native import GATHER_MODES, SIMD_MODES, NativeBackend  # noqa: E402
from sparse3d.kernel import sparse_to_spconv_weight  # noqa: E402
from sparse3d.testing import scannet_like_room  # noqa: E402
from spconv_peer import (rows_in_our_order, spconv_algo, spconv_layer, spconv_pair_builder,  # noqa: E402
                         spconv_tensor, spconv_version)

warnings.filterwarnings("ignore")

DTYPES = {"float32": torch.float32, "float16": torch.float16}
# per device: the defaults of --sizes, --channels, --dtypes, --warmup, --unet
DEFAULTS = {
    "cpu": dict(sizes=[250_000, 25_000], channels=[32, 64], dtypes=["float32"], warmup=1, unet=False),
    "cuda": dict(sizes=[250_000, 1_000_000], channels=[32, 64, 128], dtypes=["float32", "float16"], warmup=3,
                 unet=True),
}
STRIDED = [("strided k2s2", 2, 2, 32, 64), ("strided k3s2", 3, 2, 32, 64)]  # (name, k, stride, C_in, C_out)


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


def max_rel(pairs: Sequence[tuple]) -> float:
    """max over (a, b) of max|a - b| / max|b|."""
    return max(max_abs(a, b) / max(b.float().abs().max().item(), 1e-30) for a, b in pairs)


def conv_flops(pairs: int, c_in: int, c_out: int, fwd_bwd: bool) -> int:
    """pairs x C_in x C_out x 2 per pass; forward+backward = 3 passes (forward, input grad, weight grad)."""
    return pairs * c_in * c_out * 2 * (3 if fwd_bwd else 1)


def conv_cases(channels: Sequence[int]) -> List[tuple]:
    """(name, k, stride, C_in, C_out): submanifold 3x3x3 at C_in = C_out = each of ``channels``, then the
    strided convs."""
    return [("subm k3", 3, 1, c, c) for c in channels] + STRIDED


@dataclass
class Bench:
    """What every case shares: where and how to time, and the measured GEMM rate per dtype name."""

    device: torch.device
    repeats: int
    warmup: int
    gemm: Dict[str, float]
    memory: bool  # CUDA: peak memory of each forward+backward (CPU: child processes, see main)
    ours: NativeBackend  # sparse3d's side (--gather)
    errors: List[dict] = field(default_factory=list)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def time(self, fn: Callable[[], object]) -> float:
        return median_time(fn, self.repeats, self.warmup, self.device)

    def guard(self, what: str, fn: Callable[..., List[dict]], *args) -> List[dict]:
        """``fn(*args)``'s rows; if it raises, print the traceback, record ``{"case": what, "error": ...}``
        in ``errors`` and go on with the other cases (one failing case must not lose a whole GPU
        run; main exits with status 1 after writing the JSON)."""
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001 -- reported loudly, recorded, and the exit status says so
            traceback.print_exc()
            msg = f"{type(e).__name__}: {e}"
            print(f"ERROR in {what}: {msg.splitlines()[0] if msg else type(e).__name__}", file=sys.stderr, flush=True)
            self.errors.append({"case": what, "error": msg[:2000]})
            if self.cuda:
                torch.cuda.empty_cache()
            return []

    def peak(self, fn: Callable[[], object]) -> Optional[float]:
        """Peak CUDA memory of one ``fn()`` in MiB (None on the CPU or with --no-memory)."""
        if not (self.cuda and self.memory):
            fn()
            return None
        return cuda_peak_mib(fn, self.device)


def row(size: int, case: str, dtype: Optional[str], t_o: float, t_s: float, diff: float, flops: Optional[int] = None,
        gemm: Optional[float] = None, **extra) -> dict:
    r = dict(size=size, case=case, dtype=dtype, ours_s=t_o, spconv_s=t_s, speedup=t_s / t_o, max_abs_diff=diff,
             gemm_frac_ours=None, gemm_frac_spconv=None)
    if flops is not None:
        r.update(flops=flops, gemm_frac_ours=flops / t_o / gemm, gemm_frac_spconv=flops / t_s / gemm)
    r.update(extra)
    return r


def bench_kernel_map(coords: torch.Tensor, b: Bench) -> dict:
    """Submanifold 3x3x3 map from scratch (ours: sorted keys and the structures the native conv reads
    on this device, built lazily: both neighbor tables on the CPU, the output-side table and its
    pair lists on CUDA) vs spconv's pair generation."""
    n = len(coords)

    def ours_kmap():
        x = s3d.SparseTensor._make(torch.empty(n, 1, device=b.device), s3d.CoordinateManager(b.device), 0)
        x.manager.insert(coords, 1)
        km = x.manager.kernel_map(0, 0, 3, 1)
        plan = b.ours.plan(km)  # the native backend's plan of the map: its forms are built on first access
        if b.ours.gather == "implicit":
            plan.implicit_out, plan.implicit_in, plan.pairs  # noqa: B018 - built on first access
        elif b.ours.gather == "pairs" or (b.ours.gather == "auto" and b.cuda):
            plan.pairs  # noqa: B018 - built on first access
        else:
            km.tables.get()

    sp_in = spconv_tensor(coords, torch.empty(n, 1, device=b.device))
    spconv_kmap = spconv_pair_builder(coords, sp_in.spatial_shape, spconv_algo(b.device))
    return row(n, "kernel map subm k3", None, b.time(ours_kmap), b.time(spconv_kmap), 0.0)


def bench_conv(coords: torch.Tensor, x_base: s3d.SparseTensor, case: tuple, dtypes: Sequence[str],
               g: torch.Generator, b: Bench) -> List[dict]:
    """Forward and forward+backward rows of one conv case, per dtype (same values, cast)."""
    name, k, s, c_in, c_out = case
    n, dev = len(coords), b.device
    feats32 = torch.randn(n, c_in, generator=g)
    w32 = torch.randn(k**3, c_in, c_out, generator=g) / (k**3 * c_in) ** 0.5
    y32 = s3d.ops.conv3d(x_base.replace(feats32.to(dev)), w32.to(dev), None, k, s, backend=b.ours)  # caches the maps
    pairs = x_base.manager.kernel_map(x_base.key, y32.key, k, s).num_pairs
    gout32 = torch.randn(len(y32), c_out, generator=g)

    def one(dname: str) -> List[dict]:
        rows = []
        dtype = DTYPES[dname]
        x = x_base.replace(feats32.to(dev, dtype))
        w = w32.to(dev, dtype)
        y = y32 if dtype == torch.float32 else s3d.ops.conv3d(x, w, None, k, s, backend=b.ours)
        layer = spconv_layer(k, s, c_in, c_out, spconv_algo(dev)).to(dev, dtype)
        with torch.no_grad():
            layer.weight.copy_(sparse_to_spconv_weight(w))
        sy = layer(spconv_tensor(coords, x.feats))
        order = rows_in_our_order(y, sy.indices)  # our row of each spconv output row
        diff = max_abs(sy.features, y.feats[order])
        extra = {}
        if dtype != torch.float32:  # each library against the float32 result (ours, TF32 off)
            extra = dict(max_abs_diff_ours_vs_fp32=max_abs(y.feats, y32.feats),
                         max_abs_diff_spconv_vs_fp32=max_abs(sy.features, y32.feats[order]),
                         max_abs_fp32=y32.feats.abs().max().item())
        gout = gout32.to(dev, dtype)
        gout_sp = gout[order]  # the same gradient in spconv's row order

        def sp_input(feats):
            """spconv tensor on feats; submanifold convs reuse the pairs built above (as through an
            indice_key); spconv's modules rebuild strided pairs on every call."""
            sx = spconv_tensor(coords, feats)
            if s == 1:
                sx.indice_dict = sy.indice_dict
            return sx

        sx_fwd = sp_input(x.feats)

        def ours_fwd():
            with torch.no_grad():
                s3d.ops.conv3d(x, w, None, k, s, backend=b.ours)

        def spconv_fwd():
            with torch.no_grad():
                layer(sx_fwd)

        fr, wr = x.feats.clone().requires_grad_(True), w.clone().requires_grad_(True)
        xr = x.replace(fr)
        sfeat = x.feats.clone().requires_grad_(True)
        sx_fb = sp_input(sfeat)

        def ours_fb():
            s3d.ops.conv3d(xr, wr, None, k, s, backend=b.ours).feats.backward(gout)

        def spconv_fb():
            layer(sx_fb).features.backward(gout_sp)

        # gradients once, from zero, on fresh leaves (also the peak memory of one forward+backward)
        fo, wo = x.feats.clone().requires_grad_(True), w.clone().requires_grad_(True)
        peak_o = b.peak(lambda: s3d.ops.conv3d(x.replace(fo), wo, None, k, s, backend=b.ours).feats.backward(gout))
        fs = x.feats.clone().requires_grad_(True)
        sx_check = sp_input(fs)
        layer.zero_grad(set_to_none=True)
        peak_s = b.peak(lambda: layer(sx_check).features.backward(gout_sp))
        grad_diff = max_rel([(fs.grad, fo.grad), (layer.weight.grad, sparse_to_spconv_weight(wo.grad))])
        layer.zero_grad(set_to_none=True)

        gemm = b.gemm[dname]
        for label, f_o, f_s, fb in (("fwd", ours_fwd, spconv_fwd, False), ("fwd+bwd", ours_fb, spconv_fb, True)):
            more = dict(extra, spconv_includes_pair_build=(s != 1))
            if fb:
                more["max_rel_diff_grads"] = grad_diff
                if b.cuda:
                    more.update(peak_mem_ours_mib=peak_o, peak_mem_spconv_mib=peak_s)
            rows.append(row(n, f"{name} C={c_in}->{c_out} {label}", dname, b.time(f_o), b.time(f_s), diff,
                            conv_flops(pairs, c_in, c_out, fb), gemm, pairs=pairs, **more))
        return rows

    rows = []
    for dname in dtypes:
        rows += b.guard(f"{n} voxels, {name} C={c_in}->{c_out}, {dname}", one, dname)
    return rows


def bench_unet(coords: torch.Tensor, dtypes: Sequence[str], b: Bench, seed: int = 0) -> List[dict]:
    """SparseUNet (bm_backends.py) on backend native vs the same weights on backend "spconv" (sparse3d's
    adapter: spconv's pairs and convs, Native on CPU, implicit GEMM on CUDA): forward and
    forward+backward on a tensor whose maps are cached ("warm"), and forward+backward on a fresh
    tensor whose maps / pairs are built inside the step ("cold")."""
    from bm_backends import SparseUNet

    n, dev = len(coords), b.device
    g = torch.Generator().manual_seed(seed)
    feats32 = torch.rand(n, 3, generator=g)
    torch.manual_seed(seed)
    model32 = SparseUNet()
    gout32 = torch.randn(n, model32.head.weight.shape[-1], generator=g)  # head weight [1, C, n_out]
    ref = []  # ours in float32, computed once if another dtype needs it

    def one(dname: str) -> List[dict]:
        rows = []
        dtype = DTYPES[dname]
        feats, gout = feats32.to(dev, dtype), gout32.to(dev, dtype)
        models = {"ours": s3d.nn.set_backend(copy.deepcopy(model32), b.ours).to(dev, dtype),
                  "spconv": s3d.nn.set_backend(copy.deepcopy(model32), "spconv").to(dev, dtype)}
        xs = {lib: s3d.SparseTensor(coords, feats) for lib in models}  # one tensor (one map cache) per library
        outs, grads, peaks, fns = {}, {}, {}, {}
        for lib, model in models.items():
            x = xs[lib]

            def fwd(model=model, x=x):
                with torch.no_grad():
                    model(x)

            def fb(model=model, x=x):
                model.zero_grad(set_to_none=True)
                model(x).feats.backward(gout)

            def fb_cold(model=model):
                model.zero_grad(set_to_none=True)
                model(s3d.SparseTensor(coords, feats)).feats.backward(gout)

            with torch.no_grad():
                outs[lib] = model(x).feats.float()  # also builds x's maps / pairs
            peaks[lib] = b.peak(fb)
            grads[lib] = {k: p.grad.detach().clone() for k, p in model.named_parameters()}
            fns[lib] = {"fwd": fwd, "fwd+bwd": fb, "fwd+bwd cold": fb_cold}
        diff = max_abs(outs["spconv"], outs["ours"])
        grad_diff = max_rel([(grads["spconv"][k], grads["ours"][k]) for k in grads["ours"]])
        extra = {}
        if dtype != torch.float32:
            if not ref:
                with torch.no_grad():
                    ours32 = s3d.nn.set_backend(copy.deepcopy(model32), b.ours).to(dev)
                    ref.append(ours32(s3d.SparseTensor(coords, feats32.to(dev))).feats)
            extra = dict(max_abs_diff_ours_vs_fp32=max_abs(outs["ours"], ref[0]),
                         max_abs_diff_spconv_vs_fp32=max_abs(outs["spconv"], ref[0]),
                         max_abs_fp32=ref[0].abs().max().item())
        for label in ("fwd", "fwd+bwd", "fwd+bwd cold"):
            more = dict(extra)
            if label != "fwd":
                more["max_rel_diff_grads"] = grad_diff
            if label == "fwd+bwd" and b.cuda:
                more.update(peak_mem_ours_mib=peaks["ours"], peak_mem_spconv_mib=peaks["spconv"])
            rows.append(row(n, f"unet {label}", dname, b.time(fns["ours"][label]), b.time(fns["spconv"][label]), diff,
                            **more))
        return rows

    rows = []
    for dname in dtypes:
        rows += b.guard(f"{n} voxels, unet, {dname}", one, dname)
    return rows


def bench_size(n: int, b: Bench, channels: Sequence[int], dtypes: Sequence[str], unet: bool) -> List[dict]:
    coords = scannet_like_room(n, seed=0).to(b.device)
    n = len(coords)
    print(f"room of {n} voxels on {b.device}: kernel map, convs C={list(channels)} {list(dtypes)}"
          + (", U-Net" if unet else ""), flush=True)
    rows = b.guard(f"{n} voxels, kernel map", lambda: [bench_kernel_map(coords, b)])
    x_base = s3d.SparseTensor(coords, torch.empty(n, 1, device=b.device))
    g = torch.Generator().manual_seed(0)
    for case in conv_cases(channels):
        rows += b.guard(f"{n} voxels, {case[0]} C={case[3]}->{case[4]}", bench_conv, coords, x_base, case, dtypes, g, b)
    if unet:
        rows += b.guard(f"{n} voxels, unet", bench_unet, coords, dtypes, b)
    return rows


MEMORY_CODE = """
import sys, torch, warnings
warnings.filterwarnings('ignore')
sys.path.insert(0, {bench!r})
from spconv_peer import spconv_tensor, _spconv
import sparse3d as s3d
from sparse3d.backends.native import NativeBackend
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
        s3d.ops.conv3d(x, w, None, 3, backend=NativeBackend(simd={simd!r})).feats.backward(gout)
"""


def _fmt(v):
    return "-" if v is None else v


def print_rows(rows: List[dict], cuda: bool) -> None:
    headers = ["voxels", "case", "dtype", "sparse3d ms", "spconv ms", "speedup", "max|diff|", "GEMM frac s3d",
               "GEMM frac spconv"]
    if cuda:
        headers += ["peak MiB s3d", "peak MiB spconv"]
    table = []
    for r in rows:
        line = [r["size"], r["case"], _fmt(r["dtype"]), r["ours_s"] * 1e3, r["spconv_s"] * 1e3, r["speedup"],
                r["max_abs_diff"], _fmt(r["gemm_frac_ours"]), _fmt(r["gemm_frac_spconv"])]
        if cuda:
            line += [_fmt(r.get("peak_mem_ours_mib")), _fmt(r.get("peak_mem_spconv_mib"))]
        table.append(line)
    print_table(headers, table)


def gemm_rates(device: torch.device, dtypes: Sequence[str], warmup: int) -> Dict[str, float]:
    """Measured dense GEMM rate (FLOP/s) per dtype name. CPU: 2048^3 in float32 on the torch threads,
    median of 5 (512^3 for float16, whose CPU matmul is very slow); CUDA: 8192^3, median of 10,
    float32 without TF32 (set by main), float16 on the tensor cores."""
    rates = {}
    for dname in dtypes:
        if device.type == "cuda":
            n, repeats, where = 8192, 10, torch.cuda.get_device_name(device)
            note = "TF32 off" if dname == "float32" else "tensor cores"
        else:
            n, repeats, where, note = (2048 if dname == "float32" else 512), 5, f"{torch.get_num_threads()} threads", ""
        rates[dname] = gemm_rate(n, repeats, DTYPES[dname], device, warmup)
        rate = f"{rates[dname] / 1e12:.1f} TFLOP/s" if device.type == "cuda" else f"{rates[dname] / 1e9:.1f} GFLOP/s"
        print(f"dense GEMM rate ({n}^3 torch.mm, {dname}{', ' + note if note else ''}, {where}): {rate}")
    return rates


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (the median is kept)")
    p.add_argument("--warmup", type=int, default=None, help="untimed runs before them (default: cpu 1, cuda 3)")
    p.add_argument("--sizes", type=int, nargs="+", default=None,
                   help="room sizes in voxels (default: cpu 250000 25000, cuda 250000 1000000)")
    p.add_argument("--channels", type=int, nargs="+", default=None,
                   help="C_in = C_out of the submanifold convs (default: cpu 32 64, cuda 32 64 128)")
    p.add_argument("--dtypes", choices=list(DTYPES), nargs="+", default=None,
                   help="feature/weight dtypes (default: cpu float32, cuda float32 float16)")
    p.add_argument("--unet", action=argparse.BooleanOptionalAction, default=None,
                   help="also time the sparse U-Net of bm_backends.py (default: on for cuda, off for cpu)")
    p.add_argument("--gather", choices=GATHER_MODES, default="auto",
                   help="sparse3d's kernel-map form, NativeBackend(gather=...) (default: auto; 'implicit': the "
                        "implicit-GEMM CUDA kernels). Not 'auto' adds _<gather> to the JSON name")
    p.add_argument("--simd", choices=SIMD_MODES, default="auto",
                   help="the widest instruction set of sparse3d's direct CPU kernels, NativeBackend(simd=...) "
                        "(default: auto). Not 'auto' adds _simd-<simd> to the JSON name")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurements")
    p.add_argument("--out", type=Path, default=RESULTS, metavar="DIR",
                   help="folder of bm_conv_<device>.json (default: %(default)s)")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.exit(2, f"{p.prog}: error: --device cuda: torch.cuda.is_available() is False (no usable CUDA GPU, "
                  "or a CPU-only torch build); use --device cpu\n")
    for key, value in DEFAULTS[args.device].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.simd != "auto" and (args.device == "cuda" or args.gather in ("pairs", "implicit")):
        p.error(f"--simd {args.simd} picks CPU kernels of --gather auto/tables; got --device {args.device} --gather "
                f"{args.gather}")
    if args.repeats < 1 or args.warmup < 0:
        p.error(f"--repeats must be >= 1 and --warmup >= 0, got {args.repeats} and {args.warmup}")
    if min(args.sizes) < 1000 or min(args.channels) < 1:
        p.error(f"--sizes must be >= 1000 voxels and --channels >= 1, got {args.sizes} and {args.channels}")
    return args


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    torch.set_float32_matmul_precision("highest")  # no TF32 in float32 matmuls (cuBLAS: ours and the GEMM rate)
    gemm = gemm_rates(device, args.dtypes, args.warmup)
    b = Bench(device, args.repeats, args.warmup, gemm, not args.no_memory,
              NativeBackend(gather=args.gather, simd=args.simd))
    from spconv import constants as sp_constants

    payload = {"machine": dict(machine_info(device), spconv=spconv_version()), "device": args.device,
               "gemm_flops": gemm.get("float32"), "gemm_flops_by_dtype": gemm, "repeats": args.repeats,
               "warmup": args.warmup, "gather": args.gather, "simd": args.simd, "spconv_algo": spconv_algo(device).name,
               "float32_matmul_precision": torch.get_float32_matmul_precision(),
               "spconv_allow_tf32": bool(getattr(sp_constants, "SPCONV_ALLOW_TF32", False)),
               "sizes": args.sizes, "channels": args.channels, "dtypes": args.dtypes, "unet": args.unet,
               "complete": False, "rows": [], "errors": b.errors}
    if b.cuda:
        payload["cublas_fp16_reduced_precision_reduction"] = bool(
            torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction)
        payload["peak_mem_note"] = ("peak_mem_*_mib: CUDA caching allocator peak above what was allocated before "
                                    "one forward+backward (kernel maps / spconv pairs already built), MiB")
    name = (f"bm_conv_{args.device}" + ("" if args.gather == "auto" else f"_{args.gather}")
            + ("" if args.simd == "auto" else f"_simd-{args.simd}"))
    for n in args.sizes:
        payload["rows"] += bench_size(n, b, args.channels, args.dtypes, args.unet)
        write_json(name, payload, args.out)  # partial results survive a later crash ("complete": false)
    print_rows(payload["rows"], b.cuda)
    if not b.cuda:
        memory = {}
        if not args.no_memory:
            bench = str(Path(__file__).resolve().parent)
            n = max(args.sizes)
            for which in ("sparse3d", "spconv"):
                memory[which] = peak_rss_mb(MEMORY_CODE.format(bench=bench, n=n, which=which, simd=args.simd))
            print(f"peak RSS growth, subm k3 C=64 fwd+bwd at {n} voxels: sparse3d {memory['sparse3d']:.0f} MiB, "
                  f"spconv {memory['spconv']:.0f} MiB")
        payload["peak_rss_mib"] = memory
    payload["complete"] = True
    path = write_json(name, payload, args.out)
    print(f"wrote {path}")
    if b.errors:
        raise SystemExit(f"bm_conv: {len(b.errors)} case(s) failed: " + "; ".join(e["case"] for e in b.errors)
                         + f" (tracebacks above, messages under 'errors' in {path})")


if __name__ == "__main__":
    main()

"""A small workload that runs every CUDA kernel of sparse3d once, for compute-sanitizer.

Hash build + lookup, sorted keys, neighbor tables + inversion (submanifold, strided, transposed,
generative), and conv forward + both backward passes in float32, float16, bfloat16 and float64,
plus pooling, pruning and unions; then checks the results against the CPU. Exits 0 when all agree.

    compute-sanitizer --tool memcheck --error-exitcode 1 python3 scripts/cuda_smoke.py
    python3 scripts/cuda_smoke.py --voxels 200000   # larger, without the sanitizer
    python scripts/cuda_smoke.py --device cpu      # the same checks of the CPU kernels (no GPU needed)
    python3 scripts/cuda_smoke.py --gather implicit  # the convs through the implicit-GEMM kernels
"""
from __future__ import annotations

import argparse
import sys

import torch

import sparse3d as s3d
from sparse3d import _ext
from sparse3d.backends.native import GATHER_MODES, NativeBackend
from sparse3d.testing import scannet_like_room


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--voxels", type=int, default=20_000, help="voxels of the synthetic room (>= 1000)")
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                   help="device under test, compared with float64 on the CPU (default: cuda)")
    p.add_argument("--gather", default="auto", choices=GATHER_MODES,
                   help="the native backend's kernel-map form for the convs under test (default: auto)")
    args = p.parse_args()
    if args.gather == "implicit" and args.device != "cuda":
        p.error("--gather implicit runs the implicit-GEMM CUDA kernels: it needs --device cuda")
    C = _ext.load()
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda needs a GPU: torch.cuda.is_available() is False")
    if args.device == "cuda" and not C.with_cuda:
        p.error("--device cuda: sparse3d._C was built without CUDA: rebuild with FORCE_CUDA=1")
    dev_t = args.device
    coords = scannet_like_room(args.voxels, seed=0)
    coords = torch.cat([coords, coords + torch.tensor([1, 0, 0, 0], dtype=torch.int32)])  # two batch items
    coords = coords[torch.randperm(len(coords), generator=torch.Generator().manual_seed(0))]  # unsorted input
    g = torch.Generator().manual_seed(1)
    problems = []

    def check(name: str, got: torch.Tensor, want: torch.Tensor, tol: float) -> None:
        err = (got.detach().double().cpu() - want.detach().double()).abs().max().item() if want.numel() else 0.0
        scale = max(want.detach().double().abs().max().item() if want.numel() else 0.0, 1.0)
        status = "ok" if err <= tol * scale else "MISMATCH"
        print(f"{name:<46} max|diff| {err:.3e}  {status}")
        if status != "ok":
            problems.append(name)

    table = C.hash.build(coords.to(dev_t))
    check("hash lookup", table.lookup(coords.to(dev_t)).float(), torch.arange(len(coords)).float(), 0)
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5), (torch.float16, 1e-2), (torch.bfloat16, 4e-2)):
        x_cpu = s3d.SparseTensor(coords, torch.randn(len(coords), 16, generator=g, dtype=torch.float64))
        x_test = s3d.SparseTensor(coords.to(dev_t), x_cpu.feats.to(dev_t, dtype))
        outs = {}
        for run, x in (("reference", x_cpu), ("test", x_test)):
            dev, dt = (("cpu", torch.float64) if run == "reference" else (dev_t, dtype))
            be = NativeBackend() if run == "reference" else NativeBackend(gather=args.gather)
            torch.manual_seed(2)
            w3 = (torch.randn(27, 16, 32, dtype=torch.float64) / 20).to(dev, dt).requires_grad_(True)
            w2 = (torch.randn(8, 32, 16, dtype=torch.float64) / 20).to(dev, dt).requires_grad_(True)
            f = x.feats.clone().requires_grad_(True)
            a = s3d.ops.conv3d(x.replace(f), w3, None, 3, backend=be)  # submanifold
            b = s3d.ops.conv3d(a, w2, None, 2, 2, backend=be)  # strided k2 s2, 32 -> 16 channels
            w2t = w2.transpose(1, 2).contiguous()
            c = s3d.ops.conv_transpose3d(b, w2t, None, 2, 2, backend=be)  # back onto a's coordinates
            d = s3d.ops.generative_conv_transpose3d(b, w2t, None, 2, 2, backend=be)
            u = s3d.ops.add(a, s3d.ops.prune(a, a.coords[:, 1] % 2 == 0))
            e = s3d.ops.avg_pool3d(u, 3, 2)
            m = s3d.ops.max_pool3d(u, 3, 2)  # forward only: which voxel wins a near-tie differs across dtypes
            loss = c.feats.float().square().sum() + d.feats.float().sum() + e.feats.float().sum()
            loss.backward()
            outs[run] = dict(subm=a.feats, strided=b.feats, transposed=c.feats, generative=d.feats, avg_pooled=e.feats, max_pooled=m.feats,
                             input_grad=f.grad, weight_grad=w3.grad, weight_grad_k2=w2.grad)
        for key, want in outs["reference"].items():
            check(f"{key} {str(dtype).replace('torch.', '')}", outs["test"][key], want, tol)
    if dev_t == "cuda":
        torch.cuda.synchronize()
    if problems:
        print(f"{len(problems)} mismatches: {', '.join(problems)}", file=sys.stderr)
        return 1
    print(f"all {dev_t} results (gather={args.gather}) agree with float64 on the CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())

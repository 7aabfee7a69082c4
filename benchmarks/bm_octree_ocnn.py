"""sparse3d's octree side by side with ocnn-pytorch (O-CNN), the anchor, on the same points.

    pip install --no-deps ocnn          # benchmark-only dependency (ocnn 2.3.3 was used)
    python benchmarks/bm_octree_ocnn.py [--repeats 5] [--threads 1] [--depths 6 7 8] [--simd auto]

ocnn's package imports torchvision (only for one model's ResNet-18), which has no build for this CPU torch:
the benchmark installs a stand-in ``torchvision`` module in ``sys.modules`` before importing ocnn (its
``models.resnet18`` raises if called; nothing here calls it). Nothing outside this script sees it.

Scenes: the Stanford bunny's surface (``../shared/data/meshes/bunny.ply``) and a synthetic room
(:func:`data_tools.synthetic.make_room`), each sampled with trimesh (area-weighted, seeded) into points
with face normals, scaled into [-0.9, 0.9]^3 (O-CNN's advice). For each depth (6, 7, 8):

* the node counts per depth (all nodes and non-empty ones) of both octrees, and their shuffled keys, must
  be equal;
* ocnn's ``OctreeConv`` (3x3x3, stride 1, on all nodes; on the CPU ocnn runs its ``block_gemm``) with its
  weights copied into ours: ocnn's ``weights`` are ``[27, C_in, C_out]`` with the offsets enumerated x slowest,
  z fastest (``range_grid``, ``lut_parent`` = ``[9, 3, 1]``) -- the layout and offset order of
  :mod:`sparse3d.kernel`, so the conversion is the identity; the outputs agree within float32 rounding
  (max |diff| / max |out| printed);
* the medians of ``--repeats`` timings of the conv's forward + backward (C = 32 and 64, input and weight
  gradients), and of the octree build (points -> octree with the 3x3x3 neighbour tables of every depth,
  which ocnn's ``construct_all_neigh`` builds and ours builds on first use), both in one run, same threads.

Our conv runs the native backend with ``NativeBackend(simd=--simd)``: ``auto`` (the widest direct kernels the
CPU has; AVX-512 where present) or ``avx2`` / ``none`` to time what a CPU without AVX-512 gets.

Writes benchmarks/results/octree_ocnn.json (``--simd`` other than auto: octree_ocnn_simd-<simd>.json).
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
import types
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import torch

from sparse3d.backends.native import SIMD_MODES, NativeBackend

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "octree_ocnn.json"
BUNNY = ROOT / ".." / "shared" / "data" / "meshes" / "bunny.ply"


def import_ocnn() -> Any:
    """ocnn with a stand-in torchvision (see the module doc)."""
    if "torchvision" not in sys.modules:
        tv = types.ModuleType("torchvision")
        models = types.ModuleType("torchvision.models")

        def resnet18(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("torchvision stand-in of bm_octree_ocnn.py: resnet18 is not available")

        models.resnet18 = resnet18  # type: ignore[attr-defined]
        tv.models = models  # type: ignore[attr-defined]
        sys.modules["torchvision"] = tv
        sys.modules["torchvision.models"] = models
    import ocnn

    return ocnn


def scene_points(name: str, n: int, seed: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """(points float32 [n, 3] in [-0.9, 0.9]^3, normals float32 [n, 3]) sampled on a scene's surface."""
    import trimesh

    if name == "bunny":
        mesh = trimesh.load(BUNNY, process=False)
    elif name == "room":
        from data_tools.synthetic import make_room

        v, f = make_room(seed).mesh()[:2]
        mesh = trimesh.Trimesh(v, f, process=False)
    else:
        raise ValueError(f"scene must be 'bunny' or 'room', got {name!r}")
    pts, face = trimesh.sample.sample_surface(mesh, n, seed=seed)
    normals = mesh.face_normals[face]
    lo, hi = pts.min(0), pts.max(0)
    pts = (pts - (lo + hi) / 2) / (hi - lo).max() * 1.8
    return torch.as_tensor(pts, dtype=torch.float32), torch.as_tensor(normals, dtype=torch.float32)


def median_time(fn: Callable[[], Any], repeats: int, warm_up: bool = True) -> float:
    if warm_up:  # also builds cached tables
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def build_ours(points: torch.Tensor, normals: torch.Tensor, depth: int) -> Any:
    from sparse3d.octree import Octree

    octree, _ = Octree.from_points(points, depth, normals=normals, full_depth=2)
    for d in range(1, depth + 1):
        octree.neighbors(d)
    return octree


def build_ocnn(ocnn: Any, points: torch.Tensor, normals: torch.Tensor, depth: int) -> Any:
    pc = ocnn.octree.Points(points, normals)
    octree = ocnn.octree.Octree(depth, full_depth=2)
    octree.build_octree(pc)
    octree.construct_all_neigh()
    return octree


def compare_structure(ours: Any, theirs: Any, depth: int) -> Dict[str, Any]:
    counts = {"ours": [], "ocnn": [], "ours_nempty": [], "ocnn_nempty": []}
    keys_equal = True
    nbr_equal = True
    for d in range(depth + 1):
        counts["ours"].append(ours.num_nodes(d))
        counts["ours_nempty"].append(ours.num_nodes(d, nempty=True))
        counts["ocnn"].append(int(theirs.nnum[d]))
        counts["ocnn_nempty"].append(int(theirs.nnum_nempty[d]))
        keys_equal &= bool(torch.equal(ours.keys[d], theirs.keys[d].long()))
        if d >= 1:
            nbr_equal &= bool(torch.equal(ours.neighbors(d).long(), theirs.neighs[d].long()))
    equal = counts["ours"] == counts["ocnn"] and counts["ours_nempty"] == counts["ocnn_nempty"]
    return {"counts": counts, "counts_equal": equal, "keys_equal": keys_equal, "neighbors_equal": nbr_equal}


def conv_case(ocnn: Any, ours: Any, theirs: Any, depth: int, c: int, repeats: int, backend: Any
              ) -> Dict[str, Any]:
    from sparse3d.octree import octree_conv

    torch.manual_seed(c + depth)
    layer = ocnn.nn.OctreeConv(c, c, kernel_size=[3], stride=1, nempty=False)
    weight = layer.weights.detach().clone().contiguous()  # [27, C_in, C_out], our layout and offset order
    n = ours.num_nodes(depth)
    x = torch.randn(n, c)
    x1 = x.clone().requires_grad_(True)
    x2 = x.clone().requires_grad_(True)
    w1 = weight.clone().requires_grad_(True)
    y_ours = octree_conv(x1, ours, depth, w1, backend=backend)
    y_ocnn = layer(x2, theirs, depth)
    diff = float((y_ours - y_ocnn).detach().abs().max())
    scale = float(y_ocnn.detach().abs().max())
    g = torch.randn_like(y_ours)
    y_ours.backward(g)
    y_ocnn.backward(g)
    gdiff = float((x1.grad - x2.grad).abs().max()) / max(float(x2.grad.abs().max()), 1e-30)
    wdiff = float((w1.grad - layer.weights.grad).abs().max()) / max(float(layer.weights.grad.abs().max()), 1e-30)

    def step_ours() -> None:
        w1.grad = None
        x1.grad = None
        octree_conv(x1, ours, depth, w1, backend=backend).backward(g)

    def step_ocnn() -> None:
        layer.zero_grad(set_to_none=True)
        x2.grad = None
        layer(x2, theirs, depth).backward(g)

    # both ran once above (the numerics check, which also built our cached kernel map): no further warm-up
    t_ours = median_time(step_ours, repeats, warm_up=False)
    t_ocnn = median_time(step_ocnn, repeats, warm_up=False)
    return {"depth": depth, "C": c, "nodes": n, "max_abs_diff": diff, "max_abs_out": scale,
            "rel_diff": diff / max(scale, 1e-30), "input_grad_rel_diff": gdiff, "weight_grad_rel_diff": wdiff,
            "ours_s": t_ours, "ocnn_s": t_ocnn, "speedup": t_ocnn / t_ours}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--depths", type=int, nargs="+", default=[6, 7, 8])
    ap.add_argument("--channels", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--points", type=int, default=200_000)
    ap.add_argument("--scenes", nargs="+", default=["bunny", "room"])
    ap.add_argument("--no-conv", action="store_true", help="only the structure and build timings")
    ap.add_argument("--simd", choices=SIMD_MODES, default="auto",
                    help="our conv's NativeBackend(simd=...): the widest direct-kernel instruction set")
    ap.add_argument("--out", type=Path, default=None, help=f"JSON path (default: {RESULTS})")
    args = ap.parse_args()
    if args.out is None:
        args.out = RESULTS if args.simd == "auto" else RESULTS.with_name(f"octree_ocnn_simd-{args.simd}.json")
    backend = NativeBackend(simd=args.simd)
    torch.set_num_threads(args.threads)
    ocnn = import_ocnn()
    from sparse3d.utils.atomic_io import atomic_write_json

    result: Dict[str, Any] = {"ocnn_version": getattr(ocnn, "__version__", "?"), "torch": torch.__version__,
                              "threads": args.threads, "repeats": args.repeats, "points": args.points,
                              "simd": args.simd,
                              "machine": platform.processor() or platform.machine(), "scenes": {}}
    rows: List[str] = []
    for scene in args.scenes:
        if scene == "bunny" and not BUNNY.exists():
            print(f"skipping bunny: {BUNNY} is absent")
            continue
        pts, nrm = scene_points(scene, args.points)
        per: Dict[str, Any] = {"structure": {}, "build": {}, "conv": []}
        for depth in args.depths:
            ours = build_ours(pts, nrm, depth)
            theirs = build_ocnn(ocnn, pts, nrm, depth)
            per["structure"][depth] = compare_structure(ours, theirs, depth)
            tb_ours = median_time(lambda: build_ours(pts, nrm, depth), args.repeats)
            tb_ocnn = median_time(lambda: build_ocnn(ocnn, pts, nrm, depth), args.repeats)
            per["build"][depth] = {"ours_s": tb_ours, "ocnn_s": tb_ocnn, "speedup": tb_ocnn / tb_ours}
            s = per["structure"][depth]
            rows.append(f"{scene:6s} d={depth} nodes {s['counts']['ours'][-1]:>8d} counts_equal={s['counts_equal']} "
                        f"keys_equal={s['keys_equal']} nbr_equal={s['neighbors_equal']}  build ours "
                        f"{tb_ours * 1e3:7.1f} ms ocnn {tb_ocnn * 1e3:7.1f} ms  x{tb_ocnn / tb_ours:.2f}")
            print(rows[-1], flush=True)
            for c in [] if args.no_conv else args.channels:
                r = conv_case(ocnn, ours, theirs, depth, c, args.repeats, backend)
                per["conv"].append(r)
                rows.append(f"{scene:6s} d={depth} C={c:3d} conv fwd+bwd ours {r['ours_s'] * 1e3:8.1f} ms ocnn "
                            f"{r['ocnn_s'] * 1e3:8.1f} ms  x{r['speedup']:.2f}  rel diff out {r['rel_diff']:.1e} "
                            f"grad_in {r['input_grad_rel_diff']:.1e} grad_w {r['weight_grad_rel_diff']:.1e}")
                print(rows[-1], flush=True)
                result["scenes"][scene] = per
                result["table"] = rows
                atomic_write_json(args.out, result)  # after every case, so a long run keeps what it measured
        result["scenes"][scene] = per
    result["table"] = rows
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()

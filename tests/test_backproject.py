"""3DMV back-projection (sparse3d.ops.backproject, csrc/project) and view selection.

The ground truth is a float64 loop over voxels and views written from the contract in
sparse3d/ops/backproject.py; the kernel and the vectorised torch implementation are both checked
against it, the backward by gradcheck and against torch autograd, and the whole op on real 7-Scenes
frames against the colour the project's TSDF fusion gives the same voxels.
"""
from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest
import torch

from sparse3d import _C
from sparse3d.ops import backproject, backproject_torch, select_views, view_coverage
from sparse3d.ops.backproject import prepare_inputs, project_pairs
from sparse3d.ops.view_selection import greedy_cover

IMPLS = {"kernel": backproject, "torch": backproject_torch}


def _look_at(eye: torch.Tensor, target: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """cam_to_world [4, 4] (OpenCV: +x right, +y down, +z forward) at eye looking at target."""
    f = target - eye
    f = f / f.norm()
    up = torch.randn(3, generator=g, dtype=torch.float64)
    r = torch.linalg.cross(f, up)
    r = r / r.norm()
    d = torch.linalg.cross(f, r)
    m = torch.eye(4, dtype=torch.float64)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = r, d, f, eye
    return m


def make_scene(seed: int, B: int = 2, V: int = 5, N: int = 90, C: int = 3, H: int = 24, W: int = 32,
               h: int = 6, w: int = 8, dtype: torch.dtype = torch.float64) -> dict:
    """Random voxels seen by random cameras whose depth maps are z-buffers of the voxel centres
    plus noise (so the depth test passes and fails), with invalid pixels (0, NaN, inf)."""
    g = torch.Generator().manual_seed(seed)
    vsize = 0.05 + 0.05 * torch.rand(B, generator=g, dtype=torch.float64)
    v2w = torch.zeros(B, 4, 4, dtype=torch.float64)
    for b in range(B):
        q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
        v2w[b, :3, :3] = q * vsize[b]
        v2w[b, :3, 3] = torch.randn(3, generator=g, dtype=torch.float64)
        v2w[b, 3, 3] = 1
    rows = []
    for b in range(B):
        xyz = torch.unique(torch.randint(0, 12, (N // B, 3), generator=g), dim=0)
        rows.append(torch.cat([torch.full((len(xyz), 1), b), xyz], 1))
    coords = torch.cat(rows).to(torch.int32)
    view_batch = torch.arange(V) % B
    c2w = torch.zeros(V, 4, 4, dtype=torch.float64)
    intr = torch.zeros(V, 4, dtype=torch.float64)
    depth = torch.zeros(V, H, W, dtype=torch.float32)
    ones = torch.ones(len(coords), 1, dtype=torch.float64)
    world = torch.einsum("nij,nj->ni", v2w[coords[:, 0].long()], torch.cat([coords[:, 1:].double(), ones], 1))
    for v in range(V):
        b = int(view_batch[v])
        centre = v2w[b] @ torch.tensor([6.0, 6.0, 6.0, 1.0], dtype=torch.float64)
        eye = centre[:3] + torch.nn.functional.normalize(torch.randn(3, generator=g, dtype=torch.float64), dim=0) * (
            1.0 + torch.rand(1, generator=g, dtype=torch.float64))
        c2w[v] = _look_at(eye, centre[:3], g)
        intr[v] = torch.tensor([0.9 * W, 0.9 * W, W / 2 - 0.3, H / 2 + 0.2], dtype=torch.float64)
        zbuf = torch.full((H, W), math.inf, dtype=torch.float64)
        cam = (torch.linalg.inv(c2w[v]) @ world[coords[:, 0] == b].T).T
        for x, y, z in cam[:, :3].tolist():
            u, vv = math.floor(intr[v, 0] * x / z + intr[v, 2] + 0.5), math.floor(intr[v, 1] * y / z + intr[v, 3] + 0.5)
            if z > 0 and 0 <= u < W and 0 <= vv < H:
                zbuf[vv, u] = min(zbuf[vv, u], z)
        noise = (torch.rand(H, W, generator=g, dtype=torch.float64) - 0.5) * 1.6 * vsize[b]
        background = 0.2 + 4 * torch.rand(H, W, generator=g, dtype=torch.float64)
        d = torch.where(torch.isfinite(zbuf), zbuf + noise, background)
        r = torch.rand(H, W, generator=g)
        d[r < 0.05] = 0
        d[(r >= 0.05) & (r < 0.07)] = math.nan
        d[(r >= 0.07) & (r < 0.08)] = math.inf
        depth[v] = d.float()
    feats2d = torch.randn(V, C, h, w, generator=g, dtype=torch.float64).to(dtype)
    return dict(coords=coords, voxel_to_world=v2w, feats2d=feats2d, depth=depth, intrinsics=intr,
                cam_to_world=c2w, view_batch=view_batch)


def loop_reference(s: dict, pool: str, depth_thresh=None, near=0.1, far=10.0):
    """float64 loops over voxels and views, straight from the contract: (feats [N, C], n_views [N])."""
    coords, v2w, f2d = s["coords"].tolist(), s["voxel_to_world"].numpy(), s["feats2d"].double().numpy()
    depth, intr, c2w, vb = s["depth"].numpy(), s["intrinsics"].numpy(), s["cam_to_world"].numpy(), s["view_batch"]
    V, C, h, w = f2d.shape
    H, W = depth.shape[1:]
    out, nv = np.zeros((len(coords), C)), np.zeros(len(coords), np.int64)
    for n, (b, i, j, k) in enumerate(coords):
        thresh = depth_thresh if depth_thresh is not None else np.linalg.norm(v2w[b, :3, :3], axis=0).mean()
        X = v2w[b] @ np.array([i, j, k, 1.0])
        vals = []
        for v in range(V):
            if int(vb[v]) != b or not (np.isfinite(c2w[v]).all() and np.isfinite(intr[v]).all()):
                continue
            x, y, z = (np.linalg.inv(c2w[v]) @ X)[:3]
            if z <= 0:
                continue
            pu = math.floor(intr[v, 0] * x / z + intr[v, 2] + 0.5)
            pv = math.floor(intr[v, 1] * y / z + intr[v, 3] + 0.5)
            if not (0 <= pu < W and 0 <= pv < H):
                continue
            d = float(depth[v, pv, pu])
            if not (math.isfinite(d) and d > 0 and near <= d <= far and abs(d - z) <= thresh):
                continue
            vals.append(f2d[v, :, (2 * pv + 1) * h // (2 * H), (2 * pu + 1) * w // (2 * W)])
        nv[n] = len(vals)
        if vals:
            out[n] = np.max(vals, 0) if pool == "max" else np.mean(vals, 0)
    return torch.from_numpy(out), torch.from_numpy(nv)


@pytest.mark.parametrize("impl", sorted(IMPLS))
@pytest.mark.parametrize("pool", ["max", "mean"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_float64_loop_reference(impl, pool, seed):
    s = make_scene(seed, B=2 + seed % 2, V=4 + seed, C=2 + seed, h=6 + seed, w=5 + 2 * seed)
    res = IMPLS[impl](**s, pool=pool)
    ref, nv = loop_reference(s, pool)
    assert 0 < int((nv > 0).sum()) < len(nv)  # the scene exercises both outcomes
    assert int(nv.max()) >= 2  # and pooling over several views
    torch.testing.assert_close(res.n_views.long(), nv)
    torch.testing.assert_close(res.feats, ref, rtol=1e-12, atol=1e-12)
    assert res.skipped_views.numel() == 0


@pytest.mark.parametrize("pool", ["max", "mean"])
def test_threshold_near_far_and_resolution_arguments(pool):
    s = make_scene(5, V=4, h=24, w=32)  # full-resolution features
    for kw in (dict(depth_thresh=0.02), dict(depth_thresh=0.3, near=1.0, far=1.6)):
        res = backproject(**s, pool=pool, **kw)
        ref, nv = loop_reference(s, pool, **kw)
        torch.testing.assert_close(res.n_views.long(), nv)
        torch.testing.assert_close(res.feats, ref, rtol=1e-12, atol=1e-12)
    assert int(backproject(**s, depth_thresh=0.02).n_views.sum()) < int(backproject(**s, depth_thresh=0.3).n_views.sum())


@pytest.mark.parametrize("pool", ["max", "mean"])
def test_gradcheck(pool):
    s = make_scene(3, B=1, V=3, N=40, C=2, H=12, W=16, h=3, w=4)
    f = s.pop("feats2d").requires_grad_(True)
    assert int(backproject(feats2d=f, **s).n_views.max()) >= 2

    def fn(x):
        return backproject(feats2d=x, **s, pool=pool).feats

    assert torch.autograd.gradcheck(fn, (f,), eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("pool", ["max", "mean"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_backward_matches_torch_autograd(pool, dtype):
    s = make_scene(4, V=6, C=5, dtype=dtype)
    f = s.pop("feats2d")
    grad_out = torch.randn(len(s["coords"]), f.shape[1], dtype=dtype)
    grads = []
    for impl in (backproject, backproject_torch):
        x = f.clone().requires_grad_(True)
        res = impl(feats2d=x, **s, pool=pool)
        assert res.feats.dtype == dtype
        (res.feats * grad_out).sum().backward()
        grads.append(x.grad)
    assert grads[0].abs().sum() > 0
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(grads[0], grads[1], rtol=tol, atol=tol)


def test_max_ties_go_to_the_lowest_view():
    s = make_scene(6, B=1, V=4, C=2)
    s["feats2d"] = torch.ones_like(s["feats2d"])  # every view ties
    f = s.pop("feats2d").requires_grad_(True)
    res = backproject(feats2d=f, **s, pool="max")
    res.feats.sum().backward()
    n, v, pix = project_pairs(prepare_inputs(**s, depth_thresh=None, near=0.1, far=10.0), *f.shape[2:])
    first = torch.full((len(s["coords"]),), 99).scatter_reduce(0, n, v, "amin")  # lowest passing view
    per_view = f.grad.sum(dim=(1, 2, 3))
    expect = torch.bincount(first[res.n_views > 0], minlength=f.shape[0]).double() * f.shape[1]
    torch.testing.assert_close(per_view, expect)
    x = f.detach().clone().requires_grad_(True)
    backproject_torch(feats2d=x, **s, pool="max").feats.sum().backward()
    torch.testing.assert_close(x.grad, f.grad)


def test_non_finite_views_are_skipped_and_counted():
    s = make_scene(7, B=2, V=6)
    bad = dict(s)
    bad["cam_to_world"] = s["cam_to_world"].clone()
    bad["cam_to_world"][1, 0, 3] = math.nan
    bad["intrinsics"] = s["intrinsics"].clone()
    bad["intrinsics"][4, 2] = math.inf
    keep = torch.tensor([0, 2, 3, 5])
    sub = {k: (t[keep] if k not in ("coords", "voxel_to_world") else t) for k, t in s.items()}
    for impl in IMPLS.values():
        res = impl(**bad, pool="mean")
        assert res.skipped_views.tolist() == [1, 4]
        assert torch.isfinite(res.feats).all()
        ref = impl(**sub, pool="mean")
        torch.testing.assert_close(res.feats, ref.feats, rtol=0, atol=0)
        torch.testing.assert_close(res.n_views, ref.n_views)
    sel = select_views(**{k: t for k, t in bad.items() if k != "feats2d"}, k=6)
    assert sel.skipped_views.tolist() == [1, 4] and not set(sel.views.flatten().tolist()) & {1, 4}


def test_empty_inputs():
    s = make_scene(8)
    empty = dict(s, coords=torch.zeros(0, 4, dtype=torch.int32))
    for impl in IMPLS.values():
        res = impl(**empty)
        assert res.feats.shape == (0, s["feats2d"].shape[1]) and res.n_views.shape == (0,)
        no_views = dict(s, feats2d=s["feats2d"][:0], depth=s["depth"][:0], intrinsics=s["intrinsics"][:0],
                        cam_to_world=s["cam_to_world"][:0], view_batch=s["view_batch"][:0])
        res = impl(**no_views)
        assert res.feats.shape == (len(s["coords"]), s["feats2d"].shape[1])
        assert not res.feats.any() and not res.n_views.any()
    f = s["feats2d"].clone().requires_grad_(True)
    backproject(**dict(empty, feats2d=f)).feats.sum().backward()
    assert f.grad is not None and not f.grad.any()


@pytest.mark.parametrize("impl", sorted(IMPLS))
def test_argument_errors(impl):
    fn = IMPLS[impl]
    s = make_scene(9, V=4)
    cases = [
        (dict(feats2d=s["feats2d"][:3]), ValueError, "feats2d must have V=4"),
        (dict(depth=s["depth"][:, :, None]), ValueError, "depth must have shape [V, H, W]"),
        (dict(intrinsics=s["intrinsics"][:, :3]), ValueError, "intrinsics must have shape [V, 4]"),
        (dict(cam_to_world=s["cam_to_world"][:3]), ValueError, "cam_to_world must have V=4 rows"),
        (dict(view_batch=s["view_batch"].int()), TypeError, "view_batch must be int64"),
        (dict(view_batch=s["view_batch"] + 5), ValueError, "view_batch must be in [0, B=2)"),
        (dict(coords=s["coords"].long()), ValueError, "coords must be int32 [N, 4]"),
        (dict(coords=s["coords"] + torch.tensor([3, 0, 0, 0], dtype=torch.int32)), ValueError,
         "coords' batch index must be in [0, B=2)"),
        (dict(voxel_to_world=s["voxel_to_world"][:, :3]), ValueError, "voxel_to_world must have shape [B, 4, 4]"),
        (dict(feats2d=s["feats2d"].long()), TypeError, "feats2d must be a floating-point tensor"),
        (dict(feats2d=s["feats2d"].numpy()), TypeError, "feats2d must be a torch.Tensor"),
        (dict(pool="sum"), ValueError, "pool must be one of ('max', 'mean'), got 'sum'"),
        (dict(near=2.0, far=1.0), ValueError, "near and far must be finite numbers with 0 <= near < far"),
        (dict(depth_thresh=-1.0), ValueError, "depth_thresh must be a positive number"),
        (dict(intrinsics=s["intrinsics"] * torch.tensor([-1.0, 1, 1, 1], dtype=torch.float64)), ValueError,
         "intrinsics must have fx > 0 and fy > 0"),
        (dict(cam_to_world=torch.zeros_like(s["cam_to_world"])), ValueError, "cam_to_world must be invertible"),
    ]
    for change, exc, msg in cases:
        with pytest.raises(exc, match=re.escape(msg)):
            fn(**dict(s, **change))


def test_kernel_checks_raise_python_exceptions():
    s = make_scene(10, V=3)
    p = prepare_inputs(**{k: t for k, t in s.items() if k != "feats2d"}, depth_thresh=None, near=0.1, far=10.0)
    geo = (p.coords, p.voxel_to_world, s["feats2d"], p.depth, p.intrinsics, p.world_to_cam, p.view_batch,
           p.depth_thresh, p.near, p.far, True)
    with pytest.raises(TypeError, match="depth must be Float"):
        _C.project.forward(*geo[:3], p.depth.double(), *geo[4:])
    with pytest.raises(ValueError, match="feats2d must have V=3"):
        _C.project.forward(geo[0], geo[1], s["feats2d"][:2], *geo[3:])
    with pytest.raises(ValueError, match=r"view_batch must be in \[0, B=2\) or -1"):
        _C.project.forward(*geo[:6], p.view_batch + 7, *geo[7:])
    with pytest.raises(ValueError, match="thresh must have shape"):
        _C.project.forward(*geo[:7], p.depth_thresh[:1], *geo[8:])
    with pytest.raises(ValueError, match="near and far must be finite"):
        _C.project.forward(*geo[:8], 1.0, math.inf, True)
    feats, n_views, argmax = _C.project.forward(*geo)
    with pytest.raises(ValueError, match=r"argmax must be in \[-1, V\*h\*w="):
        _C.project.backward_max(feats, argmax + 10_000, 3, 6, 8)
    with pytest.raises(ValueError, match="argmax must have grad's shape"):
        _C.project.backward_max(feats[:, :1], argmax, 3, 6, 8)
    feats, n_views, rows = _C.project.forward(*geo[:10], False)
    assert rows.shape == (len(feats), 2)  # the most views of a batch item (make_scene: 3 views over 2 items)
    with pytest.raises(ValueError, match="n_views must have shape"):
        _C.project.backward_mean(feats, rows, n_views[:-1], 3, 6, 8)
    with pytest.raises(ValueError, match=r"rows must be in \[-1, V\*h\*w="):
        _C.project.backward_mean(feats, rows + 10_000, n_views, 3, 6, 8)
    with pytest.raises(ValueError, match="rows must have shape"):
        _C.project.backward_mean(feats, rows[:-1], n_views, 3, 6, 8)


def test_view_coverage_matches_the_pairs():
    s = make_scene(11, B=3, V=7)
    geo = {k: t for k, t in s.items() if k != "feats2d"}
    cov = view_coverage(**geo)
    n, v, _ = project_pairs(prepare_inputs(**geo, depth_thresh=None, near=0.1, far=10.0), 1, 1)
    expect = torch.zeros_like(cov)
    expect[n, v] = True
    assert torch.equal(cov, expect) and cov.any()
    torch.testing.assert_close(cov.sum(1).int(), backproject(**s).n_views)


def test_select_views_greedy_against_brute_force():
    for seed in range(6):
        s = make_scene(20 + seed, B=2, V=10, N=120)
        geo = {k: t for k, t in s.items() if k != "feats2d"}
        cov = view_coverage(**geo)
        b_of = s["coords"][:, 0].long()
        for k in (1, 3, 5):
            sel = select_views(**geo, k=k)
            for b in range(2):
                cand = (s["view_batch"] == b).nonzero().flatten().tolist()
                item = cov[b_of == b]
                picks = sel.views[b].tolist()
                assert sorted(picks) == sorted(set(picks)) and set(picks) <= set(cand)
                # the covered count and per-pick gains are what the picks do
                got = item[:, picks].any(1).sum().item()
                assert sel.covered[b].item() == got == sel.new_voxels[b].sum().item()
                # brute force over every k-subset: greedy is optimal for k = 1 and within (1 - 1/e) beyond
                best = max(item[:, list(c)].any(1).sum().item() for c in itertools.combinations(cand, k))
                assert got <= best and got >= (1 - 1 / math.e) * best
                if k == 1:
                    assert got == best
                # each pick maximises the new voxels among the remaining views (lowest index on ties)
                covered = torch.zeros(len(item), dtype=torch.bool)
                for j, v in enumerate(picks):
                    gains = {u: int((item[:, u] & ~covered).sum()) for u in cand if u not in picks[:j]}
                    assert gains[v] == max(gains.values()) == sel.new_voxels[b, j].item()
                    assert v == min(u for u, g in gains.items() if g == gains[v])
                    covered |= item[:, v]


def test_select_views_pads_when_too_few_views():
    s = make_scene(30, B=2, V=3)  # item 0 has views 0, 2; item 1 has view 1
    sel = select_views(**{k: t for k, t in s.items() if k != "feats2d"}, k=3)
    assert sel.views[0, 2].item() == -1 and sel.views[1, 1:].tolist() == [-1, -1]
    assert sorted(sel.views[0, :2].tolist()) == [0, 2] and sel.views[1, 0].item() == 1
    assert sel.new_voxels[1, 1:].tolist() == [0, 0]
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        select_views(**{k: t for k, t in s.items() if k != "feats2d"}, k=0)


def test_greedy_cover_small_exact_case():
    # columns: A covers {0,1,2,3}, B covers {0,1,4}, C covers {2,3,5}: greedy takes A, then B (1 new, tie with
    # C, lowest index), while {B, C} covers all 6
    cover = torch.zeros(6, 3, dtype=torch.bool)
    cover[[0, 1, 2, 3], 0] = True
    cover[[0, 1, 4], 1] = True
    cover[[2, 3, 5], 2] = True
    picks, new = greedy_cover(cover, 2)
    assert picks.tolist() == [0, 1] and new.tolist() == [4, 1]


needs_cuda = pytest.mark.skipif(not (torch.cuda.is_available() and _C.with_cuda),
                                reason="needs a CUDA device and sparse3d built with FORCE_CUDA=1")


@needs_cuda
@pytest.mark.parametrize("pool", ["max", "mean"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_matches_cpu(pool, dtype):
    s = make_scene(12, B=3, V=8, N=300, C=7, dtype=dtype)
    f = s.pop("feats2d")
    gout = torch.randn(len(s["coords"]), f.shape[1], dtype=dtype)
    out = []
    for dev in ("cpu", "cuda"):
        x = f.to(dev).requires_grad_(True)
        res = backproject(feats2d=x, **{k: t.to(dev) for k, t in s.items()}, pool=pool)
        (res.feats * gout.to(dev)).sum().backward()
        out.append((res.feats.cpu(), res.n_views.cpu(), x.grad.cpu(),
                    view_coverage(**{k: t.to(dev) for k, t in s.items()}).cpu()))
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    for a, b in zip(*out):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


@needs_cuda
def test_cuda_errors_are_python_exceptions():
    s = {k: t.cuda() for k, t in make_scene(13, V=3).items()}
    with pytest.raises(ValueError, match="view_batch must be in"):
        backproject(**dict(s, view_batch=s["view_batch"] + 9))
    res = backproject(**dict(s, coords=s["coords"][:0]))
    assert res.feats.shape == (0, s["feats2d"].shape[1]) and res.feats.is_cuda


def test_7scenes_rgb_against_fused_colour():
    """Back-projected RGB of real frames vs the colour the project's TSDF fusion gives the band voxels."""
    from _data_helpers import native_or_skip, shared_path
    native_or_skip()
    from data_tools.fusion import fuse_frames
    from data_tools.scannet import RGBDFolder
    fr = RGBDFolder(shared_path("rgbd", "7scenes-sample"))
    idx = list(range(0, 100, 10))
    vs = 0.04
    grid = fuse_frames(fr, indices=idx, voxel_size=vs, trunc_voxels=4.0, depth_max=5.0)
    band = np.abs(grid.tsdf) < 1.0  # within a voxel of the surface: where a frame's depth agrees
    frames = [fr.frame(k) for k in idx]
    coords = torch.from_numpy(np.concatenate([np.zeros((int(band.sum()), 1), np.int32), grid.coords[band]], 1))
    K = fr.intrinsic
    res = backproject(
        coords, torch.diag(torch.tensor([vs, vs, vs, 1.0], dtype=torch.float64))[None],
        torch.from_numpy(np.stack([c for _, c, _ in frames])).permute(0, 3, 1, 2).float(),
        torch.from_numpy(np.stack([d for d, _, _ in frames])),
        torch.tensor([[K[0, 0], K[1, 1], K[0, 2], K[1, 2]]] * len(idx), dtype=torch.float64),
        torch.from_numpy(np.stack([p for _, _, p in frames])), torch.zeros(len(idx), dtype=torch.long),
        near=0.1, far=5.0, pool="mean")
    seen = res.n_views > 0
    mad = (res.feats[seen] - torch.from_numpy(grid.color[band][seen.numpy()]).float()).abs().mean(0)
    print(f"7-Scenes: {int(band.sum())} band voxels (|tsdf| < 1 voxel), {int(seen.sum())} passed the depth test "
          f"in >= 1 of {len(idx)} views ({float(res.n_views.float().mean()):.2f} views/voxel); per-channel mean "
          f"|back-projected - fused| RGB = {[round(float(m), 2) for m in mad]}")
    assert int(seen.sum()) > 0.8 * int(band.sum())
    assert float(mad.max()) < 12.0

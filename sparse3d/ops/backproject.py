"""3DMV back-projection: 2D feature maps lifted into sparse voxels through depth, intrinsics and poses.

The contract (``backproject`` = the C++/CUDA kernels in csrc/project, ``backproject_torch`` = the same
in vectorised torch; both give the same result)::

    voxel n = (b, i, j, k) of coords, its centre in the world:  X = voxel_to_world[b] @ (i, j, k, 1)
    for every view v with view_batch[v] == b whose pose and intrinsics are finite:
        (x, y, z) = inverse(cam_to_world[v]) @ X                     camera frame, metres, +z forward
        u = fx x / z + cx,  v_ = fy y / z + cy                       (fx, fy, cx, cy) = intrinsics[v], at H x W
        pixel (pu, pv) = (floor(u + 0.5), floor(v_ + 0.5))           nearest pixel, pixel centres on integers
        passes when z > 0, 0 <= pu < W, 0 <= pv < H, d = depth[v, pv, pu] is finite and > 0,
              near <= d <= far and |d - z| <= depth_thresh[b]
        its feature: feats2d[v, :, fv, fu] with fu = floor((pu + 0.5) w / W), fv = floor((pv + 0.5) h / H)
                     (the reduced-resolution pixel under the depth pixel's centre: F.interpolate(...,
                     mode="nearest-exact") of the feature map to H x W, read at (pv, pu))
    pool = "max":  feats[n, c] = max over passing views of their feature c (ties: the lowest view index);
                   the backward sends grad[n, c] to that one view's pixel
    pool = "mean": feats[n, c] = mean over passing views; the backward sends grad[n, c] / n_views[n] to each
    n_views[n] = number of passing views; voxels with none get feats 0

Geometry is computed in float64 (depth is read as float32); gradients flow to ``feats2d`` only. Views
whose ``cam_to_world`` or ``intrinsics`` hold a non-finite value are skipped and listed in
``skipped_views`` (as the frame readers list ``invalid_pose_frames``); they never put NaN in the output.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple, Optional, Tuple, Union

from torch.autograd.function import once_differentiable

import torch

from sparse3d import _ext
from sparse3d.tensor import SparseTensor
from sparse3d.utils.checks import require_choice, require_tensor

POOLS = ("max", "mean")


class Backprojection(NamedTuple):
    """What ``backproject`` returns.

    feats          [N, C]  pooled features (dtype of feats2d; float32 for float16 / bfloat16), 0 where no
                           view passed
    n_views        int32 [N]  number of views that passed the depth test per voxel
    skipped_views  int64 [S]  indices of the views skipped for a non-finite pose or intrinsics
    """

    feats: torch.Tensor
    n_views: torch.Tensor
    skipped_views: torch.Tensor


@dataclass(frozen=True)
class ProjectionInputs:
    """Checked, converted inputs shared by the kernel and the torch implementation (all on one device).

    coords int32 [N, 4]; voxel_to_world float64 [B, 4, 4]; depth float32 [V, H, W];
    intrinsics float64 [V, 4]; world_to_cam float64 [V, 4, 4] (identity for skipped views);
    view_batch int64 [V], -1 for a skipped view; depth_thresh float64 [B]; skipped_views int64 [S].
    """

    coords: torch.Tensor
    voxel_to_world: torch.Tensor
    depth: torch.Tensor
    intrinsics: torch.Tensor
    world_to_cam: torch.Tensor
    view_batch: torch.Tensor
    depth_thresh: torch.Tensor
    near: float
    far: float
    skipped_views: torch.Tensor


def native() -> Any:
    """``sparse3d._C.project`` (csrc/project), through the extension loader: an ImportError naming the
    build command when the extension is missing or older than csrc/project."""
    return _ext.project()


def _shape(t: torch.Tensor) -> str:
    return f"{t.dtype} {list(t.shape)}"


def _require_float(t: torch.Tensor, name: str, expected: str) -> None:
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor {expected}, got {_shape(t)}")


def voxel_sizes(voxel_to_world: torch.Tensor) -> torch.Tensor:
    """float64 [B]: the edge length of a voxel in metres per batch item (the mean norm of the columns of
    voxel_to_world[:, :3, :3]); the default depth threshold."""
    return voxel_to_world[:, :3, :3].double().norm(dim=1).mean(dim=1)


def check_feats2d(feats2d: Any, V: int, device: torch.device) -> torch.Tensor:
    """feats2d ``[V, C, h, w]`` as the kernels take it: float32 / float64 as given; float16 / bfloat16
    widened to float32 (differentiably: the gradient returns in the half dtype)."""
    require_tensor(feats2d, "feats2d", "[V, C, h, w]")
    if feats2d.dim() != 4:
        raise ValueError(f"feats2d must have shape [V, C, h, w], got {_shape(feats2d)}")
    if not feats2d.is_floating_point():
        raise TypeError(f"feats2d must be a floating-point tensor [V, C, h, w], got {_shape(feats2d)}")
    if feats2d.shape[0] != V:
        raise ValueError(f"feats2d must have V={V} views (depth.shape[0]), got {_shape(feats2d)}")
    if feats2d.device != device:
        raise ValueError(f"feats2d must be on coords' device {device}, got {feats2d.device}")
    if V and feats2d.numel() == 0 and feats2d.shape[1] > 0:
        raise ValueError(f"feats2d must have h, w > 0, got {_shape(feats2d)}")
    return feats2d if feats2d.dtype in (torch.float32, torch.float64) else feats2d.float()


def prepare_inputs(coords: Union[torch.Tensor, SparseTensor], voxel_to_world: torch.Tensor,
                   depth: torch.Tensor, intrinsics: torch.Tensor, cam_to_world: torch.Tensor,
                   view_batch: torch.Tensor, depth_thresh: Optional[float], near: float,
                   far: float) -> ProjectionInputs:
    """Check the geometry arguments of ``backproject`` (errors name the argument, the expected and the
    given value) and convert them to the kernel's dtypes; see ``backproject`` for the shapes. The
    number of views V is depth's first dimension."""
    if isinstance(coords, SparseTensor):
        coords = coords.coords
    require_tensor(coords, "coords", "[N, 4] int32 or a SparseTensor")
    if coords.dim() != 2 or coords.shape[1] != 4 or coords.dtype != torch.int32:
        raise ValueError(f"coords must be int32 [N, 4] (b, x, y, z), got {_shape(coords)}")
    dev = coords.device
    require_tensor(voxel_to_world, "voxel_to_world", "[B, 4, 4]")
    if voxel_to_world.dim() != 3 or voxel_to_world.shape[1:] != (4, 4):
        raise ValueError(f"voxel_to_world must have shape [B, 4, 4], got {_shape(voxel_to_world)}")
    _require_float(voxel_to_world, "voxel_to_world", "[B, 4, 4]")
    if voxel_to_world.device != dev:
        raise ValueError(f"voxel_to_world must be on coords' device {dev}, got {voxel_to_world.device}")
    if not bool(torch.isfinite(voxel_to_world).all()):
        raise ValueError("voxel_to_world must be finite, got non-finite values")
    B = voxel_to_world.shape[0]
    require_tensor(depth, "depth", "[V, H, W]")
    if depth.dim() != 3:
        raise ValueError(f"depth must have shape [V, H, W], got {_shape(depth)}")
    V = depth.shape[0]
    for name, t, want in (("intrinsics", intrinsics, "[V, 4]"), ("cam_to_world", cam_to_world, "[V, 4, 4]"),
                          ("view_batch", view_batch, "[V]"), ("depth", depth, "[V, H, W]")):
        require_tensor(t, name, want)
        if t.shape[:1] != (V,):
            raise ValueError(f"{name} must have V={V} rows (one per view of depth), got {_shape(t)}")
        if t.device != dev:
            raise ValueError(f"{name} must be on coords' device {dev}, got {t.device}")
    _require_float(depth, "depth", "[V, H, W] (metres)")
    if intrinsics.dim() != 2 or intrinsics.shape[1] != 4:
        raise ValueError(f"intrinsics must have shape [V, 4] (fx, fy, cx, cy), got {_shape(intrinsics)}")
    _require_float(intrinsics, "intrinsics", "[V, 4]")
    if cam_to_world.dim() != 3 or cam_to_world.shape[1:] != (4, 4):
        raise ValueError(f"cam_to_world must have shape [V, 4, 4], got {_shape(cam_to_world)}")
    _require_float(cam_to_world, "cam_to_world", "[V, 4, 4]")
    if view_batch.dim() != 1 or view_batch.dtype != torch.int64:
        raise TypeError(f"view_batch must be int64 [V], got {_shape(view_batch)}")
    if V and (int(view_batch.min()) < 0 or int(view_batch.max()) >= B):
        raise ValueError(f"view_batch must be in [0, B={B}), got values in [{int(view_batch.min())}, "
                         f"{int(view_batch.max())}]")
    if len(coords) and (int(coords[:, 0].min()) < 0 or int(coords[:, 0].max()) >= B):
        raise ValueError(f"coords' batch index must be in [0, B={B}) (B = voxel_to_world.shape[0]), got values "
                         f"in [{int(coords[:, 0].min())}, {int(coords[:, 0].max())}]")
    if not (isinstance(near, (int, float)) and isinstance(far, (int, float)) and 0 <= near < far
            and math.isfinite(far)):
        raise ValueError(f"near and far must be finite numbers with 0 <= near < far, got near={near!r}, far={far!r}")
    intr = intrinsics.double()
    pose = cam_to_world.double()
    finite = torch.isfinite(pose).flatten(1).all(1) & torch.isfinite(intr).all(1)
    bad_focal = finite & ((intr[:, 0] <= 0) | (intr[:, 1] <= 0))
    if bool(bad_focal.any()):
        i = int(bad_focal.nonzero()[0])
        raise ValueError(f"intrinsics must have fx > 0 and fy > 0, got view {i}: {intr[i].tolist()}")
    eye = torch.eye(4, dtype=torch.float64, device=dev).expand(V, 4, 4)
    world_to_cam, info = torch.linalg.inv_ex(torch.where(finite[:, None, None], pose, eye))
    if bool((info != 0).any()):
        i = int((info != 0).nonzero()[0])
        raise ValueError(f"cam_to_world must be invertible 4x4 poses, got a singular one at view {i}: "
                         f"{pose[i].tolist()}")
    if depth_thresh is None:
        thresh = voxel_sizes(voxel_to_world).to(dev)
    else:
        if not (isinstance(depth_thresh, (int, float)) and math.isfinite(depth_thresh) and depth_thresh > 0):
            raise ValueError(f"depth_thresh must be a positive number of metres or None, got {depth_thresh!r}")
        thresh = torch.full((B,), float(depth_thresh), dtype=torch.float64, device=dev)
    return ProjectionInputs(
        coords=coords.contiguous(), voxel_to_world=voxel_to_world.double().contiguous(),
        depth=depth.float().contiguous(), intrinsics=torch.where(finite[:, None], intr, 1.0).contiguous(),
        world_to_cam=world_to_cam.contiguous(), view_batch=torch.where(finite, view_batch, -1).contiguous(),
        depth_thresh=thresh.contiguous(), near=float(near), far=float(far),
        skipped_views=(~finite).nonzero().flatten())


def project_pairs(p: ProjectionInputs, h: int, w: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every passing (voxel, view) pair, vectorised: (voxel int64 [P], view int64 [P], pixel int64 [P]),
    pixel = (view * h + fv) * w + fu on the reduced grid, ordered by voxel, then view."""
    dev = p.coords.device
    N, V = p.coords.shape[0], p.view_batch.shape[0]
    H, W = p.depth.shape[1], p.depth.shape[2]
    b = p.coords[:, 0].long()
    same = b[:, None] == p.view_batch[None, :]  # [N, V]; skipped views have view_batch -1
    n, v = same.nonzero(as_tuple=True)
    if N == 0 or V == 0:
        n = v = torch.zeros(0, dtype=torch.long, device=dev)
    ones = torch.ones(N, 1, dtype=torch.float64, device=dev)
    world = torch.einsum("nij,nj->ni", p.voxel_to_world[b], torch.cat([p.coords[:, 1:].double(), ones], 1))
    cam = torch.einsum("pij,pj->pi", p.world_to_cam[v], world[n])
    x, y, z = cam[:, 0], cam[:, 1], cam[:, 2]
    k = p.intrinsics[v]
    zs = torch.where(z > 0, z, 1.0)
    pu = torch.floor(k[:, 0] * x / zs + k[:, 2] + 0.5)
    pv = torch.floor(k[:, 1] * y / zs + k[:, 3] + 0.5)
    inside = (z > 0) & (pu >= 0) & (pu < W) & (pv >= 0) & (pv < H)
    iu = torch.where(inside, pu, 0.0).long()
    iv = torch.where(inside, pv, 0.0).long()
    d = p.depth[v, iv, iu].double()
    ok = inside & torch.isfinite(d) & (d > 0) & (d >= p.near) & (d <= p.far)
    ok &= (d - z).abs() <= p.depth_thresh[b[n]]
    n, v, iu, iv = n[ok], v[ok], iu[ok], iv[ok]
    fu = torch.div((2 * iu + 1) * w, 2 * W, rounding_mode="floor")
    fv = torch.div((2 * iv + 1) * h, 2 * H, rounding_mode="floor")
    return n, v, (v * h + fv) * w + fu


def backproject_torch(coords: Union[torch.Tensor, SparseTensor], voxel_to_world: torch.Tensor,
                      feats2d: torch.Tensor, depth: torch.Tensor, intrinsics: torch.Tensor,
                      cam_to_world: torch.Tensor, view_batch: torch.Tensor, depth_thresh: Optional[float] = None,
                      near: float = 0.1, far: float = 10.0, pool: str = "max") -> Backprojection:
    """``backproject`` in vectorised torch ops (autograd gives the backward): the reference of the tests
    and the benchmark's peer. Same arguments, result and semantics (module docstring)."""
    require_choice(pool, "pool", POOLS)
    p = prepare_inputs(coords, voxel_to_world, depth, intrinsics, cam_to_world, view_batch, depth_thresh, near, far)
    feats2d = check_feats2d(feats2d, p.depth.shape[0], p.coords.device)
    V, C, h, w = feats2d.shape
    N = p.coords.shape[0]
    n, v, pix = project_pairs(p, h, w)
    n_views = torch.bincount(n, minlength=N).to(torch.int32)
    vals = feats2d.reshape(V, C, h * w)[v, :, pix - v * (h * w)]  # [P, C], no copy of the maps
    out = feats2d.new_zeros(N, C)
    if pool == "mean":
        out = out.index_add(0, n, vals)
        out = out / n_views.clamp_min(1).to(out.dtype)[:, None]
    elif len(n):
        idx = n[:, None].expand(-1, C)
        best = torch.zeros(N, C, dtype=vals.dtype, device=vals.device)
        best = best.scatter_reduce(0, idx, vals.detach(), "amax", include_self=False)
        # the first pair (lowest view) reaching the maximum, per voxel and channel
        order = torch.arange(len(n), device=n.device)[:, None].expand(-1, C)
        cand = torch.where(vals.detach() == best[n], order, len(n))
        first = torch.full((N, C), len(n), dtype=torch.long, device=n.device)
        first = first.scatter_reduce(0, idx, cand, "amin", include_self=True)
        seen = n_views > 0
        chan = torch.arange(C, device=n.device)[None, :].expand(int(seen.sum()), -1)
        out = out.index_put((seen.nonzero().flatten()[:, None].expand(-1, C), chan), vals[first[seen], chan])
    return Backprojection(out, n_views, p.skipped_views)


class _BackprojectFunction(torch.autograd.Function):
    """feats2d -> (feats, n_views) through the csrc/project kernels; the gradient reaches feats2d only."""

    @staticmethod
    def forward(ctx: Any, feats2d: torch.Tensor, p: ProjectionInputs, pool_max: bool
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        feats, n_views, index = native().forward(
            p.coords, p.voxel_to_world, feats2d, p.depth, p.intrinsics, p.world_to_cam, p.view_batch,
            p.depth_thresh, p.near, p.far, pool_max)
        ctx.pool_max = pool_max
        ctx.shape = tuple(feats2d.shape)
        ctx.save_for_backward(index, n_views)  # max: argmax [N, C]; mean: the passing pixels [N, M]
        ctx.mark_non_differentiable(n_views)
        return feats, n_views

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor, _grad_n_views: Any) -> Tuple[Optional[torch.Tensor], None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None, None
        index, n_views = ctx.saved_tensors
        V, _, h, w = ctx.shape
        grad = grad.contiguous()
        if ctx.pool_max:
            return native().backward_max(grad, index, V, h, w), None, None
        return native().backward_mean(grad, index, n_views, V, h, w), None, None


def backproject(coords: Union[torch.Tensor, SparseTensor], voxel_to_world: torch.Tensor, feats2d: torch.Tensor,
                depth: torch.Tensor, intrinsics: torch.Tensor, cam_to_world: torch.Tensor,
                view_batch: torch.Tensor, depth_thresh: Optional[float] = None, near: float = 0.1,
                far: float = 10.0, pool: str = "max") -> Backprojection:
    """Lift 2D feature maps into voxels and pool them across views (3DMV); the C++/CUDA kernels of
    csrc/project. The exact rule is the module docstring.

    coords          int32 [N, 4] (b, i, j, k), or a SparseTensor (its coords, taken as they are: the
                    stride is not applied, so voxel_to_world maps the tensor's own lattice)
    voxel_to_world  float [B, 4, 4]: world point (metres) of voxel (i, j, k)'s centre = M @ (i, j, k, 1)
                    (a crop's local coords: the scene's voxel_to_world @ translation(crop_origin))
    feats2d         float [V, C, h, w] (float32 / float64; float16 / bfloat16 computed in float32), the
                    only input that receives a gradient; any reduced resolution h x w
    depth           float [V, H, W] metres (0 or non-finite = invalid), read as float32
    intrinsics      float [V, 4] = (fx, fy, cx, cy) of the H x W depth frame
    cam_to_world    float [V, 4, 4] camera-to-world poses (+z forward)
    view_batch      int64 [V]: the batch item (row of voxel_to_world) each view belongs to
    depth_thresh    metres: |depth - voxel depth| allowed; None = each batch item's voxel size
    near, far       metres: the valid range of the depth map value
    pool            "max" (argmax kept for the backward, ties to the lowest view index) or "mean"

    Returns ``Backprojection(feats [N, C], n_views int32 [N], skipped_views int64 [S])``; voxels seen
    by no view get 0; views with a non-finite pose or intrinsics are skipped and listed.
    """
    require_choice(pool, "pool", POOLS)
    p = prepare_inputs(coords, voxel_to_world, depth, intrinsics, cam_to_world, view_batch, depth_thresh, near, far)
    feats2d = check_feats2d(feats2d, p.depth.shape[0], p.coords.device)
    feats, n_views = _BackprojectFunction.apply(feats2d, p, pool == "max")
    return Backprojection(feats, n_views, p.skipped_views)

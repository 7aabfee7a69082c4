"""Optical-flow warping and the flow-warping (temporal consistency) error.

Flow convention (backward flow): ``flow[:, :, y, x] = (dx, dy)`` in pixels says that
pixel (x, y) of frame t shows what pixel (x + dx, y + dy) of frame t-1 showed, so
``warp(frame_{t-1}, flow_t)`` predicts frame t wherever that point was not occluded.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ._checks import check_tensor


def warp(img: torch.Tensor, flow: torch.Tensor, padding_mode: str = "border") -> torch.Tensor:
    """Backward-warp ``img`` with ``flow`` (bilinear).

    img [B, C, H, W], flow [B, 2, H, W] (dx, dy in pixels) -> [B, C, H, W] with
    out[b, :, y, x] = img[b, :, y + dy, x + dx]. Integer flows reproduce pixels exactly.
    """
    check_tensor("img", img, 4, "float")
    check_tensor("flow", flow, 4, "float")
    B, _, H, W = img.shape
    if flow.shape != (B, 2, H, W):
        raise ValueError(f"flow: expected shape {(B, 2, H, W)}, got {tuple(flow.shape)}")
    if padding_mode not in ("border", "zeros", "reflection"):
        raise ValueError(f"padding_mode: expected 'border', 'zeros' or 'reflection', got {padding_mode!r}")
    ys, xs = torch.meshgrid(torch.arange(H, dtype=flow.dtype, device=flow.device),
                            torch.arange(W, dtype=flow.dtype, device=flow.device), indexing="ij")
    gx = (xs + flow[:, 0]) * (2.0 / max(W - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / max(H - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1).to(img.dtype)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode=padding_mode, align_corners=True)


def flow_warping_error(frames: torch.Tensor, flows: torch.Tensor,
                       occlusion: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Masked mean squared difference between each frame and the warped previous frame.

    frames [B, T, C, H, W]; flows [B, T, 2, H, W] (flow t maps frame t to t-1; flow 0
    unused); occlusion [B, T, 1, H, W] with 1 where pixel is occluded/disoccluded at t
    (excluded). Returns a scalar: sum over t >= 1 of masked squared error divided by
    the number of unmasked (pixel, channel) entries.
    """
    check_tensor("frames", frames, 5, "float")
    check_tensor("flows", flows, 5, "float")
    B, T, C, H, W = frames.shape
    if T < 2:
        raise ValueError(f"frames: expected at least 2 frames, got T={T}")
    if flows.shape != (B, T, 2, H, W):
        raise ValueError(f"flows: expected shape {(B, T, 2, H, W)}, got {tuple(flows.shape)}")
    prev = frames[:, :-1].reshape(-1, C, H, W)
    cur = frames[:, 1:].reshape(-1, C, H, W)
    warped = warp(prev, flows[:, 1:].reshape(-1, 2, H, W))
    valid = torch.ones_like(cur[:, :1])
    if occlusion is not None:
        check_tensor("occlusion", occlusion, 5)
        if occlusion.shape != (B, T, 1, H, W):
            raise ValueError(f"occlusion: expected shape {(B, T, 1, H, W)}, got {tuple(occlusion.shape)}")
        valid = 1.0 - occlusion[:, 1:].reshape(-1, 1, H, W).to(frames.dtype)
    se = ((cur - warped) ** 2 * valid).sum()
    return se / (valid.sum() * C).clamp(min=1.0)

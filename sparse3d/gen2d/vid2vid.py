"""vid2vid (Wang et al. 2018), small version for the moving-shapes videos.

Sequential generator: frame t is generated from the source (label) maps of frames
t-L..t and the L previously generated frames (L = 2). It predicts a hallucinated frame
h, a backward flow w (t -> t-1) and an occlusion mask m, and outputs
``m * h + (1 - m) * warp(previous output, w)``. Frame 0 (no previous output) is h.

Discriminators: D_I on (label, frame) pairs (PatchGAN, optionally multi-scale) and D_V
on L+1 consecutive frames plus the L flows between them (the ground-truth flows,
as the paper conditions D_V on the flow of the real video). Losses: GAN (D_I, D_V),
L1 on frames, flow loss ``|w - w_gt|`` plus warp loss ``|warp(x_{t-1}, w) - x_t|``,
optional feature matching.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._checks import check_tensor
from sparse3d.utils.checks import require_int
from .flow import warp
from .pix2pix import UNetGenerator, discriminate, feature_matching_loss, gan_loss, make_discriminator


def one_hot_labels(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """int labels [..., H, W] -> float one-hot [..., n_classes, H, W]."""
    check_tensor("labels", labels, labels.dim(), "int")
    oh = F.one_hot(labels.long(), n_classes).float()
    return oh.movedim(-1, -3)


class SequentialGenerator(nn.Module):
    """vid2vid generator.

    Args:
        label_ch: channels of one source map; img_ch: frame channels; past: L.
        ngf, n_down: U-Net width and depth; max_flow: flow output is max_flow * tanh(.);
        mask_bias: initial bias of the mask logit (negative: start by copying the warped
        previous frame, sigmoid(-2) = 0.12).
    step(labels [B, L+1, label_ch, H, W] (t-L..t, zeros before the video starts),
         prev [B, L, img_ch, H, W] (outputs t-L..t-1, zeros when missing), first: bool)
        -> dict(frame, hallucinated [B, img_ch, H, W], flow [B, 2, H, W], mask [B, 1, H, W]).
    """

    def __init__(self, label_ch: int, img_ch: int = 3, past: int = 2, ngf: int = 32, n_down: int = 4,
                 max_flow: float = 4.0, mask_bias: float = -2.0):
        super().__init__()
        require_int(label_ch, "label_ch", low=1)
        require_int(img_ch, "img_ch", low=1)
        require_int(past, "past", low=1)
        self.label_ch, self.img_ch, self.past, self.max_flow = label_ch, img_ch, past, max_flow
        in_ch = (past + 1) * label_ch + past * img_ch
        self.net = UNetGenerator(in_ch, img_ch + 3, ngf, n_down, n_dropout=0, final_tanh=False)
        with torch.no_grad():
            self.net.ups[-1][-1].bias[img_ch + 2] = mask_bias

    def step(self, labels: torch.Tensor, prev: torch.Tensor, first: bool) -> Dict[str, torch.Tensor]:
        check_tensor("labels", labels, 5, "float")
        check_tensor("prev", prev, 5, "float")
        B, _, _, H, W = labels.shape
        if labels.shape[1:3] != (self.past + 1, self.label_ch):
            raise ValueError(f"labels: expected [B, {self.past + 1}, {self.label_ch}, H, W], got {tuple(labels.shape)}")
        if prev.shape[1:3] != (self.past, self.img_ch):
            raise ValueError(f"prev: expected [B, {self.past}, {self.img_ch}, H, W], got {tuple(prev.shape)}")
        out = self.net(torch.cat([labels.reshape(B, -1, H, W), prev.reshape(B, -1, H, W)], 1))
        hall = torch.tanh(out[:, : self.img_ch])
        flow = self.max_flow * torch.tanh(out[:, self.img_ch: self.img_ch + 2])
        mask = torch.sigmoid(out[:, self.img_ch + 2:])
        if first:
            mask = torch.ones_like(mask)
            frame = hall
        else:
            frame = mask * hall + (1 - mask) * warp(prev[:, -1], flow)
        return {"frame": frame, "hallucinated": hall, "flow": flow, "mask": mask}

    def forward(self, labels: torch.Tensor, detach_prev: bool = True) -> Dict[str, torch.Tensor]:
        """Generate a whole video. labels: float one-hot [B, T, label_ch, H, W].

        Returns frames [B, T, img_ch, H, W], flows [B, T, 2, H, W], masks [B, T, 1, H, W]
        (flow and mask at t = 0 are the unused predictions). ``detach_prev`` stops
        gradients through the fed-back frames (truncated back-propagation, cheaper).
        """
        check_tensor("labels", labels, 5, "float")
        B, T, C, H, W = labels.shape
        L = self.past
        pad_l = labels.new_zeros(B, L, C, H, W)
        lab = torch.cat([pad_l, labels], 1)
        outs: List[torch.Tensor] = [labels.new_zeros(B, self.img_ch, H, W) for _ in range(L)]
        frames, flows, masks = [], [], []
        for t in range(T):
            prev = torch.stack(outs[-L:], 1)
            r = self.step(lab[:, t: t + L + 1], prev, first=(t == 0))
            frames.append(r["frame"])
            flows.append(r["flow"])
            masks.append(r["mask"])
            outs.append(r["frame"].detach() if detach_prev else r["frame"])
        return {"frames": torch.stack(frames, 1), "flows": torch.stack(flows, 1), "masks": torch.stack(masks, 1)}


def video_windows(frames: torch.Tensor, flows: torch.Tensor, past: int) -> torch.Tensor:
    """D_V input: for every t >= past, concat frames t-past..t and flows t-past+1..t.

    frames [B, T, C, H, W], flows [B, T, 2, H, W] -> [B * (T - past), (past+1)*C + 2*past, H, W].
    """
    B, T, C, H, W = frames.shape
    if T <= past:
        raise ValueError(f"frames: expected more than past={past} frames, got T={T}")
    wins = []
    for t in range(past, T):
        f = frames[:, t - past: t + 1].reshape(B, -1, H, W)
        w = flows[:, t - past + 1: t + 1].reshape(B, -1, H, W)
        wins.append(torch.cat([f, w], 1))
    return torch.cat(wins, 0)


class Vid2Vid(nn.Module):
    """Generator + D_I + D_V bundle with one training step.

    Args: n_classes (label classes), img_ch, past (L), ngf, ndf, n_scales (D_I scales),
    d_layers (PatchGAN depth), lambda_l1, lambda_flow, lambda_fm, lambda_mask (optional
    BCE between the predicted mask and a known occlusion mask, when the batch has one;
    0 = the paper's unsupervised mask), mask_bias (see SequentialGenerator).
    """

    def __init__(self, n_classes: int, img_ch: int = 3, past: int = 2, ngf: int = 32, ndf: int = 32,
                 n_down: int = 4, n_scales: int = 1, d_layers: int = 3, lambda_l1: float = 100.0,
                 lambda_flow: float = 10.0, lambda_fm: float = 0.0, lambda_mask: float = 0.0,
                 mask_bias: float = -2.0):
        super().__init__()
        self.n_classes, self.past = n_classes, past
        self.lambda_l1, self.lambda_flow, self.lambda_fm = lambda_l1, lambda_flow, lambda_fm
        self.lambda_mask = lambda_mask
        self.G = SequentialGenerator(n_classes, img_ch, past, ngf, n_down, mask_bias=mask_bias)
        self.D_I = make_discriminator(n_classes + img_ch, ndf, d_layers, n_scales)
        self.D_V = make_discriminator((past + 1) * img_ch + 2 * past, ndf, d_layers, 1)

    def generate(self, labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        """labels int [B, T, H, W] -> generator outputs (see SequentialGenerator.forward)."""
        return self.G(one_hot_labels(labels, self.n_classes))

    def train_step(self, batch: Dict[str, torch.Tensor], opt_g: torch.optim.Optimizer,
                   opt_d: torch.optim.Optimizer) -> Dict[str, float]:
        """batch: "labels" int [B, T, H, W], "frames" [B, T, C, H, W], "flows" [B, T, 2, H, W],
        optionally "occlusion" [B, T, 1, H, W] (used when lambda_mask > 0)."""
        lab = one_hot_labels(batch["labels"], self.n_classes)
        real, gt_flow = batch["frames"], batch["flows"]
        B, T, C, H, W = real.shape
        out = self.G(lab)
        fake = out["frames"]
        li = lab.reshape(B * T, -1, H, W)
        pair_real = torch.cat([li, real.reshape(B * T, C, H, W)], 1)
        pair_fake = torch.cat([li, fake.reshape(B * T, C, H, W)], 1)
        vid_real = video_windows(real, gt_flow, self.past)
        vid_fake = video_windows(fake, gt_flow, self.past)
        # discriminators
        loss_d = 0.5 * (gan_loss(discriminate(self.D_I, pair_real), True)
                        + gan_loss(discriminate(self.D_I, pair_fake.detach()), False)) \
            + 0.5 * (gan_loss(discriminate(self.D_V, vid_real), True)
                     + gan_loss(discriminate(self.D_V, vid_fake.detach()), False))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        # generator
        di_fake = discriminate(self.D_I, pair_fake)
        dv_fake = discriminate(self.D_V, vid_fake)
        g_gan = gan_loss(di_fake, True) + gan_loss(dv_fake, True)
        l1 = F.l1_loss(fake, real)
        pf = out["flows"][:, 1:].reshape(-1, 2, H, W)
        flow_l = F.l1_loss(pf, gt_flow[:, 1:].reshape(-1, 2, H, W))
        warp_l = F.l1_loss(warp(real[:, :-1].reshape(-1, C, H, W), pf), real[:, 1:].reshape(-1, C, H, W))
        loss_g = g_gan + self.lambda_l1 * l1 + self.lambda_flow * (flow_l + warp_l)
        mask_l = torch.zeros(())
        if self.lambda_mask > 0:
            if "occlusion" not in batch:
                raise ValueError("batch: lambda_mask > 0 needs an 'occlusion' entry [B, T, 1, H, W]")
            mask_l = F.binary_cross_entropy(out["masks"][:, 1:].clamp(1e-6, 1 - 1e-6), batch["occlusion"][:, 1:])
            loss_g = loss_g + self.lambda_mask * mask_l
        fm = torch.zeros(())
        if self.lambda_fm > 0:
            fm = feature_matching_loss(di_fake, discriminate(self.D_I, pair_real)) \
                + feature_matching_loss(dv_fake, discriminate(self.D_V, vid_real))
            loss_g = loss_g + self.lambda_fm * fm
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        return {"d": loss_d.item(), "g_gan": g_gan.item(), "l1": l1.item(), "flow": flow_l.item(),
                "warp": warp_l.item(), "mask": mask_l.item(), "fm": fm.item()}

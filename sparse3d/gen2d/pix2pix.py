"""pix2pix (Isola et al. 2017): U-Net generator with skips and dropout, 70x70 PatchGAN
discriminator, GAN + lambda * L1 loss (lambda = 100); pix2pixHD (Wang et al. 2018)
multi-scale discriminators and discriminator feature-matching loss as options.
"""
from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._checks import check_tensor
from sparse3d.utils.checks import require_int


class UNetGenerator(nn.Module):
    """U-Net: ``n_down`` stride-2 4x4 conv downs, mirrored transposed-conv ups with skip
    concatenation, dropout (p=0.5) in the ``n_dropout`` innermost up layers.

    forward: x [B, in_ch, H, W] (H, W divisible by 2**n_down) -> [B, out_ch, H, W]
    (tanh output unless ``final_tanh=False``).
    """

    def __init__(self, in_ch: int, out_ch: int, ngf: int = 32, n_down: int = 5, n_dropout: int = 3,
                 max_mult: int = 8, final_tanh: bool = True):
        super().__init__()
        for name, v in [("in_ch", in_ch), ("out_ch", out_ch), ("ngf", ngf), ("n_down", n_down)]:
            require_int(v, name, low=1)
        self.n_down, self.final_tanh = n_down, final_tanh
        chs = [ngf * min(2 ** i, max_mult) for i in range(n_down)]
        self.downs = nn.ModuleList()
        prev = in_ch
        for i, c in enumerate(chs):
            layers: List[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2)]
            layers.append(nn.Conv2d(prev, c, 4, 2, 1, bias=(i == 0 or i == n_down - 1)))
            if 0 < i < n_down - 1:
                layers.append(nn.BatchNorm2d(c))
            self.downs.append(nn.Sequential(*layers))
            prev = c
        self.ups = nn.ModuleList()
        for i in reversed(range(n_down)):
            inp = chs[i] if i == n_down - 1 else chs[i] * 2
            outc = out_ch if i == 0 else chs[i - 1]
            layers = [nn.ReLU(), nn.ConvTranspose2d(inp, outc, 4, 2, 1, bias=(i == 0))]
            if i > 0:
                layers.append(nn.BatchNorm2d(outc))
                if (n_down - 1 - i) < n_dropout:
                    layers.append(nn.Dropout(0.5))
            self.ups.append(nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, 4, "float")
        m = 2 ** self.n_down
        if x.shape[2] % m or x.shape[3] % m:
            raise ValueError(f"x: expected H and W divisible by {m} (n_down={self.n_down}), got {tuple(x.shape)}")
        skips = []
        for d in self.downs:
            x = d(x)
            skips.append(x)
        x = self.ups[0](skips[-1])
        for k, u in enumerate(self.ups[1:]):
            x = u(torch.cat([x, skips[-2 - k]], dim=1))
        return torch.tanh(x) if self.final_tanh else x


class PatchDiscriminator(nn.Module):
    """PatchGAN: C64-C128-C256 (stride 2) - C512 (stride 1) - 1 channel (stride 1), 4x4
    kernels; with ``n_layers=3`` each output logit sees a 70x70 input patch.

    forward: x [B, in_ch, H, W] -> list of features, the last one logits [B, 1, h, w].
    """

    def __init__(self, in_ch: int, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        require_int(in_ch, "in_ch", low=1)
        require_int(ndf, "ndf", low=1)
        require_int(n_layers, "n_layers", low=1)
        self.n_layers = n_layers
        blocks = [nn.Sequential(nn.Conv2d(in_ch, ndf, 4, 2, 1), nn.LeakyReLU(0.2))]
        c = ndf
        for i in range(1, n_layers + 1):
            stride = 2 if i < n_layers else 1
            nc = ndf * min(2 ** i, 8)
            blocks.append(nn.Sequential(nn.Conv2d(c, nc, 4, stride, 1, bias=False), nn.BatchNorm2d(nc),
                                        nn.LeakyReLU(0.2)))
            c = nc
        blocks.append(nn.Sequential(nn.Conv2d(c, 1, 4, 1, 1)))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        check_tensor("x", x, 4, "float")
        if patch_output_size(min(x.shape[2:]), self.n_layers) < 1:
            raise ValueError(f"x: input of size {tuple(x.shape[2:])} is too small for a PatchDiscriminator "
                             f"with n_layers={self.n_layers} (use fewer layers or scales)")
        feats = []
        for b in self.blocks:
            x = b(x)
            feats.append(x)
        return feats


def patch_receptive_field(n_layers: int = 3) -> int:
    """Receptive field (pixels) of one PatchDiscriminator output; 70 for n_layers=3."""
    strides = [2] * n_layers + [1, 1]
    rf = 1
    for s in reversed(strides):
        rf = (rf - 1) * s + 4
    return rf


def patch_output_size(size: int, n_layers: int = 3) -> int:
    """Side of the PatchDiscriminator logit map for an input side ``size`` (< 1: too small)."""
    for s in [2] * n_layers + [1, 1]:
        if size + 2 < 4:
            return 0
        size = (size + 2 - 4) // s + 1
    return size


class MultiScaleDiscriminator(nn.Module):
    """pix2pixHD: ``n_scales`` PatchDiscriminators on the input downsampled by 1, 2, 4 ...

    forward: x [B, in_ch, H, W] -> one feature list per scale.
    """

    def __init__(self, in_ch: int, ndf: int = 64, n_layers: int = 3, n_scales: int = 2):
        super().__init__()
        require_int(n_scales, "n_scales", low=1)
        self.ds = nn.ModuleList(PatchDiscriminator(in_ch, ndf, n_layers) for _ in range(n_scales))

    def forward(self, x: torch.Tensor) -> List[List[torch.Tensor]]:
        outs = []
        for k, d in enumerate(self.ds):
            if k:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outs.append(d(x))
        return outs


def make_discriminator(in_ch: int, ndf: int = 64, n_layers: int = 3, n_scales: int = 1) -> nn.Module:
    """A PatchDiscriminator (n_scales=1) or a MultiScaleDiscriminator; both are called
    through :func:`discriminate`."""
    if n_scales == 1:
        return PatchDiscriminator(in_ch, ndf, n_layers)
    return MultiScaleDiscriminator(in_ch, ndf, n_layers, n_scales)


def discriminate(d: nn.Module, x: torch.Tensor) -> List[List[torch.Tensor]]:
    """Run a discriminator; always returns a list (scales) of lists (features)."""
    out = d(x)
    return out if isinstance(out[0], list) else [out]


def gan_loss(outs: Sequence[Sequence[torch.Tensor]], real: bool) -> torch.Tensor:
    """Non-saturating BCE GAN loss on the final logits of every scale (mean over scales)."""
    losses = []
    for feats in outs:
        lg = feats[-1]
        losses.append(F.binary_cross_entropy_with_logits(lg, torch.full_like(lg, 1.0 if real else 0.0)))
    return torch.stack(losses).mean()


def feature_matching_loss(fake: Sequence[Sequence[torch.Tensor]], real: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
    """pix2pixHD feature matching: mean over scales, sum over intermediate layers of the
    L1 distance between discriminator features of fake and (detached) real inputs."""
    total = 0.0
    for f_s, r_s in zip(fake, real):
        for f, r in zip(f_s[:-1], r_s[:-1]):
            total = total + F.l1_loss(f, r.detach())
    return total / len(fake)


def pix2pix_step(G: nn.Module, D: nn.Module, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
                 src: torch.Tensor, tgt: torch.Tensor, lambda_l1: float = 100.0,
                 lambda_fm: float = 0.0) -> dict:
    """One pix2pix training step (D then G). src [B, Cs, H, W], tgt [B, Ct, H, W] in [-1, 1].

    D sees (src, image) pairs. G loss = GAN + lambda_l1 * L1 (+ lambda_fm * feature matching).
    Returns float losses {"d", "g_gan", "l1", "fm"}.
    """
    fake = G(src)
    d_real = discriminate(D, torch.cat([src, tgt], 1))
    d_fake = discriminate(D, torch.cat([src, fake.detach()], 1))
    loss_d = 0.5 * (gan_loss(d_real, True) + gan_loss(d_fake, False))
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()
    d_fake = discriminate(D, torch.cat([src, fake], 1))
    g_gan = gan_loss(d_fake, True)
    l1 = F.l1_loss(fake, tgt)
    loss_g = g_gan + lambda_l1 * l1
    fm = torch.zeros(())
    if lambda_fm > 0:
        fm = feature_matching_loss(d_fake, discriminate(D, torch.cat([src, tgt], 1)))
        loss_g = loss_g + lambda_fm * fm
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    return {"d": loss_d.item(), "g_gan": g_gan.item(), "l1": l1.item(), "fm": fm.item()}

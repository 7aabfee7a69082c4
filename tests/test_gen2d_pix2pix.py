"""pix2pix: U-Net, 70x70 PatchGAN, multi-scale D, losses, one training step."""
import pytest
import torch

from sparse3d.gen2d.pix2pix import (MultiScaleDiscriminator, PatchDiscriminator, UNetGenerator, discriminate,
                                    feature_matching_loss, gan_loss, patch_output_size, patch_receptive_field,
                                    pix2pix_step)


pytestmark = pytest.mark.usefixtures("one_thread")


def test_patchgan_receptive_field_is_70():
    assert patch_receptive_field(3) == 70
    torch.manual_seed(0)
    D = PatchDiscriminator(1, ndf=4).double().eval()
    x = torch.randn(1, 1, 128, 128, dtype=torch.float64, requires_grad=True)
    out = D(x)[-1]
    assert out.shape[-2:] == (14, 14)  # 128 -> 64 -> 32 -> 16 -> 15 -> 14
    g, = torch.autograd.grad(out[0, 0, 7, 7], x)
    rows = g[0, 0].abs().sum(1).nonzero().flatten()
    cols = g[0, 0].abs().sum(0).nonzero().flatten()
    # measured support of one output logit: 70 x 70 input pixels
    assert rows.max() - rows.min() + 1 == 70 and cols.max() - cols.min() + 1 == 70


def test_unet_shapes_skips_and_dropout():
    torch.manual_seed(0)
    G = UNetGenerator(2, 3, ngf=4, n_down=4, n_dropout=2)
    x = torch.randn(2, 2, 32, 32)
    G.train()
    a, b = G(x), G(x)
    assert a.shape == (2, 3, 32, 32) and a.abs().max() <= 1
    assert not torch.allclose(a, b)  # dropout is noise in training mode
    G.eval()
    assert torch.equal(G(x), G(x))
    # skip connection: the output at a pixel depends strongly on the same input pixel
    x.requires_grad_(True)
    g, = torch.autograd.grad(G(x)[0, :, 10, 10].sum(), x)
    assert g[0].abs().sum(0)[10, 10] > 0
    with pytest.raises(ValueError, match="divisible"):
        G(torch.zeros(1, 2, 30, 32))


def test_multiscale_discriminator_and_losses():
    torch.manual_seed(0)
    D = MultiScaleDiscriminator(3, ndf=4, n_layers=2, n_scales=2)
    x = torch.randn(2, 3, 32, 32)
    outs = discriminate(D, x)
    # 32 -> 16 -> 8 -> 7 -> 6; the second scale sees 16x16 -> 8 -> 4 -> 3 -> 2
    assert len(outs) == 2 and outs[0][-1].shape[-1] == 6 and outs[1][-1].shape[-1] == 2
    assert patch_output_size(32, 2) == 6 and patch_output_size(16, 2) == 2 and patch_output_size(8, 2) == 0
    with pytest.raises(ValueError, match="too small"):
        discriminate(MultiScaleDiscriminator(3, 4, 2, n_scales=3), x)
    assert float(feature_matching_loss(outs, outs).detach()) == 0.0
    y = discriminate(D, x + 1)
    assert float(feature_matching_loss(y, outs).detach()) > 0
    zero = [[torch.zeros(1, 1, 2, 2)]]
    assert float(gan_loss(zero, True)) == pytest.approx(0.6931, abs=1e-4)  # BCE at logit 0 = ln 2


def test_pix2pix_steps_reduce_l1_on_a_tiny_problem():
    torch.manual_seed(0)
    src = torch.randn(4, 1, 16, 16).clamp(-1, 1)
    tgt = torch.cat([src, -src, src.abs() * 2 - 1], 1)
    G, D = UNetGenerator(1, 3, 8, 4, n_dropout=0), PatchDiscriminator(4, 8, 2)
    og = torch.optim.Adam(G.parameters(), 2e-3, betas=(0.5, 0.999))
    od = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    first = pix2pix_step(G, D, og, od, src, tgt, lambda_fm=1.0)
    for _ in range(25):
        last = pix2pix_step(G, D, og, od, src, tgt, lambda_fm=1.0)
    assert set(first) == {"d", "g_gan", "l1", "fm"}
    assert last["l1"] < 0.75 * first["l1"]

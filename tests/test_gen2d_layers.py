"""Causal masks and masked convolutions (sparse3d.gen2d.layers)."""
import pytest
import torch

from sparse3d.gen2d.layers import MaskedConv2d, causal_mask, sample_categorical, shift_down


pytestmark = pytest.mark.usefixtures("one_thread")


def test_mask_spatial_part_is_raster_causal():
    m = causal_mask(1, 1, 5, "B")[0, 0]
    expected = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [0] * 5, [0] * 5]).float()
    assert torch.equal(m, expected)
    a = causal_mask(1, 1, 5, "A")[0, 0]
    expected[2, 2] = 0
    assert torch.equal(a, expected)


def test_mask_rgb_centre_groups():
    # output channel o has colour o % 3, input channel i colour i % 3
    a = causal_mask(6, 3, 3, "A", n_colors=3)[:, :, 1, 1]
    b = causal_mask(6, 3, 3, "B", n_colors=3)[:, :, 1, 1]
    exp_a = torch.tensor([[0, 0, 0], [1, 0, 0], [1, 1, 0]]).float().repeat(2, 1)
    exp_b = torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]]).float().repeat(2, 1)
    assert torch.equal(a, exp_a)
    assert torch.equal(b, exp_b)
    # off-centre past positions are fully connected for every group
    assert causal_mask(6, 3, 3, "A", n_colors=3)[:, :, 0].eq(1).all()


def test_masked_conv_impulse_response():
    conv = MaskedConv2d(1, 1, 3, "A")
    with torch.no_grad():
        conv.conv.weight.fill_(1.0)
        conv.conv.bias.zero_()
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 1.0
    y = conv(x)[0, 0]
    # an impulse at (2,2) reaches only outputs that come after it in raster order
    nz = set(map(tuple, y.nonzero().tolist()))
    assert nz == {(2, 3), (3, 1), (3, 2), (3, 3)}


def test_horizontal_kernel_with_centre_at_the_right():
    m = causal_mask(1, 1, (1, 3), "B", center=(0, 2))[0, 0]
    assert torch.equal(m, torch.ones(1, 3))


def test_shift_down_and_sampler():
    x = torch.arange(6.0).view(1, 1, 3, 2)
    assert torch.equal(shift_down(x)[0, 0], torch.tensor([[0.0, 0.0], [0.0, 1.0], [2.0, 3.0]]))
    logits = torch.log(torch.tensor([[0.2, 0.3, 0.5]])).repeat(4, 1)
    u = torch.tensor([0.1, 0.25, 0.6, 0.999])
    assert sample_categorical(logits, u).tolist() == [0, 1, 2, 2]


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="mask_type"):
        causal_mask(1, 1, 3, "C")
    with pytest.raises(ValueError, match="center"):
        causal_mask(1, 1, 3, "A", center=(3, 0))
    with pytest.raises(TypeError, match="kernel_size"):
        causal_mask(1, 1, "3", "A")
    with pytest.raises(TypeError, match="x"):
        MaskedConv2d(1, 1, 3, "A")(torch.zeros(1, 1, 4, 4, dtype=torch.long))

"""Flow warping (exactness on the synthetic videos) and the flow-warping error."""
import pytest
import torch

from sparse3d.gen2d.data import moving_shapes
from sparse3d.gen2d.flow import flow_warping_error, warp


pytestmark = pytest.mark.usefixtures("one_thread")


def test_warp_integer_shift_is_exact():
    img = torch.arange(20.0).view(1, 1, 4, 5)
    flow = torch.zeros(1, 2, 4, 5)
    flow[:, 0] = 1.0  # out(x, y) = img(x + 1, y)
    out = warp(img, flow)
    assert torch.equal(out[0, 0, :, :4], img[0, 0, :, 1:])
    flow[:, 0], flow[:, 1] = 0.0, -1.0  # out(x, y) = img(x, y - 1)
    assert torch.equal(warp(img, flow)[0, 0, 1:], img[0, 0, :3])


def test_warp_half_pixel_is_bilinear():
    img = torch.tensor([[[[0.0, 2.0, 4.0]]]])
    flow = torch.zeros(1, 2, 1, 3)
    flow[:, 0] = 0.5
    assert torch.allclose(warp(img, flow)[0, 0, 0, :2], torch.tensor([1.0, 3.0]))


def test_true_flow_reproduces_next_frame_on_unoccluded_pixels():
    v = moving_shapes(6, frames=5, size=24, seed=3)
    f, fl, occ = v["frames"].double(), v["flows"].double(), v["occlusion"]
    B, T, C, H, W = f.shape
    for t in range(1, T):
        w = warp(f[:, t - 1], fl[:, t])
        valid = occ[:, t] == 0
        assert torch.allclose(w.masked_select(valid), f[:, t].masked_select(valid), atol=1e-12)
        # and the test has teeth: the frames really move, so zero flow does not reproduce them
        z = warp(f[:, t - 1], torch.zeros_like(fl[:, t]))
        assert (z - f[:, t]).abs().masked_select(valid).max() > 0.1
    assert float(flow_warping_error(f, fl, occ)) < 1e-20
    assert float(flow_warping_error(f, torch.zeros_like(fl), occ)) > 1e-3
    # occlusions exist (disocclusion behind shapes, new content at borders) but are a minority
    frac = occ[:, 1:].mean().item()
    assert 0.0 < frac < 0.4


def test_warping_error_value_on_a_hand_example():
    frames = torch.zeros(1, 2, 1, 2, 2)
    frames[0, 1, 0, 0, 0] = 1.0  # one pixel changes
    flows = torch.zeros(1, 2, 2, 2, 2)
    assert float(flow_warping_error(frames, flows)) == pytest.approx(0.25)
    occ = torch.zeros(1, 2, 1, 2, 2)
    occ[0, 1, 0, 0, 0] = 1.0  # ... and it is marked occluded
    assert float(flow_warping_error(frames, flows, occ)) == 0.0


def test_warp_bad_input():
    with pytest.raises(ValueError, match="flow"):
        warp(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 4, 5))
    with pytest.raises(TypeError, match="img"):
        warp(torch.zeros(1, 3, 4, 4, dtype=torch.long), torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match="frames"):
        flow_warping_error(torch.zeros(1, 1, 3, 4, 4), torch.zeros(1, 1, 2, 4, 4))

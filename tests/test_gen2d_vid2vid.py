"""vid2vid: composition of hallucination and warped previous frame, D_V windows, training."""
import pytest
import torch

from sparse3d.gen2d.data import moving_shapes
from sparse3d.gen2d.flow import warp
from sparse3d.gen2d.vid2vid import SequentialGenerator, Vid2Vid, one_hot_labels, video_windows


pytestmark = pytest.mark.usefixtures("one_thread")


class FixedNet(torch.nn.Module):
    def __init__(self, out):
        super().__init__()
        self.out = out

    def forward(self, x):
        return self.out


def test_step_composes_mask_hallucination_and_warp():
    torch.manual_seed(0)
    G = SequentialGenerator(label_ch=2, img_ch=3, past=2, ngf=4, n_down=2, max_flow=4.0)
    B, H, W = 2, 8, 8
    raw = torch.randn(B, 6, H, W)
    G.net = FixedNet(raw)
    labels = torch.zeros(B, 3, 2, H, W)
    prev = torch.rand(B, 2, 3, H, W)
    r = G.step(labels, prev, first=False)
    hall = torch.tanh(raw[:, :3])
    flow = 4.0 * torch.tanh(raw[:, 3:5])
    m = torch.sigmoid(raw[:, 5:])
    assert torch.allclose(r["frame"], m * hall + (1 - m) * warp(prev[:, -1], flow), atol=1e-6)
    assert torch.allclose(r["flow"], flow) and torch.allclose(r["mask"], m)
    # mask -> 0 with the true flow copies the warped previous frame exactly
    raw2 = raw.clone()
    raw2[:, 5] = -1e4
    raw2[:, 3:5] = 0.0
    G.net = FixedNet(raw2)
    assert torch.allclose(G.step(labels, prev, first=False)["frame"], prev[:, -1], atol=1e-6)
    # the first frame is pure hallucination
    assert torch.allclose(G.step(labels, prev, first=True)["frame"], hall)


def test_generator_is_sequential_in_time():
    torch.manual_seed(0)
    G = SequentialGenerator(4, 3, past=2, ngf=4, n_down=2).eval()
    lab = one_hot_labels(torch.randint(0, 4, (1, 5, 8, 8)), 4)
    out = G(lab)["frames"]
    lab2 = lab.clone()
    lab2[:, 3] = one_hot_labels(torch.randint(0, 4, (1, 8, 8)), 4)
    out2 = G(lab2)["frames"]
    # changing source frame 3 leaves frames 0..2 unchanged and changes frame 3
    assert torch.equal(out[:, :3], out2[:, :3])
    assert not torch.allclose(out[:, 3], out2[:, 3])


def test_video_windows_layout():
    f = torch.arange(2 * 4).float().view(1, 4, 2, 1, 1).expand(1, 4, 2, 2, 2)
    fl = 100 + torch.arange(4 * 2).float().view(1, 4, 2, 1, 1).expand(1, 4, 2, 2, 2)
    w = video_windows(f, fl, past=2)
    assert w.shape == (2, 3 * 2 + 2 * 2, 2, 2)
    assert w[0, :, 0, 0].tolist() == [0, 1, 2, 3, 4, 5, 102, 103, 104, 105]
    assert w[1, :, 0, 0].tolist() == [2, 3, 4, 5, 6, 7, 104, 105, 106, 107]


def test_train_steps_reduce_flow_and_l1():
    torch.manual_seed(0)
    v = moving_shapes(4, frames=4, size=16, seed=0)
    batch = {k: v[k] for k in ("labels", "frames", "flows")}
    m = Vid2Vid(4, ngf=8, ndf=8, n_down=3, d_layers=2, lambda_fm=1.0)
    og = torch.optim.Adam(m.G.parameters(), 2e-3, betas=(0.5, 0.999))
    od = torch.optim.Adam(list(m.D_I.parameters()) + list(m.D_V.parameters()), 2e-4, betas=(0.5, 0.999))
    first = m.train_step(batch, og, od)
    for _ in range(15):
        last = m.train_step(batch, og, od)
    assert last["l1"] < 0.8 * first["l1"]
    assert last["flow"] < first["flow"]
    assert all(torch.isfinite(torch.tensor(list(last.values()))))


def test_mask_bias_and_mask_loss_option():
    torch.manual_seed(0)
    G = SequentialGenerator(4, 3, past=2, ngf=4, n_down=2, mask_bias=-2.0)
    assert G.net.ups[-1][-1].bias[5].item() == -2.0
    v = moving_shapes(2, frames=3, size=16, seed=0)
    m = Vid2Vid(4, ngf=4, ndf=4, n_down=2, d_layers=1, lambda_mask=1.0)
    og = torch.optim.Adam(m.G.parameters(), 1e-3)
    od = torch.optim.Adam(list(m.D_I.parameters()) + list(m.D_V.parameters()), 1e-3)
    batch = {k: v[k] for k in ("labels", "frames", "flows")}
    with pytest.raises(ValueError, match="occlusion"):
        m.train_step(batch, og, od)
    batch["occlusion"] = v["occlusion"]
    assert m.train_step(batch, og, od)["mask"] > 0

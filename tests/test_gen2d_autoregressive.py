"""Causality, blind spot, likelihood and sampling of PixelCNN / Gated PixelCNN / PixelRNN."""
import math

import pytest
import torch
import torch.nn.functional as F

from sparse3d.gen2d.gated_pixelcnn import ClassConditionalGatedPixelCNN, GatedPixelCNN
from sparse3d.gen2d.pixelcnn import PixelCNN
from sparse3d.gen2d.pixelrnn import PixelRNN


pytestmark = pytest.mark.usefixtures("one_thread")


def dependency(model, C, H, W, cond=None, batch=4):
    """dep[c, i, j, c2, i2, j2] = True when logits of sub-pixel (c, i, j) have a non-zero
    gradient w.r.t. input sub-pixel (c2, i2, j2) for at least one of ``batch`` random inputs."""
    torch.manual_seed(0)
    model = model.double().eval()
    x = torch.randn(batch, C, H, W, dtype=torch.float64, requires_grad=True)
    out = model(x, cond)
    dep = torch.zeros(C, H, W, C, H, W, dtype=torch.bool)
    for c in range(C):
        for i in range(H):
            for j in range(W):
                g, = torch.autograd.grad(out[:, :, c, i, j].sum(), x, retain_graph=True)
                dep[c, i, j] = g.abs().sum(0) > 0
    return dep


def order(C, H, W):
    """order[c, i, j] = position of sub-pixel (c, i, j) in raster order with R -> G -> B."""
    i, j, c = torch.meshgrid(torch.arange(H), torch.arange(W), torch.arange(C), indexing="ij")
    return ((i * W + j) * C + c).permute(2, 0, 1)


def before(C, H, W):
    o = order(C, H, W).flatten()
    return (o[None, :] < o[:, None]).view(C, H, W, C, H, W)  # [out..., in...]


CASES = [
    ("pixelcnn", lambda C: PixelCNN(C, 4, 6 * C, 2, first_kernel=5)),
    ("gated", lambda C: GatedPixelCNN(C, 4, 8 * C, 6, first_kernel=3)),
    ("row_lstm", lambda C: PixelRNN(C, 4, 4 * C, 2, "row", first_kernel=3)),
    ("diagonal_bilstm", lambda C: PixelRNN(C, 4, 4 * C, 2, "diagonal", first_kernel=3)),
]


@pytest.mark.parametrize("C", [1, 3])
@pytest.mark.parametrize("name,make", CASES, ids=[c[0] for c in CASES])
def test_causal_no_dependency_on_current_or_later_subpixels(name, make, C):
    H = W = 5
    dep = dependency(make(C), C, H, W)
    leak = dep & ~before(C, H, W)
    assert not leak.any(), f"{name}: output depends on {int(leak.sum())} current/future sub-pixels"
    # and it is not trivially causal: it does depend on some earlier sub-pixels
    assert dep.sum() > 0.3 * before(C, H, W).sum()


@pytest.mark.parametrize("C", [1, 3])
def test_gated_pixelcnn_has_no_blind_spot(C):
    H = W = 5
    dep = dependency(GatedPixelCNN(C, 4, 8 * C, 6, first_kernel=3), C, H, W)
    assert torch.equal(dep, before(C, H, W))  # every earlier sub-pixel, nothing else


def test_conditional_gated_pixelcnn_is_causal_and_complete():
    H = W = 5
    m = GatedPixelCNN(1, 4, 8, 6, first_kernel=3, cond_dim=3)
    h = torch.randn(4, 3, dtype=torch.float64)
    assert torch.equal(dependency(m, 1, H, W, cond=h), before(1, H, W))


def test_plain_pixelcnn_has_a_blind_spot():
    # 3x3 mask-B stack: pixel (4, 1) cannot see (2, 4) though it comes earlier
    dep = dependency(PixelCNN(1, 4, 8, 3, first_kernel=3), 1, 6, 6)
    assert before(1, 6, 6)[0, 4, 1, 0, 2, 4]
    assert not dep[0, 4, 1, 0, 2, 4]
    assert (before(1, 6, 6) & ~dep).sum() > 0


def test_nll_is_exact_sum_of_log_softmax():
    torch.manual_seed(1)
    m = PixelCNN(3, 5, 6, 1)
    x = torch.randint(0, 5, (2, 3, 4, 4))
    logits = m(m.normalize(x))
    lp = F.log_softmax(logits, 1).gather(1, x[:, None]).squeeze(1)
    assert torch.allclose(m.nll(x), -lp.flatten(1).sum(1), atol=1e-5)
    assert torch.allclose(m.bits_per_dim(x), m.nll(x) / (48 * math.log(2)), atol=1e-6)
    # a fresh model is close to uniform: about log(5) nats per sub-pixel
    assert abs(float(m.nll(x).detach().mean()) / 48 - math.log(5)) < 0.5


def test_sampling_is_seeded_and_in_range():
    torch.manual_seed(2)
    m = GatedPixelCNN(3, 4, 6, 2)
    a = m.sample(3, (3, 4), seed=5)
    b = m.sample(3, (3, 4), seed=5)
    c = m.sample(3, (3, 4), seed=6)
    assert a.shape == (3, 3, 3, 4) and a.dtype == torch.long
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert 0 <= int(a.min()) and int(a.max()) <= 3


def test_sampler_follows_the_model_distribution():
    # a model with a strongly learned bias: all logits mass on level 2 -> samples are 2
    m = PixelCNN(1, 4, 4, 1)
    with torch.no_grad():
        last = m.head[-1].conv
        last.weight.zero_()
        last.bias.copy_(torch.tensor([0.0, 0.0, 50.0, 0.0]))
    assert m.sample(2, (3, 3), seed=0).eq(2).all()


def test_class_condition_changes_likelihood_and_validates():
    torch.manual_seed(3)
    m = ClassConditionalGatedPixelCNN(10, in_channels=1, n_levels=2, hidden=8, n_layers=2)
    x = torch.randint(0, 2, (2, 1, 4, 4))
    assert not torch.allclose(m.nll(x, torch.tensor([0, 1])), m.nll(x, torch.tensor([5, 7])))
    with pytest.raises(ValueError, match="cond"):
        m.nll(x, torch.tensor([0, 10]))
    with pytest.raises(ValueError, match="cond"):
        m.nll(x)
    with pytest.raises(ValueError, match="levels"):
        m.nll(torch.full((1, 1, 4, 4), 2), torch.tensor([0]))
    with pytest.raises(ValueError, match="x"):
        m(torch.zeros(1, 3, 4, 4), torch.tensor([0]))
    with pytest.raises(ValueError, match="hidden"):
        PixelCNN(3, 4, 8)

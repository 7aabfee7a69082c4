"""WaveNet: mu-law, causality, receptive field, cached generation == naive generation."""
import pytest
import torch

from sparse3d.gen2d.wavenet import WaveNet, mu_law_decode, mu_law_encode


pytestmark = pytest.mark.usefixtures("one_thread")


def small(n_classes=0, dtype=torch.float64):
    torch.manual_seed(0)
    return WaveNet(256, 8, 16, [1, 2, 4, 1, 2, 4], kernel_size=2, n_classes=n_classes).to(dtype).eval()


def test_mu_law_round_trip_and_range():
    x = torch.linspace(-1, 1, 2001)
    q = mu_law_encode(x)
    assert int(q.min()) == 0 and int(q.max()) == 255
    assert torch.all(q[1:] >= q[:-1])  # monotone
    err = (mu_law_decode(q) - x).abs()
    # mu-law steps are finest near zero
    assert err[(x.abs() < 0.01)].max() < 3e-4 and err.max() < 0.025  # half a mu-law step at |x| = 1
    assert int(mu_law_encode(torch.tensor([0.0]))) == 128


def test_causality_and_receptive_field():
    m = small()
    rf = m.receptive_field
    assert rf == 2 + (1 + 2 + 4) * 2
    T, t0 = 60, 20
    x = torch.randint(0, 256, (1, T))
    y = x.clone()
    y[0, t0] = (y[0, t0] + 100) % 256
    with torch.no_grad():
        diff = (m(x) - m(y)).abs().sum(1)[0]
    changed = (diff > 0).nonzero().flatten()
    # logits at t depend on x[:t] only: changing x[t0] touches exactly t0+1 .. t0+rf
    assert changed.min().item() == t0 + 1
    assert changed.max().item() == t0 + rf
    assert len(changed) == rf


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cached_generation_equals_full_forward(dtype):
    m = small(n_classes=3, dtype=dtype)
    c = torch.tensor([0, 2, 1])
    fast = m.generate(3, 40, seed=7, cond=c, cached=True)
    slow = m.generate(3, 40, seed=7, cond=c, cached=False)
    assert torch.equal(fast, slow)
    assert not torch.equal(fast, m.generate(3, 40, seed=8, cond=c, cached=True))
    # the samples are not constant (the sampler really samples)
    assert fast.unique().numel() > 10


def test_global_condition_matters_and_is_checked():
    m = small(n_classes=3)
    x = torch.randint(0, 256, (2, 30))
    assert not torch.allclose(m.nll(x, torch.tensor([0, 0])), m.nll(x, torch.tensor([1, 2])))
    with pytest.raises(ValueError, match="cond"):
        m.nll(x)
    with pytest.raises(ValueError, match="cond"):
        m.nll(x, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="x"):
        m(torch.full((1, 5), 256), torch.tensor([0]))
    with pytest.raises(TypeError, match="x"):
        m(torch.zeros(1, 5), torch.tensor([0]))
    with pytest.raises(ValueError, match="dilations"):
        WaveNet(dilations=[])


def test_bits_per_sample_of_untrained_model_near_uniform():
    m = small()
    x = torch.randint(0, 256, (2, 50))
    with torch.no_grad():
        b = m.bits_per_sample(x)
    assert torch.all((b > 7.0) & (b < 9.0))  # log2(256) = 8

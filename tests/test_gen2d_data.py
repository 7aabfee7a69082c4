"""Built-in data: digits splits and baseline, tones, scikit-image pairs, moving shapes."""
import pytest
import torch

from sparse3d.gen2d import data


pytestmark = pytest.mark.usefixtures("one_thread")


def test_digit_splits_are_disjoint_and_seeded():
    idx = data.split_indices(1797, seed=0)
    allidx = torch.cat([torch.from_numpy(v) for v in idx.values()])
    assert allidx.unique().numel() == 1797
    assert (len(idx["train"]), len(idx["val"]), len(idx["test"])) == (1258, 180, 359)
    assert (data.split_indices(1797, 1)["test"] != idx["test"]).any()
    with pytest.raises(ValueError, match="val_frac"):
        data.split_indices(10, 0, 0.6, 0.5)


def test_digit_levels_and_independent_baseline():
    d2, d17 = data.digits(2), data.digits(17)
    assert set(d2["train"]["x"].unique().tolist()) == {0, 1}
    assert int(d17["train"]["x"].max()) == 16 and int(d17["train"]["x"].min()) == 0
    assert torch.equal(d2["test"]["x"], (d17["test"]["x"] >= 8).long())
    assert d2["train"]["x"].shape[1:] == (1, 8, 8) and d2["train"]["y"].max() == 9
    base = data.independent_pixel_nll(d2["train"]["x"], d2["test"]["x"], 2)
    assert 23.0 < base < 27.0  # "about 25 nats/image"
    # a baseline fitted on the test set itself can only be better
    assert data.independent_pixel_nll(d2["test"]["x"], d2["test"]["x"], 2) < base
    with pytest.raises(ValueError, match="levels"):
        data.digits(4)


def test_tones_are_seeded_periodic_signals():
    a, b = data.tones(4, 256, seed=1), data.tones(4, 256, seed=1)
    assert torch.equal(a["audio"], b["audio"]) and a["audio"].abs().max() <= 1
    c = data.tones(4, 256, seed=2)
    assert not torch.equal(a["audio"], c["audio"])
    # a pure tone is predictable: a linear AR(2) fit explains almost all the variance
    x = data.tones(1, 2000, noise=0.0, seed=3)["audio"][0].double()
    A = torch.stack([x[1:-1], x[:-2]], 1)
    coef = torch.linalg.lstsq(A, x[2:, None]).solution
    resid = x[2:, None] - A @ coef
    assert float(resid.var() / x.var()) < 0.05


def test_image_pairs_shapes_and_range():
    p = data.image_pairs(5, 32, seed=0)
    assert p["src"].shape == (5, 1, 32, 32) and p["tgt"].shape == (5, 3, 32, 32)
    assert p["src"].min() >= -1 and p["tgt"].max() <= 1
    assert torch.equal(p["tgt"], data.image_pairs(5, 32, seed=0)["tgt"])


def test_moving_shapes_outputs():
    v = data.moving_shapes(3, frames=4, size=20, seed=5)
    assert v["frames"].shape == (3, 4, 3, 20, 20) and v["labels"].shape == (3, 4, 20, 20)
    assert v["flows"].shape == (3, 4, 2, 20, 20) and v["occlusion"].shape == (3, 4, 1, 20, 20)
    assert set(v["labels"].unique().tolist()) <= {0, 1, 2, 3}
    assert v["occlusion"][:, 0].eq(1).all() and v["flows"][:, 0].eq(0).all()
    # flows are integer velocities
    assert torch.equal(v["flows"], v["flows"].round())
    w = data.moving_shapes(3, frames=4, size=20, seed=5)
    assert all(torch.equal(v[k], w[k]) for k in v)
    with pytest.raises(ValueError, match="pan_speed"):
        data.moving_shapes(1, pan_speed=-1)
    with pytest.raises(ValueError, match="size"):
        data.moving_shapes(1, size=8)

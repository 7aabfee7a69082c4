import numpy as np
import pytest
import torch

import sparse3d as s3d
from sparse3d.tasks.completion.dataset import collate, sparse_input
from sparse3d.tasks.completion.procedural import procedural_sample
from sparse3d.tasks.completion.model import CompletionConfig, CompletionNet
from sparse3d.tasks.completion.loss import CompletionTarget, completion_loss, log_transform

import pytest as _pytest

pytestmark = _pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SMALL = CompletionConfig(channels=(4, 8, 8), grow_steps=1)


def test_sparse_input_channels():
    s = procedural_sample(16, 0)
    c, f = sparse_input(s.input_tsdf, s.input_known, s.trunc)
    assert c.shape[1] == 3 and f.shape == (len(c), 2)
    band = f[:, 1] == 1
    assert band.any() and (~band).any()  # observed band and unobserved frontier
    assert np.all(np.abs(f[band, 0]) < 1) and np.all(f[~band, 0] == 0)
    assert np.all(s.input_known[tuple(c[band].T)]) and not np.any(s.input_known[tuple(c[~band].T)])


def test_target_levels_pool_children():
    tsdf = torch.full((1, 8, 8, 8), 3.0)
    tsdf[0, 5, 2, 7] = 0.2  # one surface voxel
    known = torch.ones(1, 8, 8, 8, dtype=torch.bool)
    t = CompletionTarget(tsdf, known)
    q = torch.tensor([[0, 5, 2, 7], [0, 0, 0, 0], [0, 9, 0, 0]], dtype=torch.int32)
    occ, valid = t.occupancy(q, 1)
    assert occ.tolist() == [True, False, False] and valid.tolist() == [True, True, False]
    occ4, _ = t.occupancy(torch.tensor([[0, 1, 0, 1], [0, 0, 0, 0]], dtype=torch.int32), 4)
    assert occ4.tolist() == [True, False]


@pytest.mark.parametrize("decoder", ["sparse", "octree"])  # octree: tests/test_completion_octree_decoder.py
def test_forward_levels_strides_and_bounds(decoder):
    torch.manual_seed(0)
    x, t = collate([procedural_sample(16, i) for i in range(2)])
    net = CompletionNet(CompletionConfig(channels=(4, 8, 8), grow_steps=1, decoder=decoder))
    out = net(x, bounds=t.shape, target_fn=t.occupied)
    assert out.strides == [4, 2, 1]
    for lvl in out.levels:
        xyz = lvl.coords[:, 1:]
        assert int(xyz.min()) >= 0 and int(xyz.max()) < 16 // lvl.stride
    assert out.tsdf_all.shape == (len(out.levels[-1]),)
    assert float(out.tsdf_all.detach().abs().max()) <= SMALL.trunc
    # training keeps every true surface voxel that a coarse parent led to
    occ, _ = t.occupancy(out.levels[-1].coords, 1)
    true_fine = int(t._occ[1].sum())
    assert int(occ.sum()) == true_fine  # all of them were generated
    loss, logs = completion_loss(out, t)
    assert torch.isfinite(loss) and set(logs) >= {"bce_s4", "bce_s2", "bce_s1", "l1", "loss"}


@pytest.mark.parametrize("decoder", ["sparse", "octree"])
def test_fully_convolutional_other_size(decoder):
    net = CompletionNet(CompletionConfig(channels=(4, 8, 8), grow_steps=1, decoder=decoder)).eval()
    s = procedural_sample(24, 3)
    c, f = sparse_input(s.input_tsdf, s.input_known, s.trunc)
    x = s3d.SparseTensor(torch.from_numpy(np.concatenate([np.zeros((len(c), 1), np.int32), c], 1)),
                         torch.from_numpy(f))
    with torch.no_grad():
        out = net(x, bounds=(24, 24, 24))
    assert out.surface.num_channels == 1


def test_bad_input_message():
    net = CompletionNet(SMALL)
    x = s3d.SparseTensor(torch.zeros(1, 4, dtype=torch.int32), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="2 channels"):
        net(x)
    with pytest.raises(ValueError, match="channels"):
        CompletionConfig(channels=())


def test_log_transform():
    assert torch.allclose(log_transform(torch.tensor([-1.0, 0.0, 2.0])),
                          torch.tensor([-np.log(2), 0.0, np.log(3)]).float())


@pytest.mark.parametrize("decoder", ["sparse", "octree"])
def test_overfit_one_crop(decoder):
    torch.manual_seed(0)
    x, t = collate([procedural_sample(16, 5)])
    net = CompletionNet(CompletionConfig(channels=(4, 8, 8), grow_steps=1, decoder=decoder))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    losses = []
    for _ in range(25):
        out = net(x, bounds=t.shape, target_fn=t.occupied)
        loss, _ = completion_loss(out, t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.6 * losses[0]


def test_coarse_dense_needs_bounds():
    net = CompletionNet(CompletionConfig(channels=(4, 8), grow_steps=0, coarse_dense=True)).eval()
    x, t = collate([procedural_sample(8, 0)])
    with pytest.raises(ValueError, match=r"coarse_dense=True needs bounds=\(X, Y, Z\).*got bounds=None"):
        net(x)
    with torch.no_grad():
        out = net(x, bounds=t.shape)
    assert len(out.levels[0]) == 4 ** 3  # the whole 8^3 volume at stride 2

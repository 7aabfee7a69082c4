"""The completion network with the octree-generating decoder (decoder: octree)."""
import numpy as np
import pytest
import torch

import sparse3d as s3d
from sparse3d.tasks.completion.checkpoint import load_model
from sparse3d.tasks.completion.config import CompletionTrainConfig
from sparse3d.tasks.completion.dataset import collate, sparse_input
from sparse3d.tasks.completion.loss import completion_loss
from sparse3d.tasks.completion.model import CompletionConfig, CompletionNet
from sparse3d.tasks.completion.octree_decoder import OctreeDecoder
from sparse3d.tasks.completion.procedural import procedural_sample
from sparse3d.train.checkpoint import save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

OCTREE = CompletionConfig(channels=(4, 8, 8), grow_steps=1, decoder="octree")


def test_levels_strides_bounds_and_teacher_forcing():
    torch.manual_seed(0)
    x, t = collate([procedural_sample(16, i) for i in range(2)])
    net = CompletionNet(OCTREE)
    assert isinstance(net.octree, OctreeDecoder) and not hasattr(net, "up")
    out = net(x, bounds=t.shape, target_fn=t.occupied)
    assert out.strides == [4, 2, 1]
    for lvl, logit in zip(out.levels, out.logits):
        xyz = lvl.coords[:, 1:]
        assert int(xyz.min()) >= 0 and int(xyz.max()) < 16 // lvl.stride
        assert logit.shape == (len(lvl),)
    assert out.tsdf_all.shape == (len(out.levels[-1]),)
    assert float(out.tsdf_all.detach().abs().max()) <= OCTREE.trunc
    occ, _ = t.occupancy(out.levels[-1].coords, 1)
    assert int(occ.sum()) == int(t._occ[1].sum())  # every true surface voxel was generated
    # each finer level holds exactly the (in-bounds) children of the voxels the coarser level split
    for coarse, fine, logit in zip(out.levels[:-1], out.levels[1:], out.logits[:-1]):
        split = (logit > 0) | t.occupied(coarse.coords, coarse.stride)
        parents = coarse.coords[split]
        kids = {(int(b), int(xx) // 2, int(y) // 2, int(z) // 2) for b, xx, y, z in fine.coords.tolist()}
        assert kids == {tuple(p) for p in parents.tolist()}
    loss, logs = completion_loss(out, t)
    assert torch.isfinite(loss) and set(logs) >= {"bce_s4", "bce_s2", "bce_s1", "l1", "loss"}
    loss.backward()
    assert all(p.grad is not None for n, p in net.named_parameters() if n.startswith("octree."))


def test_overfits_one_crop():
    torch.manual_seed(0)
    x, t = collate([procedural_sample(16, 5)])
    net = CompletionNet(OCTREE)
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


def test_inference_whole_scene_without_bounds():
    net = CompletionNet(OCTREE).eval()
    s = procedural_sample(24, 3)
    c, f = sparse_input(s.input_tsdf, s.input_known, s.trunc)
    x = s3d.SparseTensor(torch.from_numpy(np.concatenate([np.zeros((len(c), 1), np.int32), c], 1)),
                         torch.from_numpy(f))
    with torch.no_grad():
        out = net(x)  # the coarse growth may reach negative coordinates: the octree drops them
    assert out.surface.num_channels == 1
    assert all(int(lvl.coords[:, 1:].min()) >= 0 for lvl in out.levels if len(lvl))
    s_surface = set(map(tuple, out.surface.coords.tolist()))
    assert s_surface <= set(map(tuple, out.levels[-1].coords.tolist()))


def test_config_errors_and_checkpoint_roundtrip(tmp_path):
    with pytest.raises(ValueError, match="decoder must be one of"):
        CompletionConfig(decoder="hash")
    with pytest.raises(ValueError, match="needs decoder 'sparse'"):
        CompletionConfig(decoder="octree", groups=8)
    torch.manual_seed(1)
    net = CompletionNet(OCTREE).eval()
    cfg = CompletionTrainConfig(model=OCTREE)
    save_checkpoint(str(tmp_path / "last.pt"), {"model": net.state_dict(), "config": cfg.to_dict(), "step": 0},
                    "completion")
    back, back_cfg = load_model(str(tmp_path / "last.pt"))
    assert back_cfg.model.decoder == "octree" and isinstance(back.octree, OctreeDecoder)
    x, t = collate([procedural_sample(16, 2)])
    with torch.no_grad():
        a, b = net(x, bounds=t.shape), back(x, bounds=t.shape)
    assert torch.equal(a.tsdf_all, b.tsdf_all) and torch.equal(a.surface.coords, b.surface.coords)

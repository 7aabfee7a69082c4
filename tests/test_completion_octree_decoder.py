"""The completion network with the octree-generating decoder (decoder: octree)."""
import pytest
import torch

from sparse3d.tasks.completion.checkpoint import load_model
from sparse3d.tasks.completion.config import CompletionTrainConfig
from sparse3d.tasks.completion.dataset import collate
from sparse3d.tasks.completion.loss import completion_loss
from sparse3d.tasks.completion.model import CompletionConfig, CompletionNet
from sparse3d.tasks.completion.octree_decoder import OctreeDecoder
from sparse3d.tasks.completion.procedural import procedural_sample
from sparse3d.train.checkpoint import save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

OCTREE = CompletionConfig(channels=(4, 8, 8), grow_steps=1, decoder="octree")


def test_each_level_holds_the_children_of_the_split_octants():
    """(levels, strides, bounds, teacher forcing and the loss: tests/test_completion_model.py, both decoders)"""
    torch.manual_seed(0)
    x, t = collate([procedural_sample(16, i) for i in range(2)])
    net = CompletionNet(OCTREE)
    assert isinstance(net.octree, OctreeDecoder) and not hasattr(net, "up")
    out = net(x, bounds=t.shape, target_fn=t.occupied)
    for lvl, logit in zip(out.levels, out.logits):
        assert logit.shape == (len(lvl),)
    # each finer level holds exactly the (in-bounds) children of the voxels the coarser level split
    for coarse, fine, logit in zip(out.levels[:-1], out.levels[1:], out.logits[:-1]):
        split = (logit > 0) | t.occupied(coarse.coords, coarse.stride)
        kids = {(int(b), int(xx) // 2, int(y) // 2, int(z) // 2) for b, xx, y, z in fine.coords.tolist()}
        assert kids == {tuple(p) for p in coarse.coords[split].tolist()}
    loss, _ = completion_loss(out, t)
    loss.backward()
    assert all(p.grad is not None for n, p in net.named_parameters() if n.startswith("octree."))


def test_inference_whole_scene_without_bounds():
    net = CompletionNet(OCTREE).eval()
    x, _ = collate([procedural_sample(24, 3)])
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

"""Dependent (autoregressive) group predictions of the completion model (sparse3d/tasks/completion/dependent.py)."""
import numpy as np
import pytest
import torch

from _completion_fixtures import write_tiny_dataset
from sparse3d.tasks.completion.checkpoint import load_model
from sparse3d.tasks.completion.config import CompletionTrainConfig, load_config
from sparse3d.tasks.completion.dataset import collate
from sparse3d.tasks.completion.dependent import GroupedOccupancy, group_index
from sparse3d.tasks.completion.loss import completion_loss
from sparse3d.tasks.completion.model import CompletionConfig, CompletionNet
from sparse3d.tasks.completion.procedural import procedural_sample
from sparse3d.tasks.completion.train import train
from sparse3d.train.checkpoint import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SMALL = dict(channels=(4, 8, 8), grow_steps=1)


def _batch(n=2, size=16):
    return collate([procedural_sample(size, i) for i in range(n)])


def _grouped_net(groups=8, group_levels=2, seed=0, sampling=0.0):
    """A grouped net whose context branch is not at its zero initialisation (so the context matters)."""
    torch.manual_seed(seed)
    net = CompletionNet(CompletionConfig(**SMALL, groups=groups, group_levels=group_levels, group_sampling=sampling))
    with torch.no_grad():
        for head in net.dependent.values():
            head.mix[2].weight.normal_(0, 0.5)
            head.mix[2].bias.normal_(0, 0.1)
    return net


def _key(coords):
    c = coords.long()
    return ((c[:, 0] * 4096 + c[:, 1] + 1024) * 4096 + c[:, 2] + 1024) * 4096 + c[:, 3] + 1024


def _set_fn(decided):
    """target_fn answering from {stride: coords [M, 4]} (the voxels called occupied at that stride)."""
    keys = {s: _key(c) for s, c in decided.items()}
    return lambda coords, stride: torch.isin(_key(coords), keys[stride])


@pytest.mark.parametrize("groups", [1, 2, 8])
def test_groups_partition_the_level(groups):
    r = torch.arange(-3, 5)
    xyz = torch.stack(torch.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    coords = torch.cat([torch.zeros(len(xyz), 1, dtype=torch.long), xyz], 1).int()
    g = group_index(coords, groups)
    assert g.dtype == torch.long and int(g.min()) == 0 and int(g.max()) == groups - 1
    assert torch.bincount(g, minlength=groups).tolist() == [len(xyz) // groups] * groups  # equal classes
    p = xyz & 1
    if groups == 8:  # a group is exactly one parity class (x % 2, y % 2, z % 2)
        for k in range(8):
            assert (p[g == k] == p[g == k][0]).all()
    if groups == 2:  # checkerboard: face neighbours are in the other group
        assert torch.equal(g, (xyz.sum(1) % 2).long())
    with pytest.raises(ValueError, match=r"groups must be one of \[1, 2, 8\], got 4"):
        group_index(coords, 4)
    # inside the model: every voxel of a grouped level gets exactly one logit, in the level's row order
    x, t = _batch(1)
    net = _grouped_net(groups=groups if groups > 1 else 2)
    out = net(x, bounds=t.shape, target_fn=t.occupied)
    for lvl, logit in zip(out.levels, out.logits):
        assert logit.shape == (len(lvl),)


@pytest.mark.parametrize("sampling", [0.0, 0.5])
def test_group_ignores_later_groups(sampling):
    """Group g's logits are bit-identical whatever the inputs (teacher-forced occupancy) of groups >= g;
    checked at the finest and the middle level, in training mode (batch norm on batch statistics)."""
    x, t = _batch()
    net = _grouped_net(sampling=sampling).train()
    ref = net(x, bounds=t.shape, target_fn=t.occupied)
    again = net(x, bounds=t.shape, target_fn=t.occupied)
    assert all(torch.equal(a, b) for a, b in zip(ref.logits, again.logits))  # deterministic to start with
    gen = torch.Generator().manual_seed(1)
    for lvl in (1, 2):  # strides 2 and 1
        stride = ref.strides[lvl]
        group = group_index(ref.levels[lvl].coords, 8)
        for g in (1, 4, 7):
            def perturbed(coords, s, g=g, stride=stride):
                occ = t.occupied(coords, s)
                if s != stride:
                    return occ
                later = group_index(coords, 8) >= g
                noise = torch.rand(len(coords), generator=gen) < 0.5
                return torch.where(later, noise, occ)
            out = net(x, bounds=t.shape, target_fn=perturbed)
            assert torch.equal(out.levels[lvl].coords, ref.levels[lvl].coords)
            early = group <= g
            assert torch.equal(out.logits[lvl][early], ref.logits[lvl][early]), (lvl, g)
            if g < 7:  # not vacuous: groups after g do see what changed
                assert not torch.equal(out.logits[lvl][group > g], ref.logits[lvl][group > g]), (lvl, g)


@pytest.mark.parametrize("sampling", [0.0, 0.5])
def test_teacher_forcing_equals_inference_on_its_own_decisions(sampling):
    x, t = _batch()
    net = _grouped_net(sampling=sampling).eval()
    with torch.no_grad():
        for lvl, occ in enumerate(net.occ):  # a random net keeps few voxels: centre each level's logits so
            occ.module.bias -= net(x, bounds=t.shape).logits[lvl].median()  # it keeps some and drops some
        inf = net(x, bounds=t.shape)
        decided = {s: lvl.coords[logit > 0] for s, lvl, logit in zip(inf.strides, inf.levels, inf.logits)}
        assert all(0 < int((lg > 0).sum()) < len(lg) for lg in inf.logits)
        tf = net(x, bounds=t.shape, target_fn=_set_fn(decided))
    for a, b in zip(inf.levels, tf.levels):
        assert torch.equal(a.coords, b.coords) and torch.equal(a.feats, b.feats)
    assert all(torch.equal(a, b) for a, b in zip(inf.logits, tf.logits))
    assert torch.equal(inf.tsdf_all, tf.tsdf_all) and torch.equal(inf.surface.feats, tf.surface.feats)
    # and with the ground truth instead, teacher forcing differs (the context is used)
    with torch.no_grad():
        gt = net(x, bounds=t.shape, target_fn=t.occupied)
    assert not torch.equal(gt.logits[-1], inf.logits[-1])


def test_groups_1_is_the_one_shot_model_and_zero_init_heads_start_there():
    x, t = _batch(1)
    torch.manual_seed(0)
    one = CompletionNet(CompletionConfig(**SMALL)).eval()
    assert len(one.dependent) == 0 and not any(k.startswith("dependent") for k in one.state_dict())
    grouped = CompletionNet(CompletionConfig(**SMALL, groups=8, group_levels=3)).eval()
    missing, unexpected = grouped.load_state_dict(one.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("dependent.") for k in missing)
    with torch.no_grad():
        pairs = [(one(x, bounds=t.shape, target_fn=t.occupied), grouped(x, bounds=t.shape, target_fn=t.occupied)),
                 (one(x, bounds=t.shape), grouped(x, bounds=t.shape))]  # teacher forcing; inference
    for a, o in pairs:
        assert all(torch.equal(p.coords, q.coords) for p, q in zip(a.levels, o.levels))
        for p, q in zip(a.logits, o.logits):  # the zero-initialised mix adds exactly 0
            torch.testing.assert_close(q, p, rtol=0, atol=1e-6)


def test_grouped_model_trains_and_gradients_reach_the_context():
    x, t = _batch()
    net = _grouped_net(group_levels=1).train()
    out = net(x, bounds=t.shape, target_fn=t.occupied)
    loss, logs = completion_loss(out, t)
    loss.backward()
    head = net.dependent["2"]
    assert set(net.dependent) == {"2"}  # group_levels=1: the finest of 3 levels only
    assert float(head.ctx[0].weight.grad.abs().sum()) > 0 and float(head.mix[0].weight.grad.abs().sum()) > 0
    assert np.isfinite(logs["loss"])


def test_config_checks():
    with pytest.raises(ValueError, match=r"groups must be one of \[1, 2, 8\], got 3"):
        CompletionConfig(groups=3)
    with pytest.raises(ValueError, match=r"group_levels must be in \[1, 3\].*got 4"):
        CompletionConfig(groups=8, group_levels=4)
    with pytest.raises(ValueError, match="group_channels must be >= 1, got 0"):
        CompletionConfig(groups=8, group_channels=0)
    with pytest.raises(ValueError, match=r"group_sampling must be in \[0, 1\], got 1.5"):
        CompletionConfig(groups=8, group_sampling=1.5)
    head = GroupedOccupancy(8, 8)
    x, _ = _batch(1)
    from sparse3d.tensor import SparseTensor
    h = SparseTensor(x.coords, torch.zeros(len(x), 8))
    with pytest.raises(ValueError, match=r"target must be bool \[N=\d+\]"):
        head(h, torch.nn.Linear(8, 1), torch.zeros(len(x)))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return write_tiny_dataset(str(tmp_path_factory.mktemp("tiny")), n=2)


def test_checkpoint_round_trips_the_option_and_old_checkpoints_load(tiny_data, tmp_path):
    model = {**SMALL, "channels": list(SMALL["channels"]), "groups": 8, "group_levels": 2, "group_channels": 4,
             "group_sampling": 0.25}
    cfg = load_config(None, {"model": model, "batch_size": 2, "lr_decay_at": [], "checkpoint_every": 2,
                             "threads": 1, "data": tiny_data, "out": str(tmp_path / "g"), "steps": 1})
    train(cfg, progress=False)
    net, got = load_model(str(tmp_path / "g" / "last.pt"))
    assert (got.model.groups, got.model.group_levels, got.model.group_channels, got.model.group_sampling) == (8, 2, 4,
                                                                                                          0.25)
    assert set(net.dependent) == {"1", "2"} and net.dependent["2"].ctx[0].out_channels == 4
    assert net.dependent["2"].sampling == 0.25
    state = load_checkpoint(str(tmp_path / "g" / "last.pt"))
    for k, v in state["model"].items():
        assert torch.equal(net.state_dict()[k], v), k
    # a checkpoint written before the option existed: no groups keys in its config -> the one-shot model
    cfg1 = CompletionTrainConfig(**{**cfg.to_dict(), "model": {**model, "groups": 1}})
    old = {**state, "model": CompletionNet(cfg1.model).state_dict(), "config": cfg1.to_dict()}
    for k in ("groups", "group_levels", "group_channels", "group_sampling"):
        del old["config"]["model"][k]
    torch.save(old, str(tmp_path / "old.pt"))
    net1, got1 = load_model(str(tmp_path / "old.pt"))
    assert got1.model.groups == 1 and len(net1.dependent) == 0
    # format 1 (flat config keys, no format_version) as well
    flat = {k: v for k, v in old.items() if k not in ("format_version", "task")}
    flat["config"] = {**{k: v for k, v in old["config"].items() if k != "model"},
                      **{k: old["config"]["model"][k] for k in ("channels", "grow_steps", "coarse_dense",
                                                                "blocks", "trunc")}}
    torch.save(flat, str(tmp_path / "flat.pt"))
    net2, got2 = load_model(str(tmp_path / "flat.pt"))
    assert got2.model.groups == 1 and CompletionTrainConfig.from_dict(flat["config"]).model.groups == 1
    x, t = _batch(1)
    with torch.no_grad():
        assert torch.equal(net1(x, bounds=t.shape).logits[0], net2(x, bounds=t.shape).logits[0])

"""The segmentation U-Net, its input features, loss, class weights and augmentation."""
import numpy as np
import pytest
import torch

import sparse3d.nn as snn
from sparse3d.tasks.segmentation.config import (IGNORE, SegmentationModelConfig, SegmentationTrainConfig,
                                                load_config)
from sparse3d.tasks.segmentation.dataset import (augment, collate, label_counts, random_box, sample_features,
                                                 voxel_normals)
from sparse3d.tasks.segmentation.benchmark import class_confusion, scores_from_confusion
from sparse3d.tasks.segmentation.loss import class_weights, segmentation_loss
from sparse3d.tasks.segmentation.model import SegmentationUNet, predict_labels, predict_logits
from sparse3d.tasks.segmentation.sample import SegSample
from sparse3d.utils.test_time_views import tta_views, view_transform
from sparse3d.tensor import SparseTensor

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SMALL = SegmentationModelConfig(widths=(8, 12, 16), in_features=("color", "height"))


def room(seed=0, n=18, h=10) -> SegSample:
    """A tiny room: floor (class 1, z = 0), two walls (class 0), a 3x3x3 box (class 4) and a few ignored voxels."""
    rng = np.random.default_rng(seed)
    pts, lab = [], []
    for x in range(n):
        for y in range(n):
            pts.append((x, y, 0)); lab.append(1)
    for a in range(n):
        for z in range(1, h):
            pts.append((0, a, z)); lab.append(0)
            if a > 0:
                pts.append((a, 0, z)); lab.append(0)
    for x in range(6, 9):
        for y in range(6, 9):
            for z in range(1, 4):
                pts.append((x, y, z)); lab.append(4)
    c = np.array(pts, np.int32)
    lab = np.array(lab, np.uint8)
    lab[rng.choice(len(lab), 5, replace=False)] = IGNORE
    order = np.lexsort((c[:, 2], c[:, 1], c[:, 0]))
    c, lab = c[order], lab[order]
    palette = np.array([[200, 200, 190], [120, 100, 80], [0, 0, 0], [0, 0, 0], [60, 90, 140]], np.float64)
    color = np.clip(palette[np.minimum(lab, 4)] + rng.normal(0, 8, (len(lab), 3)), 0, 255).astype(np.uint8)
    return SegSample(scene_id=f"room{seed}", coords=c, color=color, tsdf=rng.uniform(-1, 1, len(c)).astype(np.float32),
                     labels=lab, crop_origin=np.array([0, 0, 0], np.int32), crop_size=np.array([n, n, h], np.int32),
                     voxel_size=0.05, voxel_to_world=np.diag([0.05, 0.05, 0.05, 1.0]))


def batch_of(samples, cfg):
    return collate([(s.coords, sample_features(s, cfg).numpy(), s.labels) for s in samples])


# ---- model ------------------------------------------------------------------------------------------

def test_logits_shape_and_coordinates():
    torch.manual_seed(0)
    net = SegmentationUNet(SMALL)
    x, y = batch_of([room(0), room(1)], SMALL)
    out = net(x)
    assert out.feats.shape == (len(x), 20)
    assert out.stride == 1
    assert torch.equal(out.coords, x.coords)  # logits on the input's voxels, same order
    assert y.shape == (len(x),) and y.dtype == torch.int64


def test_sample_norm_unet_predicts_a_scene_as_it_trains_on_it_alone():
    """norm "sample": every normalisation is SampleNorm (no BatchNorm left, no running statistics); a scene's logits
    are the same in training and evaluation mode, and the same alone as in a batch with another scene."""
    torch.manual_seed(0)
    cfg = SegmentationModelConfig(widths=(8, 12, 16), in_features=("color", "height"), norm="sample")
    net = SegmentationUNet(cfg).double()
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in net.modules())
    assert sum(isinstance(m, snn.SampleNorm) for m in net.modules()) == \
        sum(isinstance(m, snn.BatchNorm) for m in SegmentationUNet(
            SegmentationModelConfig(widths=(8, 12, 16), in_features=("color", "height"), norm="batch")).modules()) > 0
    assert not any("running" in k for k in net.state_dict())
    a, b = room(0), room(1)
    xa, _ = batch_of([a], cfg)
    xab, _ = batch_of([a, b], cfg)
    xa, xab = xa.replace(xa.feats.double()), xab.replace(xab.feats.double())
    with torch.no_grad():
        train_out = net.train()(xa).feats
        eval_out = net.eval()(xa).feats
        pair = net(xab)
    torch.testing.assert_close(train_out, eval_out)
    first = pair.coords[:, 0] == 0
    torch.testing.assert_close(pair.feats[first], eval_out)
    # a BatchNorm net trained on one scene per batch is the same function in training mode
    bn_net = SegmentationUNet(SegmentationModelConfig(widths=(8, 12, 16), in_features=("color", "height"),
                                                      norm="batch")).double()
    bn_layers = {n for n, m in bn_net.named_modules() if isinstance(m, snn.BatchNorm)}
    bn_state = {}
    for k, v in bn_net.state_dict().items():
        layer, _, name = k.rpartition(".module.")
        if layer in bn_layers and name in ("weight", "bias"):
            bn_state[f"{layer}.{name}"] = v
        elif layer not in bn_layers:
            bn_state[k] = v
    net.load_state_dict(bn_state)
    with torch.no_grad():
        torch.testing.assert_close(net(xa).feats, bn_net.train()(xa).feats)


def test_configs_written_before_the_norm_option_read_as_batch_norm():
    old = SegmentationTrainConfig().to_dict()
    del old["model"]["norm"]
    assert SegmentationTrainConfig.from_dict(old).model.norm == "batch"
    assert SegmentationTrainConfig.from_dict(SegmentationTrainConfig().to_dict()).model.norm == "sample"
    assert SegmentationModelConfig().norm == "sample"


def test_depth_and_widths_are_configurable():
    for widths, blocks in (((4,), 1), ((4, 6, 8, 10, 12), 2)):
        net = SegmentationUNet(SegmentationModelConfig(widths=widths, blocks=blocks, in_features=("color",)))
        x, _ = batch_of([room(0)], net.config)
        assert net(x).feats.shape == (len(x), 20)
        assert len(net.down) == len(widths) - 1 and len(net.enc[0]) == blocks


def test_wrong_input_channels_are_refused():
    net = SegmentationUNet(SMALL)
    x, _ = batch_of([room(0)], SegmentationModelConfig(in_features=("color",)))
    with pytest.raises(ValueError, match=r"4 channels .*in_features \['color', 'height'\].*got stride 1 and 3"):
        net(x)


@pytest.mark.parametrize("other", ["torch", "spconv"])
def test_backends_agree_with_native_float64(other):
    """Same weights, float64: logits and every weight gradient equal on native and the other backend."""
    if other == "spconv":
        pytest.importorskip("spconv", reason="spconv is not installed")
    torch.manual_seed(0)
    cfg = SMALL if other == "torch" else SegmentationModelConfig(widths=(4, 6, 8), in_features=("color", "height"))
    net = SegmentationUNet(cfg).double()
    x, _ = batch_of([room(0), room(2)] if other == "torch" else [room(0)], cfg)
    x = x.replace(x.feats.double())
    outs = {}
    for be in ("native", other):
        snn.set_backend(net, be).train()
        net.zero_grad()
        o = net(x).feats
        (o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).reshape(o.shape)).sum().backward()
        outs[be] = (o.detach(), [p.grad.clone() for p in net.parameters()])
    torch.testing.assert_close(outs["native"][0], outs[other][0], rtol=1e-10, atol=1e-10)
    for a, b in zip(outs["native"][1], outs[other][1]):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)
    assert np.array_equal(predict_labels(net, room(0), backend="native"), predict_labels(net, room(0), backend=other))


def test_gradient_reaches_every_parameter():
    torch.manual_seed(0)
    net = SegmentationUNet(SMALL)
    x, y = batch_of([room(0)], SMALL)
    segmentation_loss(net(x).feats, y).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_predict_labels_restores_backend_and_mode():
    torch.manual_seed(0)
    net = snn.set_backend(SegmentationUNet(SMALL), "native").train()
    s = room(1)
    lab = predict_labels(net, s, backend="torch")
    assert lab.dtype == np.uint8 and lab.shape == (len(s),) and lab.max() < 20
    assert net.training and all(m.backend == "native" for m in net.modules() if isinstance(m, snn.Conv3d))
    np.testing.assert_array_equal(lab, predict_labels(net, s))
    with pytest.raises(ValueError, match="voxel size 0.05 m but the model was trained at 0.04 m"):
        predict_labels(net, s, SegmentationModelConfig(widths=(8, 12, 16), voxel_size=0.04))


def test_tta_views_and_their_exact_transforms():
    views = tta_views(8)
    assert len(views) == 8 and views[0][:2] == (0, False) and views[0][2].tolist() == [0, 0, 0]
    assert {(t, f) for t, f, _ in views} == {(t, f) for t in range(4) for f in (False, True)}
    for bad in (0, 9, 2.0, True):
        with pytest.raises(ValueError, match="tta must be an int in 1..8"):
            tta_views(bad)
    s = room(0)
    nrm = voxel_normals(s.coords)
    q, n = view_transform(s.coords, nrm, 0, False, np.zeros(3, np.int64))
    assert np.array_equal(q, s.coords) and np.array_equal(n, nrm)
    q, n = view_transform(s.coords, nrm, 1, True, np.array([3, 5, 7]))
    # a quarter turn (x, y) -> (-y, x), then x negated: (x, y, z) -> (y, x, z); lowest corner moved by the shift
    expect = s.coords[:, [1, 0, 2]].astype(np.int64)
    assert np.array_equal(q, expect - expect.min(0) + s.coords.min(0) + [3, 5, 7])
    np.testing.assert_allclose(n, nrm[:, [1, 0, 2]], atol=1e-6)
    assert len(np.unique(q, axis=0)) == len(q)


def test_predict_logits_averages_the_views():
    """tta=1 is the softmax of one forward pass on the scene as it is; tta=2 is its mean with the pass on the
    scene turned a quarter and shifted by (3, 5, 7), each voxel's probabilities brought back to it."""
    torch.manual_seed(0)
    cfg = SegmentationModelConfig(widths=(8, 12, 16), in_features=("color", "height", "normals"))
    net = SegmentationUNet(cfg).eval()
    s = room(2)
    f = sample_features(s, cfg)

    def probs(coords, feats):
        c = torch.cat([torch.zeros(len(coords), 1, dtype=torch.int32), torch.from_numpy(coords)], 1)
        with torch.no_grad():
            return torch.softmax(net(SparseTensor(c, feats)).feats, 1)

    p1 = probs(s.coords, f)
    torch.testing.assert_close(predict_logits(net, s, tta=1), p1)
    q, n = view_transform(s.coords, f[:, 4:7].numpy(), 1, False, np.array([3, 5, 7]))
    f2 = f.clone()
    f2[:, 4:7] = torch.from_numpy(n)
    p2 = probs(q, f2)
    assert not torch.allclose(p1, p2)
    got = predict_logits(net, s, tta=2)
    torch.testing.assert_close(got, (p1 + p2) / 2)
    np.testing.assert_array_equal(predict_labels(net, s, tta=2), got.argmax(1).numpy())


# ---- features ---------------------------------------------------------------------------------------

def test_sample_features_columns():
    s = room(0)
    f = sample_features(s, SegmentationModelConfig(in_features=("tsdf", "color", "normals", "height")))
    assert f.shape == (len(s), 8) and f.dtype == torch.float32
    np.testing.assert_allclose(f[:, :3].numpy(), s.color / 255.0 - 0.5, atol=1e-6)  # canonical order: color first
    np.testing.assert_allclose(f[:, 3].numpy(), s.coords[:, 2] * 0.05, atol=1e-6)  # height = world z
    np.testing.assert_allclose(f[:, 7].numpy(), np.clip(s.tsdf / 3, -1, 1), atol=1e-6)


def test_voxel_normals_of_planes():
    g = np.stack(np.meshgrid(np.arange(5), np.arange(5), indexing="ij"), -1).reshape(-1, 2)
    floor = np.concatenate([g, np.zeros((len(g), 1), int)], 1)
    np.testing.assert_allclose(voxel_normals(floor), np.tile([0, 0, 1], (len(g), 1)), atol=1e-6)
    wall = floor[:, [2, 0, 1]]  # the plane x = 0
    np.testing.assert_allclose(np.abs(voxel_normals(wall)), np.tile([1, 0, 0], (len(g), 1)), atol=1e-6)
    assert np.all(voxel_normals(np.array([[0, 0, 0], [1, 0, 0]])) == 0)  # too few neighbours: zero


# ---- loss and scores --------------------------------------------------------------------------------

def test_loss_ignores_label_255():
    torch.manual_seed(0)
    logits = torch.randn(6, 20, requires_grad=True)
    labels = torch.tensor([1, 255, 3, 255, 0, 19])
    loss = segmentation_loss(logits, labels)
    keep = labels != 255
    ref = torch.nn.functional.cross_entropy(logits[keep], labels[keep])
    torch.testing.assert_close(loss, ref)
    loss.backward()
    assert torch.all(logits.grad[~keep] == 0)
    empty = segmentation_loss(logits, torch.full((6,), 255))
    assert float(empty.detach()) == 0 and empty.requires_grad
    with pytest.raises(ValueError, match="labels must be in 0..19 or 255, got 20"):
        segmentation_loss(logits, torch.tensor([0, 1, 2, 3, 4, 20]))


def test_weighted_loss_is_the_weighted_mean():
    logits = torch.randn(4, 3)
    labels = torch.tensor([0, 1, 1, 255])
    w = torch.tensor([2.0, 0.5, 1.0])
    nll = -torch.log_softmax(logits, 1)[torch.arange(3), labels[:3]]
    ref = (w[labels[:3]] * nll).sum() / w[labels[:3]].sum()
    torch.testing.assert_close(segmentation_loss(logits, labels, w), ref)


def test_class_weights():
    counts = np.array([70, 20, 10, 0])
    f = counts / 100
    np.testing.assert_allclose(class_weights(counts, "median_freq"), [0.2 / 0.7, 1.0, 2.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(class_weights(counts, "inv_log")[:3], 1 / np.log(1.02 + f[:3]), rtol=1e-6)
    assert class_weights(counts, "inv_log")[3] == 0
    assert class_weights(counts, "none") is None
    with pytest.raises(ValueError, match="mode must be one of"):
        class_weights(counts, "balanced")
    assert label_counts([room(0)])[[0, 1, 4]].sum() == (room(0).labels != IGNORE).sum()


def test_voxel_confusion_and_miou_by_hand():
    pred = np.array([0, 0, 1, 1, 2, 5])
    gt = np.array([0, 1, 1, 1, 255, 2])
    conf = class_confusion(pred, gt)
    assert conf.sum() == 5 and conf[0, 0] == 1 and conf[1, 0] == 1 and conf[1, 1] == 2 and conf[2, 5] == 1
    sc = scores_from_confusion(conf)
    np.testing.assert_allclose(sc.iou[:3], [1 / 2, 2 / 3, 0.0])
    assert np.isnan(sc.iou[3:]).all()  # absent from the ground truth: not averaged (class 5 was predicted: FP only)
    assert sc.miou == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)
    assert sc.accuracy == pytest.approx(3 / 5)
    with pytest.raises(ValueError, match="pred must be class indices 0..19"):
        class_confusion(np.array([20]), np.array([0]))


# ---- augmentation -----------------------------------------------------------------------------------

def test_right_angle_augmentation_keeps_every_voxel_and_its_features():
    cfg = SegmentationTrainConfig(rotate="right", scale=[1, 1], color_jitter=0.0, translate=0,
                                  model=SegmentationModelConfig(in_features=("color", "normals")))
    s = room(0)
    f = sample_features(s, cfg.model).numpy()
    for seed in range(4):
        c, g, lab = augment(s.coords, f, s.labels, np.random.default_rng(seed), cfg)
        assert len(c) == len(s) and c.min() == 0
        assert np.unique(c, axis=0).shape[0] == len(c)
        # the same multiset of (label, colour): nothing lost, nothing mixed up
        key = lambda lab_, col: sorted(map(tuple, np.concatenate([lab_[:, None], np.round(col * 255)], 1)))
        assert key(lab, g[:, :3]) == key(s.labels, f[:, :3])
        np.testing.assert_allclose(np.linalg.norm(g[:, 3:], axis=1), np.linalg.norm(f[:, 3:], axis=1), atol=1e-5)
        assert np.all(c[:-1, 0] <= c[1:, 0])  # sorted by x first


def test_translation_moves_the_box_start_within_the_range():
    s = room(0)
    model = SegmentationModelConfig(in_features=("color",))
    f = sample_features(s, model).numpy()
    starts = []
    for seed in range(12):
        on = augment(s.coords, f, s.labels, np.random.default_rng(seed),
                     SegmentationTrainConfig(translate=8, model=model))
        off = augment(s.coords, f, s.labels, np.random.default_rng(seed),
                      SegmentationTrainConfig(translate=0, model=model))
        lo = on[0].min(0)
        assert np.all((lo >= 0) & (lo < 8)) and off[0].min() == 0
        np.testing.assert_array_equal(on[0] - lo, off[0])  # the same voxels, only moved
        np.testing.assert_array_equal(on[2], off[2])
        starts.append(tuple(lo))
    assert len(set(starts)) > 6  # the alignment varies from box to box
    with pytest.raises(ValueError, match="translate must be an int >= 0"):
        SegmentationTrainConfig(translate=-1)


def test_unet_is_equivariant_to_shifts_by_its_coarsest_stride():
    # 3 levels (strides 1, 2, 4): moving the input by 4 voxels moves every stride-2 grid with it, so the logits
    # are the same; by 1 voxel the grids fall elsewhere and the logits change (why training translates boxes)
    torch.manual_seed(0)
    net = SegmentationUNet(SegmentationModelConfig(in_features=("color",), widths=(8, 12, 16))).eval()
    s = room(0)
    f = sample_features(s, net.config)

    def logits(shift):
        c = torch.from_numpy(np.concatenate([np.zeros((len(s), 1), np.int32), s.coords + shift], 1))
        with torch.no_grad():
            return net(SparseTensor(c, f)).feats

    base = logits(0)
    torch.testing.assert_close(logits(4), base, rtol=0, atol=1e-6)
    assert (logits(1) - base).abs().max() > 1e-3


def test_any_angle_augmentation_requantizes_and_dedupes():
    cfg = SegmentationTrainConfig(rotate="any", scale=[0.8, 0.8], color_jitter=0.1,
                                  model=SegmentationModelConfig(in_features=("color",)))
    s = room(0)
    f = sample_features(s, cfg.model).numpy()
    c, g, lab = augment(s.coords, f, s.labels, np.random.default_rng(5), cfg)
    assert 0.4 * len(s) < len(c) < len(s)  # scaled down: cells merge
    assert np.unique(c, axis=0).shape[0] == len(c)
    a, b = augment(s.coords, f, s.labels, np.random.default_rng(5), cfg), (c, g, lab)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)  # seeded: the same draw twice


def test_random_box_stays_inside_and_whole_returns_sample():
    s = room(0)
    b = random_box(s, (8, 8, 16), np.random.default_rng(0))
    assert len(b) > 0 and np.all(b.coords >= 0) and np.all(b.coords < [8, 8, 16])
    scene = {tuple(c) for c in s.coords + s.crop_origin}
    assert all(tuple(c) in scene for c in b.coords + b.crop_origin)  # the same voxels, re-based
    assert random_box(s, (0, 0, 0), np.random.default_rng(0)) is s
    # class-balanced centres: the 27-voxel box (class 4) is in about a third of the draws (one of 3 classes)
    hits = [4 in random_box(s, (3, 3, 3), np.random.default_rng(k), "class").labels for k in range(60)]
    hits_any = [4 in random_box(s, (3, 3, 3), np.random.default_rng(k), "voxel").labels for k in range(60)]
    assert sum(hits) > 12 and sum(hits) > 2 * sum(hits_any)
    with pytest.raises(ValueError, match="centre must be 'voxel' or 'class', got 'middle'"):
        random_box(s, (8, 8, 16), np.random.default_rng(0), "middle")


# ---- configuration ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kw, msg", [
    ({"model": {"widths": []}}, "widths must be a non-empty list"),
    ({"model": {"in_features": ["colour"]}}, r"in_features must be .*got \['colour'\]"),
    ({"model": {"blocks": 0}}, "blocks must be an int >= 1, got 0"),
    ({"model": {"norm": "instance"}}, r"norm must be one of \['batch', 'sample'\], got 'instance'"),
    ({"model": {"depth": 3}}, r"unknown model keys \['depth'\]"),
    ({"box": [4, 4, 4]}, r"box must be 3 ints >= 8 .*got \[4, 4, 4\]"),
    ({"class_weighting": "balanced"}, "class_weighting must be one of"),
    ({"rotate": "yes"}, "rotate must be one of"),
    ({"box_centre": "middle"}, "box_centre must be one of"),
    ({"scale": [1.2, 0.9]}, "scale must be"),
    ({"steps": 0}, "steps must be an int >= 1, got 0"),
    ({"backend": "cuda"}, "backend must be one of"),
    ({"epochs": 3}, r"unknown config keys \['epochs'\]"),
])
def test_bad_config_values_are_named(kw, msg):
    with pytest.raises(ValueError, match=msg):
        load_config(None, kw)


def test_in_features_string_form_and_channels():
    cfg = SegmentationModelConfig(in_features="height+color+normals")
    assert cfg.in_features == ("color", "height", "normals") and cfg.in_channels == 7

"""3DMV networks: the 2D encoder-decoder, the joint network with lifted features (gradients reach the 2D net
only when it is trained end to end), configs, tiles."""
import numpy as np
import pytest
import torch

from sparse3d.tasks.segmentation.sample import SegSample
from sparse3d.tasks.threedmv.config import JointUNetConfig, ThreeDMVModelConfig, ThreeDMVTrainConfig, load_config
from sparse3d.tasks.threedmv.data import lift_features
from sparse3d.tasks.threedmv.frames import SceneFrames
from sparse3d.tasks.threedmv.model import ThreeDMVNet
from sparse3d.tasks.threedmv.net2d import Net2D, Net2DConfig, image_input, pixel_labels, pixel_loss
from sparse3d.tasks.threedmv.predict import tiles
from sparse3d.tensor import SparseTensor


def test_net2d_shapes_and_loss():
    torch.manual_seed(0)
    net = Net2D(Net2DConfig(widths=(4, 8, 8), feat_channels=6, num_classes=5))
    x = image_input(np.random.default_rng(0).integers(0, 256, (2, 16, 24, 3), dtype=np.uint8))
    assert x.shape == (2, 3, 16, 24) and float(x.min()) >= -0.5 and float(x.max()) <= 0.5
    logits, feats = net(x)
    assert logits.shape == (2, 5, 4, 6) and feats.shape == (2, 6, 4, 6)
    y = torch.full((2, 16, 24), 255, dtype=torch.int64)
    assert float(pixel_loss(logits, y).detach()) == 0.0  # nothing labelled
    y[0, :8] = 3
    loss = pixel_loss(logits, y)
    loss.backward()
    assert loss > 0 and net.enc1[0][0].weight.grad is not None
    assert pixel_labels(logits, (16, 24)).shape == (2, 16, 24)
    with pytest.raises(ValueError, match="multiples of 8"):
        net(torch.zeros(1, 3, 12, 16))


def _plane_scene():
    """Voxels of the plane x = 2 m (5 cm voxels, crop-local = scene lattice) and one camera at the origin
    looking along +x with its depth frame: every voxel centre is seen by the view."""
    vs = 0.05
    j, k = np.meshgrid(np.arange(-4, 4), np.arange(-3, 3), indexing="ij")
    coords = np.stack([np.full(j.size, 40), j.ravel(), k.ravel()], 1).astype(np.int32)
    v2w = np.diag([vs, vs, vs, 1.0])
    sample = SegSample("plane", coords, np.zeros((len(coords), 3), np.uint8), np.zeros(len(coords), np.float32),
                       np.zeros(len(coords), np.uint8), np.zeros(3, np.int32), np.array([48, 8, 6], np.int32), vs, v2w)
    pose = np.array([[0, 0, 1, 0], [-1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 0, 1.0]])  # camera z = world x
    H, W = 16, 24
    fr = SceneFrames("plane", np.zeros((1, H * 2, W * 2, 3), np.uint8), np.full((1, H, W), 2.0, np.float32),
                     np.array([[20.0, 20.0, (W - 1) / 2, (H - 1) / 2]]), pose[None], None, [0])
    return sample, fr


def test_lifted_features_reach_the_voxels_and_train_the_2d_net_end_to_end():
    torch.manual_seed(0)
    sample, fr = _plane_scene()
    cfg = ThreeDMVModelConfig(widths=(8, 8), widths2d=(4, 8, 8), feat2d_channels=6)
    images = torch.randn(1, 3, 32, 48)
    x = SparseTensor(torch.cat([torch.zeros(len(sample), 1, dtype=torch.int32), torch.from_numpy(sample.coords)], 1),
                     torch.randn(len(sample), cfg.geometry().in_channels))
    for fix in (True, False):
        net = ThreeDMVNet(cfg, fix_2d=fix)
        feats2d = net.features_2d(images)
        assert feats2d.shape == (1, 6, 8, 12)
        lifted, n_views = lift_features(feats2d, [(sample, fr, np.array([0]))])
        assert (n_views == 1).all()  # the plane is seen by the view
        assert float(lifted.detach().abs().sum()) > 0
        out = net(x, lifted)
        assert out.feats.shape == (len(sample), 20)
        out.feats.sum().backward()
        g = net.net2d.enc1[0][0].weight.grad
        assert (g is None) == fix, fix  # frozen: no gradient; end to end: the gradient crosses the lifting
        if not fix:
            assert float(g.abs().sum()) > 0
        assert net.unet.stem[0].weight.grad is not None
    net.train()
    assert not net.net2d.training  # the 2D BatchNorm keeps its pre-trained statistics


def test_model_input_checks():
    cfg = ThreeDMVModelConfig(widths=(8, 8), widths2d=(4, 8, 8), feat2d_channels=6)
    net = ThreeDMVNet(cfg)
    c = torch.tensor([[0, 0, 0, 0], [0, 1, 0, 0], [0, 2, 0, 0]], dtype=torch.int32)
    x = SparseTensor(c, torch.zeros(3, cfg.geometry().in_channels))
    with pytest.raises(ValueError, match="lifted must be"):
        net(x, None)
    with pytest.raises(ValueError, match="geometry channels"):
        net(SparseTensor(c, torch.zeros(3, 7)), torch.zeros(3, 6))
    geo = ThreeDMVNet(ThreeDMVModelConfig(widths=(8, 8), use_2d=False))
    assert geo.net2d is None
    with pytest.raises(ValueError, match="no 2D stream"):
        geo.features_2d(torch.zeros(1, 3, 8, 8))


def test_configs():
    assert JointUNetConfig(in_features=("height", "normals"), extra_channels=32).in_channels == 36
    assert ThreeDMVModelConfig(use_2d=False).unet().in_channels == 4
    with pytest.raises(ValueError, match="fix_2d needs a pre-trained 2D net"):
        ThreeDMVTrainConfig()
    cfg = load_config("configs/threedmv_default.yaml", {"net2d": "n.pt", "views": 5, "fix_2d": False})
    assert (cfg.views, cfg.fix_2d, cfg.model.in_features) == (5, False, ("height", "normals"))
    with pytest.raises(ValueError, match="views must be an int >= 1"):
        load_config(None, {"net2d": "n.pt", "views": 0})
    with pytest.raises(ValueError, match="unknown config keys"):
        load_config(None, {"net2d": "n.pt", "view": 3})


def test_tiles_partition_the_voxels():
    sample, _ = _plane_scene()
    sample = SegSample("t", np.array([[0, 0, 0], [5, 0, 1], [0, 9, 0], [31, 31, 3], [32, 0, 0]], np.int32),
                       *[np.zeros((5, 3), np.uint8), np.zeros(5, np.float32), np.zeros(5, np.uint8)],
                       np.zeros(3, np.int32), np.array([64, 64, 8], np.int32), 0.05, np.eye(4))
    parts = tiles(sample, (32, 8))
    assert sorted(np.concatenate(parts).tolist()) == list(range(5))
    assert [p.tolist() for p in parts] == [[0, 1], [2], [3], [4]]

"""sparse3d.utils.atomic_io and sparse3d.utils.mesh: atomic writes, the PLY writer, the loss plot."""
import os

import numpy as np
import pytest

from sparse3d.utils.atomic_io import (atomic_open, atomic_save_npz, atomic_savefig, atomic_torch_save,
                                      atomic_write_json)
from sparse3d.utils.mesh import sparse_tsdf_to_mesh, tsdf_to_mesh, write_ply


def test_atomic_open_replaces_on_success_and_cleans_up_on_error(tmp_path):
    p = tmp_path / "sub" / "a.txt"
    with atomic_open(p, "w") as f:
        f.write("one")
    assert p.read_text() == "one"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_open(p, "w") as f:
            f.write("two")
            raise RuntimeError("boom")
    assert p.read_text() == "one" and os.listdir(p.parent) == ["a.txt"]  # old content kept, no temp file
    with pytest.raises(ValueError, match="mode: expected 'wb' or 'w', got 'a'"):
        with atomic_open(p, "a"):
            pass


def test_npz_json_torch_and_figure_writers(tmp_path):
    import torch
    from matplotlib.figure import Figure
    atomic_save_npz(tmp_path / "x.npz", a=np.arange(3))
    with np.load(tmp_path / "x.npz") as z:
        assert z["a"].tolist() == [0, 1, 2]
    atomic_write_json(tmp_path / "m.json", {"b": 1, "a": [1.5]})
    assert (tmp_path / "m.json").read_text() == '{\n "b": 1,\n "a": [\n  1.5\n ]\n}\n'
    atomic_torch_save(tmp_path / "c.pt", {"w": torch.ones(2)})
    assert torch.equal(torch.load(tmp_path / "c.pt", weights_only=True)["w"], torch.ones(2))
    fig = Figure(figsize=(2, 1))
    fig.add_subplot().plot([0, 1])
    atomic_savefig(fig, tmp_path / "f.png", dpi=50)
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="image suffix"):
        atomic_savefig(fig, tmp_path / "noext")
    assert sorted(os.listdir(tmp_path)) == ["c.pt", "f.png", "m.json", "x.npz"]


def test_write_ply_round_trips_through_the_scannet_reader(tmp_path):
    from data_tools.scannet.ply import read_ply
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    f = np.array([[0, 1, 2]])
    write_ply(tmp_path / "plain.ply", v, f)
    m = read_ply(tmp_path / "plain.ply")
    assert np.array_equal(m.vertices, v) and m.faces.tolist() == [[0, 1, 2]] and m.colors is None
    write_ply(tmp_path / "lab.ply", v, f, colors=np.full((3, 3), 7, np.uint8), labels=np.array([1, 2, 40]))
    m = read_ply(tmp_path / "lab.ply")
    assert m.colors[:, :3].tolist() == [[7, 7, 7]] * 3 and m.colors[:, 3].tolist() == [255] * 3
    assert m.labels.tolist() == [1, 2, 40]
    with pytest.raises(ValueError, match=r"colors: expected \[3,3\] or \[3,4\], got \[2, 3\]"):
        write_ply(tmp_path / "bad.ply", v, f, colors=np.zeros((2, 3), np.uint8))


def test_dense_and_sparse_marching_cubes_agree_on_a_plane():
    """The zero level set of a plane z = 2.5 voxels: every vertex at z = 2.5 * voxel_size, for the dense
    extractor (with an origin) and the sparse one (from the voxel coordinates)."""
    g = np.indices((6, 6, 6)).transpose(1, 2, 3, 0)
    tsdf = (g[..., 2] - 2.5).astype(np.float32)
    v, f = tsdf_to_mesh(tsdf, np.ones(tsdf.shape, bool), 0.1, origin=np.array([0, 0, 10]))
    assert len(f) > 0 and np.allclose(v[:, 2], (2.5 + 10) * 0.1)
    coords = g.reshape(-1, 3)
    vs, fs = sparse_tsdf_to_mesh(coords, tsdf.reshape(-1), 0.1)
    assert len(fs) > 0 and np.allclose(vs[:, 2], 0.25)
    assert tsdf_to_mesh(np.ones((3, 3, 3), np.float32), np.ones((3, 3, 3), bool), 0.1)[1].shape == (0, 3)


def test_loss_plot_of_the_epoch_history(tmp_path):
    from PIL import Image
    from sparse3d.train.plots import plot_history
    hist = {"train": [{"g": 1.0, "d": 0.5}, {"g": 0.8, "d": 0.6}], "val": [2.0, 1.5]}
    plot_history(hist, str(tmp_path / "loss.png"), "title", "val L1")
    assert Image.open(tmp_path / "loss.png").size == (900, 320)  # two panels 4.5 x 3.2 inches at 100 dpi

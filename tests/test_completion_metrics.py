import os

import numpy as np
import pytest

from sparse3d.data.procedural import procedural_sample
from sparse3d.models.mesh import tsdf_to_mesh, write_ply
from sparse3d.train.metrics import chamfer, completion_metrics, iou, l1_known, sample_mesh
from sparse3d.train.predict import input_prediction

import pytest as _pytest
from _completion_fixtures import one_thread


@_pytest.fixture(autouse=True)
def _one_thread():
    yield from one_thread()


def test_iou_values():
    a = np.zeros((4, 4, 4), bool)
    b = np.zeros((4, 4, 4), bool)
    a[0, 0, :2] = True
    b[0, 0, 1:3] = True
    valid = np.ones_like(a)
    assert iou(a, b, valid) == pytest.approx(1 / 3)
    valid[0, 0, 2] = False  # unknown target space does not count
    assert iou(a, b, valid) == pytest.approx(1 / 2)
    with pytest.raises(ValueError, match="share one shape"):
        iou(a, b[:2], valid)


def test_l1_and_chamfer():
    t = np.full((3, 3, 3), 3.0)
    p = t.copy()
    t[1, 1, 1], p[1, 1, 1] = 0.5, 1.5
    assert l1_known(p, t, np.ones_like(t, bool), 3.0) == pytest.approx(1.0)
    a = np.array([[0.0, 0, 0], [1, 0, 0]])
    assert chamfer(a, a + [0, 0.1, 0]) == pytest.approx(0.1)


def test_target_scores_perfect_and_input_worse(tmp_path):
    s = procedural_sample(24, 2)
    perfect = completion_metrics(s.target_tsdf, s.target_known & (np.abs(s.target_tsdf) < 1), s.target_tsdf,
                                 s.target_known, s.trunc)
    assert perfect["iou"] == 1.0 and perfect["l1"] == 0.0
    base = input_prediction(s)
    m = completion_metrics(base.tsdf, base.occ, s.target_tsdf, s.target_known, s.trunc)
    assert 0.2 < m["iou"] < 1.0


def test_mesh_extraction_plane(tmp_path):
    z = np.arange(10)[None, None, :].repeat(10, 0).repeat(10, 1).astype(np.float32)
    tsdf = np.clip(z - 4.5, -3, 3)  # plane z = 4.5 voxels
    v, f = tsdf_to_mesh(tsdf, np.ones(tsdf.shape, bool), voxel_size=0.1)
    assert len(f) > 0 and np.allclose(v[:, 2], 0.45, atol=1e-5)
    pts = sample_mesh(v, f, 500)
    assert np.allclose(pts[:, 2], 0.45, atol=1e-5)
    write_ply(str(tmp_path / "plane.ply"), v, f)
    import open3d as o3d
    m = o3d.io.read_triangle_mesh(str(tmp_path / "plane.ply"))
    assert len(m.triangles) == len(f)


def test_reads_data_tools_crop_format(tmp_path):
    """A crop in data_tools' documented format (docs/dataset_format.md, sparse3d.crops v1) loads densely."""
    import json
    from sparse3d.data.completion_dataset import CompletionDataset
    size = (4, 4, 8)
    known = np.zeros(size, bool)
    known[:, :, :4] = True
    os.makedirs(tmp_path / "sc")
    np.savez_compressed(tmp_path / "sc" / "crop_0_0_0.npz", crop_size=np.array(size, np.int32),
                        crop_origin=np.array([8, 0, 0], np.int32), voxel_size=np.float32(0.04),
                        trunc_voxels=np.float32(3.0), input_coords=np.array([[1, 2, 3]], np.int32),
                        input_tsdf=np.array([0.5], np.float32), input_known=np.packbits(known.ravel()),
                        target_coords=np.array([[1, 2, 3], [1, 2, 4]], np.int32),
                        target_tsdf=np.array([0.5, -0.5], np.float32), target_known=np.packbits(known.ravel()))
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "sparse3d.crops", "version": 1,
                                                        "splits": {"train": ["sc/crop_0_0_0.npz"]}}))
    s = CompletionDataset(str(tmp_path))[0]
    assert s.shape == size and s.input_tsdf[1, 2, 3] == 0.5 and s.target_tsdf[1, 2, 4] == -0.5
    assert s.target_tsdf[0, 0, 0] == 3.0 and s.target_tsdf[0, 0, 6] == 0.0  # known free space / unknown
    assert s.input_known.sum() == known.sum() and list(s.origin) == [8, 0, 0]

import os

import numpy as np
import pytest

from sparse3d.tasks.completion.metrics import chamfer, completion_metrics, iou, l1_known, sample_mesh
from sparse3d.tasks.completion.predict import input_prediction
from sparse3d.tasks.completion.procedural import procedural_sample
from sparse3d.utils.mesh import tsdf_to_mesh, write_ply

import pytest as _pytest

pytestmark = _pytest.mark.usefixtures("one_thread")  # tests/conftest.py


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
    from sparse3d.tasks.completion.dataset import CompletionDataset
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


# ---- prediction: occ_thresh, sample/model checks, non-finite metrics ---------------------------------

def _small_net(**kw):
    from sparse3d.tasks.completion.model import CompletionConfig, CompletionNet
    import torch
    torch.manual_seed(0)
    return CompletionNet(CompletionConfig(channels=(4, 8, 8), grow_steps=1, **kw))


def test_meshes_use_the_callers_occ_thresh():
    from sparse3d.tasks.completion.predict import evaluate_sample, meshes, occupancy_mesh
    s = procedural_sample(16, 1)
    pred = input_prediction(s)
    for t in (0.5, 1.0):
        want = occupancy_mesh(input_prediction(s, t).occ, s.voxel_size, s.origin)
        np.testing.assert_array_equal(meshes(s, pred, occ_thresh=t)["input"][1], want[1])
    assert len(meshes(s, pred, 0.5)["input"][1]) < len(meshes(s, pred, 1.0)["input"][1])
    _, _, ms = evaluate_sample(_small_net(), s, occ_thresh=0.5)
    np.testing.assert_array_equal(ms["input"][1], meshes(s, pred, 0.5)["input"][1])


def test_sample_must_match_the_models_trunc_and_voxel_size():
    from sparse3d.tasks.completion.predict import evaluate_sample, predict_sample
    with pytest.raises(ValueError, match=r"sample trunc \(2\.0 voxels\) differs from the model's trunc \(3\.0 voxels\)"):
        evaluate_sample(_small_net(), procedural_sample(16, 0, trunc=2.0))
    s = procedural_sample(16, 0)  # voxel_size 0.05
    with pytest.raises(ValueError, match=r"sample voxel_size \(0\.05 m\) differs from the model's training "
                                         r"voxel_size \(0\.04 m\)"):
        predict_sample(_small_net(voxel_size=0.04), s)
    assert predict_sample(_small_net(voxel_size=0.05), s).tsdf.shape == (16, 16, 16)
    assert predict_sample(_small_net(), s).tsdf.shape == (16, 16, 16)  # voxel size not recorded: not checked


def test_empty_mesh_chamfer_is_null_in_json_and_na_in_table(tmp_path):
    import json
    from sparse3d.tasks.completion.predict import format_table, write_json
    assert chamfer(np.zeros((0, 3)), np.zeros((4, 3))) == float("inf")
    rows = {"a": {"input": {"iou": 0.5, "l1": 1.0, "chamfer_m": 0.2}, "prediction": {"iou": 0.25, "l1": 2.0,
                                                                                  "chamfer_m": 0.1}},
            "b": {"input": {"iou": 0.7, "l1": 3.0, "chamfer_m": 0.4},
                  "prediction": {"iou": 0.0, "l1": 1.0, "chamfer_m": float("inf")}}}
    p = str(tmp_path / "m.json")
    write_json(p, {"scenes": rows, "steps": 3})
    text = open(p).read()
    assert "Infinity" not in text and "NaN" not in text
    got = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert got["scenes"]["b"]["prediction"]["chamfer_m"] is None and got["scenes"]["a"]["prediction"]["chamfer_m"] == 0.1
    lines = format_table(rows).splitlines()
    assert lines[2].split() == ["b", "0.700", "0.000", "3.000", "1.000", "0.4000", "n/a"]
    assert lines[3].split() == ["mean", "0.600", "0.125", "2.000", "1.500", "0.3000", "0.1000"]
    assert lines[4] == "(the mean skips scenes where a value is n/a: CD pred 1 of 2)"


def test_keep_observed_keeps_measurements_and_fills_only_unobserved_space():
    from sparse3d.tasks.completion.predict import predict_sample
    s = procedural_sample(16, 3)
    net = _small_net()
    raw = predict_sample(net, s, keep_observed=False)
    kept = predict_sample(net, s)  # default: keep observed
    seen = s.input_known
    assert seen.any() and (~seen).any()
    np.testing.assert_array_equal(kept.tsdf[seen], s.input_tsdf[seen])
    np.testing.assert_array_equal(kept.occ[seen], np.abs(s.input_tsdf[seen]) < 1.0)
    np.testing.assert_array_equal(kept.tsdf[~seen], raw.tsdf[~seen])
    np.testing.assert_array_equal(kept.occ[~seen], raw.occ[~seen])
    np.testing.assert_array_equal(kept.coords, np.argwhere(kept.occ))  # the sparse grid is the kept surface
    np.testing.assert_array_equal(kept.surface_tsdf, kept.tsdf[kept.occ])


def test_tsdf_to_mesh_is_empty_when_every_crossing_touches_an_unobserved_voxel():
    """Observed voxels of both signs, but the only fully observed cube has no sign change (the negative voxel
    is isolated among unobserved ones): skimage's marching cubes raised "No surface found" (`sparse3d eval
    completion` died on such crops); now an empty mesh."""
    tsdf = np.ones((4, 4, 4), np.float32)
    tsdf[3, 3, 3] = -1.0
    mask = np.zeros(tsdf.shape, bool)
    mask[:2, :2, :2] = True  # one fully observed cube, all positive
    mask[3, 3, 3] = True
    v, f = tsdf_to_mesh(tsdf, mask, voxel_size=0.1)
    assert v.shape == (0, 3) and f.shape == (0, 3)
    tsdf[3, 3, 3] = 1.0
    tsdf[:, :, :2] = -1.0  # every cube between z = 1 and 2 now crosses the plane z = 1.5 (voxel units)
    mask[:] = True
    v, f = tsdf_to_mesh(tsdf, mask, voxel_size=0.1)
    assert len(f) > 0 and np.allclose(v[:, 2], 0.15, atol=1e-6)

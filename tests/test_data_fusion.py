"""TSDF fusion (native kernel) against an analytic plane and against Open3D on real 7-Scenes frames."""
import numpy as np
import pytest

from _data_helpers import native_or_skip, shared_path


def _plane_frame(z=1.0, w=40, h=30):
    K = np.array([[30.0, 0, (w - 1) / 2], [0, 30.0, (h - 1) / 2], [0, 0, 1]])
    return np.full((h, w), z, np.float32), K


def test_plane_tsdf_is_analytic():
    native_or_skip()
    from data_tools.fusion import TSDFFusion
    depth, K = _plane_frame(1.0)
    fu = TSDFFusion(0.05, trunc_voxels=3.0, depth_max=3.0)
    color = np.full(depth.shape + (3,), 200, np.uint8)
    fu.integrate(depth, color, K, np.eye(4))
    fu.integrate(depth, color, K, np.eye(4))
    g = fu.extract()
    z = g.coords[:, 2] * 0.05
    expect = np.clip((1.0 - z) / 0.05, -np.inf, 3.0)  # projective sdf in voxels, truncated at +3
    np.testing.assert_allclose(g.tsdf, expect, atol=1e-4)
    assert (g.tsdf >= -3.0 - 1e-5).all() and (g.weight == 2).all() and (g.color == 200).all()
    assert z.max() <= 1.0 + 0.15 + 1e-6  # nothing integrated more than trunc behind the surface
    band = fu.extract(band_only=True)
    assert (np.abs(band.tsdf) < 3.0).all() and len(band) < len(g)


def test_marching_cubes_on_plane():
    native_or_skip()
    from data_tools.fusion import TSDFFusion, marching_cubes
    depth, K = _plane_frame(1.02)
    fu = TSDFFusion(0.05, trunc_voxels=3.0)
    fu.integrate(depth, None, K, np.eye(4))
    g = fu.extract()
    v, f = marching_cubes(g.coords, g.tsdf, 0.05, g.weight)
    assert len(f) > 0
    np.testing.assert_allclose(v[:, 2], 1.02, atol=1e-5)


def test_mask_convention_of_marching_cubes():
    # unobserved corners (weight 0) must produce no triangles: only the observed half is meshed
    from data_tools.fusion import marching_cubes
    c = np.argwhere(np.ones((6, 6, 6), bool)).astype(np.int32)
    t = np.where(c[:, 2] <= 2, -1.0, 1.0).astype(np.float32)
    w = np.where(c[:, 0] <= 2, 1.0, 0.0).astype(np.float32)
    v, f = marching_cubes(c, t, 1.0, w)
    assert len(f) > 0 and v[:, 0].max() <= 2.0 + 1e-6 and v[:, 0].min() >= 0.0
    np.testing.assert_allclose(v[:, 2], 2.5)


def test_bad_inputs_raise():
    native_or_skip()
    from data_tools.fusion import TSDFFusion
    with pytest.raises(ValueError, match="voxel_size"):
        TSDFFusion(0.0)
    fu = TSDFFusion(0.05)
    depth, K = _plane_frame()
    with pytest.raises(ValueError, match="camera_to_world: expected finite"):
        fu.integrate(depth, None, K, np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match=r"color: expected uint8"):
        fu.integrate(depth, np.zeros((3, 3, 3), np.uint8), K, np.eye(4))
    with pytest.raises(RuntimeError, match="intrinsic: expected positive focal"):
        fu.integrate(depth, None, np.zeros((3, 3)), np.eye(4))


def _fuse_both(frames, K, vs, tv, depth_max):
    import open3d as o3d
    import open3d.core as o3c
    from data_tools.fusion import TSDFFusion
    fu = TSDFFusion(vs, tv, depth_max=depth_max)
    vbg = o3d.t.geometry.VoxelBlockGrid(attr_names=("tsdf", "weight", "color"),
                                        attr_dtypes=(o3c.float32, o3c.float32, o3c.float32),
                                        attr_channels=((1), (1), (3)), voxel_size=vs, block_resolution=8,
                                        block_count=20000, device=o3c.Device("CPU:0"))
    Kt = o3c.Tensor(K)
    for d, c, p in frames:
        fu.integrate(d, c, K, p)
        di = o3d.t.geometry.Image(o3c.Tensor(d))
        ci = o3d.t.geometry.Image(o3c.Tensor(c.astype(np.float32) / 255.0))
        ext = o3c.Tensor(np.linalg.inv(p))
        bc = vbg.compute_unique_block_coordinates(di, Kt, ext, 1.0, depth_max, tv)
        vbg.integrate(bc, di, ci, Kt, Kt, ext, 1.0, depth_max, tv)
    return fu.extract(), vbg


def test_agrees_with_open3d_on_7scenes():
    native_or_skip()
    from scipy.spatial import cKDTree
    from data_tools.fusion import marching_cubes
    from data_tools.scannet import RGBDFolder
    fr = RGBDFolder(shared_path("rgbd", "7scenes-sample"))
    vs, tv = 0.04, 4.0
    frames = [fr.frame(k) for k in range(0, 100, 10)]
    g, vbg = _fuse_both(frames, fr.intrinsic, vs, tv, 4.0)
    fi_coords, fi = vbg.voxel_coordinates_and_flattened_indices()
    fi = fi.numpy()
    oc = np.round(fi_coords.numpy() / vs).astype(np.int64)
    ot = vbg.attribute("tsdf").numpy().reshape(-1)[fi]
    ow = vbg.attribute("weight").numpy().reshape(-1)[fi]
    ocol = vbg.attribute("color").numpy().reshape(-1, 3)[fi]
    m = ow > 0
    oc, ot, ow, ocol = oc[m], ot[m], ow[m], ocol[m]
    key = lambda c: ((c[:, 0].astype(np.int64) + 4096) << 26) | ((c[:, 1] + 4096) << 13) | (c[:, 2] + 4096)  # noqa
    common, ia, ib = np.intersect1d(key(g.coords), key(oc), return_indices=True)
    assert len(common) >= 0.99 * len(oc) and len(common) >= 0.99 * len(g)
    same = g.weight[ia] == ow[ib]
    assert same.mean() > 0.99
    dt = np.abs(g.tsdf[ia] / tv - ot[ib])[same]  # Open3D stores tsdf / sdf_trunc
    assert np.median(dt) < 2e-3 and np.quantile(dt, 0.99) < 0.02
    dc = np.abs(g.color[ia].astype(np.float32) - ocol[ib])[same]
    assert np.quantile(dc, 0.99) <= 1.0  # ours is rounded to uint8
    # meshes: ours (scikit-image marching cubes) vs Open3D's extract_triangle_mesh, chamfer in voxels
    v, f = marching_cubes(g.coords, g.tsdf, vs, g.weight)
    ov = vbg.extract_triangle_mesh(weight_threshold=0.0).vertex.positions.numpy()
    d1 = cKDTree(ov).query(v)[0] / vs
    d2 = cKDTree(v).query(ov)[0] / vs
    assert d1.mean() < 0.1 and d2.mean() < 0.1, (d1.mean(), d2.mean())
    assert np.quantile(d1, 0.95) < 0.25 and np.quantile(d2, 0.95) < 0.25


def test_fuse_frames_helper_and_sparse_tensor_bridge():
    native_or_skip()
    from data_tools.fusion import fuse_frames
    from data_tools.scannet import RGBDFolder
    fr = RGBDFolder(shared_path("rgbd", "7scenes-sample"))
    errors = []

    class Broken:
        intrinsic = fr.intrinsic

        def __len__(self):
            return 3

        def frame(self, k, with_color=True):
            if k == 1:
                raise ValueError("frame-000010.depth.png: cannot decode image")
            return fr.frame(k, with_color)

    g = fuse_frames(Broken(), voxel_size=0.08, on_error=lambda k, e: errors.append((k, str(e))))
    assert len(g) > 1000 and errors == [(1, "frame-000010.depth.png: cannot decode image")]
    try:
        import sparse3d
        has_tensor = hasattr(sparse3d, "SparseTensor")
    except ImportError:
        has_tensor = False
    if not has_tensor:
        pytest.skip("sparse3d.SparseTensor not in this build yet")
    st = g.to_sparse_tensor()
    assert tuple(st.coords.shape) == (len(g), 4) and tuple(st.feats.shape) == (len(g), 5)
    np.testing.assert_array_equal(st.coords[:, 1:].numpy(), g.coords)

"""The octree structure (sparse3d/octree, csrc/octree): node sets per depth against a brute-force numpy
reference, shuffled keys, the full-octree convention, features per depth, batching, neighbour tables,
SparseTensor round trips and argument errors."""
from pathlib import Path

import numpy as np
import pytest
import torch

from sparse3d.octree import Octree
from sparse3d.kernel import kernel_offsets
from sparse3d.tensor import SparseTensor

MESHES = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "meshes"


def _morton(x, y, z, depth):
    key = np.zeros_like(x, dtype=np.int64)
    for i in range(depth):
        key |= ((x >> i) & 1) << (3 * i + 2) | ((y >> i) & 1) << (3 * i + 1) | ((z >> i) & 1) << (3 * i)
    return key


def _reference(cells, depth, full_depth, batch_size):
    """Brute force: per depth, the sorted (b, x, y, z) of every node and whether it is non-empty."""
    cells = np.asarray(cells, dtype=np.int64)
    levels = []
    for d in range(depth + 1):
        ne = {tuple(r) for r in np.concatenate([cells[:, :1], cells[:, 1:] >> (depth - d)], 1).tolist()}
        if d < full_depth:
            ne = None  # every node is non-empty above the full depth
        if d <= full_depth:
            g = np.arange(1 << d)
            b, x, y, z = np.meshgrid(np.arange(batch_size), g, g, g, indexing="ij")
            nodes = np.stack([b, x, y, z], -1).reshape(-1, 4)
        else:
            parents = [p for p, flag in zip(levels[-1][0].tolist(), levels[-1][1]) if flag]
            nodes = np.array([[p[0], 2 * p[1] + (c >> 2 & 1), 2 * p[2] + (c >> 1 & 1), 2 * p[3] + (c & 1)]
                              for p in parents for c in range(8)], dtype=np.int64).reshape(-1, 4)
        keys = (nodes[:, 0] << 48) | _morton(nodes[:, 1], nodes[:, 2], nodes[:, 3], d)
        order = np.argsort(keys, kind="stable")
        nodes, keys = nodes[order], keys[order]
        flags = [True] * len(nodes) if ne is None else [tuple(r) in ne for r in nodes.tolist()]
        levels.append((nodes, flags, keys))
    return levels


def _random_points(n, seed, lo=-0.95, hi=0.95):
    g = torch.Generator().manual_seed(seed)
    # points on a sphere-ish shell: a surface, as octrees are meant for
    v = torch.randn(n, 3, generator=g, dtype=torch.float64)
    v = v / v.norm(dim=1, keepdim=True) * 0.8
    return v.clamp(lo, hi)


# the build finds the distinct leaves through a bitmap up to batch_size * 8^depth = 2^27 (depth 9 here) and by
# sorting above (depth 10): both against the reference
@pytest.mark.parametrize("depth,full_depth", [(4, 2), (5, 0), (3, 3), (6, 2), (9, 2), (10, 2)])
def test_nodes_per_depth_match_brute_force(depth, full_depth):
    pts = _random_points(300, depth)
    octree, leaf = Octree.from_points(pts, depth, full_depth=full_depth)
    cells = np.floor((pts.numpy() + 1) / 2 * (1 << depth)).astype(np.int64)
    ref = _reference(np.concatenate([np.zeros((len(cells), 1), np.int64), cells], 1), depth, full_depth, 1)
    for d, (nodes, flags, keys) in enumerate(ref):
        assert octree.num_nodes(d) == len(nodes), d
        assert torch.equal(octree.coords[d], torch.as_tensor(nodes, dtype=torch.int32)), d
        assert torch.equal(octree.keys[d], torch.as_tensor(keys)), d
        assert octree.nonempty_mask(d).tolist() == flags, d
        ch = octree.children[d]
        assert torch.equal(ch[ch >= 0], torch.arange(int((ch >= 0).sum()), dtype=torch.int32))
        if d > 0:  # the full-octree convention
            assert octree.num_nodes(d) == 8 * octree.num_nodes(d - 1, nempty=True)
            parent = octree.coords[d - 1][octree.parent_rows(d)]
            assert torch.equal(parent[:, 1:], octree.coords[d][:, 1:] // 2)
    # each point's leaf holds it
    assert torch.equal(octree.coords[depth][leaf][:, 1:], torch.as_tensor(cells, dtype=torch.int32))


def test_features_per_depth_are_means_of_points():
    pts = _random_points(400, 1)
    g = torch.Generator().manual_seed(2)
    normals = torch.randn(400, 3, generator=g)
    feats = torch.rand(400, 2, generator=g)
    octree, leaf = Octree.from_points(pts, 4, features=feats, normals=normals)
    both = torch.cat([normals, feats], 1)
    cells = torch.floor((pts + 1) / 2 * 16).long()
    for d in range(5):
        c = cells >> (4 - d)
        for row in [0, octree.num_nodes(d) // 2, octree.num_nodes(d) - 1]:
            inside = (c == octree.coords[d][row, 1:].long()).all(1)
            assert int(octree.counts[d][row]) == int(inside.sum())
            want = both[inside].mean(0) if inside.any() else torch.zeros(5)
            torch.testing.assert_close(octree.features[d][row], want)
    assert int(octree.counts[0].sum()) == 400


def test_batching_merge_equals_batched_build():
    a, b = _random_points(200, 3), _random_points(150, 4) * 0.5
    fa, fb = torch.rand(200, 2), torch.rand(150, 2)
    oa, _ = Octree.from_points(a, 5, features=fa)
    ob, _ = Octree.from_points(b, 5, features=fb)
    merged = Octree.merge([oa, ob])
    batch = torch.cat([torch.zeros(200, dtype=torch.long), torch.ones(150, dtype=torch.long)])
    direct, _ = Octree.from_points(torch.cat([a, b]), 5, features=torch.cat([fa, fb]), batch=batch)
    assert merged.batch_size == direct.batch_size == 2
    for d in range(6):
        assert torch.equal(merged.keys[d], direct.keys[d])
        assert torch.equal(merged.children[d], direct.children[d])
        assert torch.equal(merged.coords[d], direct.coords[d])
        torch.testing.assert_close(merged.features[d], direct.features[d])
        assert torch.equal(merged.keys[d] >> 48, merged.coords[d][:, 0].long())
    # batch_size * 8^depth above 2^27: the sorted path, equal to the bitmap path of each item alone
    for depth in (8, 9):
        o = [Octree.from_points(p, depth, features=f)[0] for p, f in ((a, fa), (b, fb))]
        big, leaf = Octree.from_points(torch.cat([a, b]), depth, features=torch.cat([fa, fb]), batch=batch)
        merged = Octree.merge(o)
        for d in range(depth + 1):
            assert torch.equal(merged.keys[d], big.keys[d]) and torch.equal(merged.children[d], big.children[d])
        assert torch.equal(big.coords[depth][leaf][:, 0], batch.int())
    # an empty batch item still has its full layers
    e, _ = Octree.from_points(a, 4, batch=torch.full((200,), 2), batch_size=3)
    assert e.num_nodes(2) == 3 * 64 and e.num_nodes(2, nempty=True) == Octree.from_points(a, 4)[0].num_nodes(2, True)


@pytest.mark.parametrize("depth", [0, 1, 3, 5])
def test_neighbor_tables_match_coordinate_lookup(depth):
    octree, _ = Octree.merge([Octree.from_points(_random_points(300, 5), 5, full_depth=1)[0],
                              Octree.from_points(_random_points(100, 6) * 0.3, 5, full_depth=1)[0]]), None
    for nempty in (False, True):
        c = octree.coords[depth]
        if nempty:
            c = c[octree.nonempty_rows(depth)]
        index = {tuple(r): i for i, r in enumerate(c.tolist())}
        off = kernel_offsets(3).tolist()
        want = [[index.get((r[0], r[1] + o[0], r[2] + o[1], r[3] + o[2]), -1) for o in off] for r in c.tolist()]
        assert octree.neighbors(depth, nempty).tolist() == want
    if depth >= 1:  # the stride-2 tables: children, and the 3x3x3 neighbourhood of the first child
        fine = {tuple(r): i for i, r in enumerate(octree.coords[depth].tolist())}
        for k, offs in ((2, kernel_offsets(2).tolist()), (3, kernel_offsets(3).tolist())):
            want = [[fine.get((r[0], 2 * r[1] + o[0], 2 * r[2] + o[1], 2 * r[3] + o[2]), -1) for o in offs]
                    for r in octree.coords[depth - 1].tolist()]
            assert octree.kernel_map(depth, k, 2).nbr_out.tolist() == want


def test_sparse_round_trip():
    g = torch.Generator().manual_seed(0)
    coords = torch.unique(torch.randint(0, 32, (500, 3), generator=g), dim=0)
    coords = torch.cat([torch.zeros(len(coords), 1, dtype=torch.long), coords], 1).int()
    x = SparseTensor(coords, torch.rand(len(coords), 4, generator=g, dtype=torch.float64), stride=2)
    octree, rows = Octree.from_sparse(x, 5)
    assert octree.leaf_stride == 2 and octree.stride(5) == 2 and octree.stride(3) == 8
    assert torch.equal(octree.coords[5][rows], x.coords)
    assert torch.equal(octree.features[5][rows], x.feats)
    back = octree.to_sparse(5, nempty=True)
    assert back.stride == 2 and len(back) == len(x)
    order = torch.argsort(octree.nonempty_rows(5))
    pos = torch.searchsorted(octree.nonempty_rows(5)[order], rows)
    assert torch.equal(back.coords[order[pos]], x.coords) and torch.equal(back.feats[order[pos]], x.feats)
    # a coarser depth: the voxels of x divided by 2^(5 - d), at the matching stride
    y = octree.to_sparse(3, nempty=True)
    assert y.stride == 8
    assert set(map(tuple, y.coords.tolist())) == set(map(tuple, torch.cat([x.coords[:, :1], x.coords[:, 1:] // 4],
                                                                          1).tolist()))
    # ... and back: the octree of a coarse depth holds the same nodes
    o3, _ = Octree.from_sparse(y, 3)
    assert torch.equal(o3.keys[3][o3.nonempty_mask(3)], octree.keys[3][octree.nonempty_mask(3)])


@pytest.mark.skipif(not (MESHES / "bunny.ply").exists(), reason="../shared/data/meshes is absent")
def test_from_mesh_samples_the_surface():
    import trimesh

    mesh = trimesh.load(MESHES / "bunny.ply", process=False)
    octree = Octree.from_mesh(mesh, 6, num_points=20000, seed=3)
    pts, face = trimesh.sample.sample_surface(mesh, 20000, seed=3)
    assert octree.features[6].shape[1] == 3 and int(octree.counts[6].sum()) == 20000
    # the leaves' mean normals are the face normals of their samples, averaged: unit length where one face
    ne = octree.nonempty_mask(6)
    assert float(octree.features[6][ne].norm(dim=1).max()) <= 1.0 + 1e-5
    # a surface: occupied leaves grow ~4x per depth, not 8x
    ratio = octree.num_nodes(6, True) / octree.num_nodes(5, True)
    assert 3.0 < ratio < 5.0


def test_errors_name_the_argument():
    pts = _random_points(10, 0)
    with pytest.raises(ValueError, match="depth must be in"):
        Octree.from_points(pts, 16)
    with pytest.raises(ValueError, match="depth must be in"):
        Octree.from_points(pts, 0)
    with pytest.raises(ValueError, match="full_depth must be in"):
        Octree.from_points(pts, 3, full_depth=4)
    bad = pts.clone()
    bad[7] = torch.tensor([0.0, 1.5, 0.0], dtype=bad.dtype)
    with pytest.raises(ValueError, match=r"points must lie inside the cube .*points\[7\]"):
        Octree.from_points(bad, 3)
    bad[7, 1] = float("nan")
    with pytest.raises(ValueError, match=r"points must be finite, got points\[7\]"):
        Octree.from_points(bad, 3)
    with pytest.raises(ValueError, match=r"points must have shape \[P, 3\]"):
        Octree.from_points(pts[:, :2], 3)
    with pytest.raises(TypeError, match="points must be float32 or float64"):
        Octree.from_points(pts.int(), 3)
    with pytest.raises(ValueError, match="normals must have shape"):
        Octree.from_points(pts, 3, normals=torch.zeros(10, 2))
    with pytest.raises(ValueError, match="size .* must be a finite number > 0"):
        Octree.from_points(pts, 3, size=-1.0)
    cells = torch.zeros(4, 4, dtype=torch.int32)
    cells[2, 3] = 8
    with pytest.raises(ValueError, match=r"cells\[:, 1:4\] .* must be in \[0, 2\^depth=8\), got cells\[2\]"):
        Octree.from_cells(cells, 3)
    cells[2, 3] = 0
    cells[1, 0] = 5
    with pytest.raises(ValueError, match=r"cells\[:, 0\] \(batch index\) must be in \[0, batch_size=2\)"):
        Octree.from_cells(cells, 3, batch_size=2)
    with pytest.raises(TypeError, match="cells must be Int"):
        Octree.from_cells(cells.long(), 3)
    octree, _ = Octree.from_points(pts, 3)
    with pytest.raises(ValueError, match="depth must be in"):
        octree.to_sparse(4)
    with pytest.raises(ValueError, match=r"feats must have shape \[N="):
        octree.to_sparse(3, torch.zeros(3, 1))
    x = SparseTensor(torch.tensor([[0, 0, 0, 9]], dtype=torch.int32), torch.ones(1, 1))
    with pytest.raises(ValueError, match=r"x.coords\[:, 1:4\] must be in \[0, 2\^depth=8\)"):
        Octree.from_sparse(x, 3)
    with pytest.raises(dataclasses_error()):
        octree.depth = 4  # frozen


def dataclasses_error():
    import dataclasses

    return dataclasses.FrozenInstanceError


def test_neighbors_kernel_rejects_inconsistent_tables():
    from sparse3d.octree.structure import octree_ext

    nbr = torch.full((2, 27), -1, dtype=torch.int32)
    with pytest.raises(ValueError, match="children_parent .* must hold values in"):
        octree_ext().neighbors(nbr, torch.tensor([0, 1], dtype=torch.int32), torch.zeros(1, dtype=torch.int32),
                               torch.zeros(1, dtype=torch.int32), 8)
    with pytest.raises(ValueError, match="child_pos must hold values in"):
        octree_ext().neighbors(nbr, torch.tensor([0, -1], dtype=torch.int32), torch.zeros(1, dtype=torch.int32),
                               torch.full((1,), 8, dtype=torch.int32), 8)


def test_draw_octants_per_depth(tmp_path):
    pytest.importorskip("matplotlib")
    from sparse3d.octree.draw import draw_octree, octant_counts

    octree = Octree.merge([Octree.from_points(_random_points(300, 8), 4)[0],
                           Octree.from_points(_random_points(50, 9) * 0.2, 4)[0]])
    path = tmp_path / "octree.png"
    drawn = draw_octree(octree, path, depths=[2, 3, 4], batch=1, width=600, height=200)
    assert drawn == {d: octant_counts(octree, 1)[d] for d in (2, 3, 4)}
    assert drawn[4] == int((octree.coords[4][:, 0] == 1).logical_and(octree.nonempty_mask(4)).sum())
    from PIL import Image

    img = Image.open(path)
    assert img.size == (600, 200) and len(np.unique(np.asarray(img.convert("L")))) > 2  # something was drawn
    with pytest.raises(ValueError, match="depths"):
        draw_octree(octree, path, depths=[5])


def test_float32_points_fall_into_the_cells_ocnn_computes():
    """Cells are computed in the points' dtype, (p - origin) * (2^depth / size), as O-CNN does: on float32
    coordinates where that differs from the exact (float64) floor, the float32 cell wins."""
    depth = 7
    # just below a cell boundary k/64 - 1: exact cell k - 1, but float32 (p + 1) rounds up to k/64 -> cell k
    t = torch.arange(65, 96, 3, dtype=torch.float32) / 64.0 - 1.0  # in (0, 0.5): p + 1 has the coarser ulp
    differ = torch.nextafter(t, torch.full_like(t, -2.0))
    f32 = ((differ + 1.0) * ((1 << depth) / 2.0)).long()
    f64 = torch.floor((differ.double() + 1.0) * ((1 << depth) / 2.0)).long()
    assert bool((f32 == f64 + 1).all())  # the case the test is about
    pts = torch.stack([differ, differ.flip(0), torch.zeros_like(differ)], 1)
    octree, leaf = Octree.from_points(pts, depth)
    want = ((pts + 1.0) * ((1 << depth) / 2.0)).long()  # float32 arithmetic, truncation (>= 0)
    assert torch.equal(octree.coords[depth][leaf][:, 1:].long(), want)


def test_cli_view_octree_draws_the_depths(tmp_path, capsys):
    import trimesh
    from PIL import Image

    from sparse3d.cli import main
    mesh = str(tmp_path / "box.ply")
    trimesh.creation.box(extents=(1.0, 0.6, 0.4)).export(mesh)
    png = str(tmp_path / "o.png")
    assert main(["view", "octree", mesh, "--depth", "4", "--depths", "2", "4", "--points", "3000", "--png", png,
                 "--width", "400", "--height", "200"]) == 0
    out = capsys.readouterr().out
    assert "depth 2:" in out and "depth 4:" in out and "wrote" in out
    assert Image.open(png).size == (400, 200)
    with pytest.raises(SystemExit, match="MESH: no file"):
        main(["view", "octree", str(tmp_path / "missing.ply"), "--png", png])
    with pytest.raises(SystemExit, match="depths"):
        main(["view", "octree", mesh, "--depth", "3", "--depths", "5", "--png", png])


def test_to_device_moves_every_table():
    cells = torch.tensor([[0, 1, 2, 3], [0, 7, 7, 7], [1, 0, 0, 0]], dtype=torch.int32)
    octree, _ = Octree.from_cells(cells, 3, batch_size=2)
    assert octree.to("cpu") is octree and octree.to(torch.device("cpu")) is octree
    meta = octree.to("meta")  # a device without data: every per-depth tensor must follow
    assert meta.device == torch.device("meta") and meta.depth == 3 and meta.batch_size == 2
    for field in ("keys", "children", "coords", "features", "counts"):
        assert all(t.device.type == "meta" for t in getattr(meta, field)), field
        assert [t.shape for t in getattr(meta, field)] == [t.shape for t in getattr(octree, field)], field

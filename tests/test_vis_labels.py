"""Label colouring (sparse3d.vis.labels), the labelled side-by-side PNG / window (label_render) and
`sparse3d view segmentation` (label_cli), with the ScanNet-20 palette passed in as the command line does."""
import argparse

import numpy as np
import pytest
from PIL import Image

from data_tools.scannet.labels import SCANNET20_COLORS, SCANNET20_NAMES, SCANNET20_NYU40_IDS
from sparse3d.utils.mesh import write_ply
from sparse3d.vis.label_render import render_labels, view_labels
from sparse3d.vis.labels import (Palette, check_labels, label_colors, legend, legend_text, mesh_panel, read_id_file,
                                 voxel_mesh, voxel_panel)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

PAL = Palette(SCANNET20_COLORS, SCANNET20_NAMES, ignore=255, class_ids=SCANNET20_NYU40_IDS)
WALL, FLOOR, CHAIR, SOFA, TABLE = 0, 1, 4, 5, 6


def _room():
    """coords int32 [N, 3] of a floor, two walls and a box; ground truth (box = chair, top layer
    unlabelled) and a prediction that calls the box's upper half sofa."""
    g = np.stack(np.meshgrid(np.arange(24), np.arange(20), np.arange(12), indexing="ij"), -1).reshape(-1, 3)
    floor, wall = g[:, 2] == 0, (g[:, 0] == 0) | (g[:, 1] == 19)
    box = (g[:, 0] > 8) & (g[:, 0] < 15) & (g[:, 1] > 4) & (g[:, 1] < 11) & (g[:, 2] < 5)
    keep = floor | wall | box
    c = g[keep].astype(np.int32)
    gt = np.where(floor[keep], FLOOR, np.where(wall[keep], WALL, CHAIR)).astype(np.uint8)
    gt[c[:, 2] == 11] = 255
    pred = gt.copy()
    pred[(gt == CHAIR) & (c[:, 2] >= 3)] = SOFA
    pred[gt == 255] = WALL
    return c, pred, gt


def _has_shade_of(img: np.ndarray, rgb, tol: int = 3, lo: float = 0.5) -> int:
    """Number of pixels equal (within ``tol``) to ``rgb`` times a shading factor in [lo, 1]."""
    p = img[..., :3].reshape(-1, 3).astype(np.float64)
    c = np.asarray(rgb, np.float64)
    s = (p @ c) / (c @ c)
    ok = (s >= lo) & (s <= 1.01) & (np.abs(p - s[:, None] * c[None]).max(1) <= tol)
    return int(ok.sum())


def _exact(img: np.ndarray, rgb) -> np.ndarray:
    return (img[..., :3].astype(int) == np.asarray(rgb)).all(-1)


def test_palette_checks_and_lookup():
    assert np.array_equal(label_colors(np.array([0, 255, 19], np.uint8), PAL),
                          np.array([SCANNET20_COLORS[0], PAL.ignore_color, SCANNET20_COLORS[19]]))
    # nyu40 ids of the 20 classes map to 0..19; other valid ids (0 unannotated, 13, 40) to ignore
    assert PAL.from_ids(np.array([1, 2, 39, 0, 13, 40])).tolist() == [0, 1, 19, 255, 255, 255]
    with pytest.raises(ValueError, match=r"names must give one name per palette colour \(20\), got 19"):
        Palette(SCANNET20_COLORS, SCANNET20_NAMES[:19])
    with pytest.raises(ValueError, match=r"palette colors must be uint8 \[K, 3\].*got shape \(20, 4\)"):
        Palette(np.zeros((20, 4), np.uint8), SCANNET20_NAMES)
    with pytest.raises(ValueError, match=r"ignore must not be a class index \(0\.\.19\), got 5"):
        Palette(SCANNET20_COLORS, SCANNET20_NAMES, ignore=5)
    with pytest.raises(ValueError, match="no class_ids"):
        Palette(SCANNET20_COLORS, SCANNET20_NAMES).from_ids(np.array([1]))


def test_bad_labels_give_clear_errors():
    with pytest.raises(ValueError, match=r"labels must be class indices in \[0, 20\).*or 255 \(ignore\), got 20 at "
                                         r"index 2 \(1 such labels\)"):
        check_labels(np.array([0, 3, 20, 255]), PAL)
    with pytest.raises(ValueError, match=r"pred must be class indices .* got -1 at index 0"):
        check_labels(np.array([-1, 3]), PAL, "pred")
    c, pred, _ = _room()
    with pytest.raises(ValueError, match=rf"labels must have one label per voxel \({len(c)}\), got {len(c) - 1}"):
        voxel_panel("p", c, pred[:-1], PAL)
    with pytest.raises(ValueError, match=r"coords must be integer voxel coordinates \[N, 3\], got shape \(4, 2\)"):
        voxel_mesh(np.zeros((4, 2), np.int32), np.zeros(4))
    with pytest.raises(ValueError, match="coords must be integer voxel coordinates, got dtype float"):
        voxel_mesh(np.zeros((4, 3)), np.zeros(4))
    with pytest.raises(ValueError, match="coords must not repeat a voxel, got 1 duplicates"):
        voxel_mesh(np.zeros((2, 3), np.int32), np.zeros(2))
    with pytest.raises(ValueError, match=r"labels must be integer class indices, got dtype float"):
        check_labels(np.array([0.5]), PAL)
    with pytest.raises(ValueError, match=r"labels must have one label per vertex \(4\), got 3"):
        mesh_panel("m", np.zeros((4, 3)), np.array([[0, 1, 2]]), np.zeros(3, np.uint8), PAL)


def test_voxel_mesh_keeps_exposed_faces_only():
    v, f, lab = voxel_mesh(np.array([[0, 0, 0], [1, 0, 0]]), np.array([3, 7]), voxel_size=0.5, origin=(1, 0, 0))
    assert f.shape == (20, 3) and v.shape == (40, 3)  # 2 cubes x 6 faces - the 2 shared ones, 2 triangles each
    assert sorted(np.bincount(lab).nonzero()[0]) == [3, 7] and (lab == 3).sum() == 20
    assert np.allclose(v.min(0), [1, 0, 0]) and np.allclose(v.max(0), [2, 0.5, 0.5])
    # outward normals: each triangle's normal points away from its voxel's centre
    tri = v[f]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    centre = np.where(lab[f[:, 0]][:, None] == 3, [1.25, 0.25, 0.25], [1.75, 0.25, 0.25])
    assert ((n * (tri.mean(1) - centre)).sum(1) > 0).all()


def test_legend_lists_present_classes_only():
    c, pred, gt = _room()
    panels = [voxel_panel("prediction", c, pred, PAL), voxel_panel("ground truth", c, gt, PAL)]
    rows = legend(PAL, panels)
    assert [r[1] for r in rows] == ["wall", "floor", "chair", "sofa", "unlabelled"]
    sofa = rows[3]
    assert sofa[2] == tuple(SCANNET20_COLORS[SOFA]) and sofa[3][0] > 0 and sofa[3][1] == 0
    text = legend_text(PAL, panels)
    assert "chair" in text and "#bcbd22" in text and "table" not in text
    hidden = voxel_panel("ground truth", c, gt, PAL, hide_ignored=True)
    assert "unlabelled" not in [r[1] for r in legend(PAL, [hidden])]


def test_render_labels_png_has_panels_and_legend(tmp_path):
    c, pred, gt = _room()
    png = str(tmp_path / "seg.png")
    w, h = 640, 320
    render_labels([voxel_panel("prediction", c, pred, PAL), voxel_panel("ground truth", c, gt, PAL)], PAL, png, w, h)
    img = np.asarray(Image.open(png))[..., :3]
    assert img.shape == (h, w, 3)
    strip = round(h * 0.06)
    bottom = img[h - strip:]  # one legend row at this width
    xs = []
    for k in (WALL, FLOOR, CHAIR, SOFA):  # a swatch of exactly the palette colour for each class present
        hit = np.nonzero(_exact(bottom, SCANNET20_COLORS[k]).any(0))[0]
        assert len(hit) >= 4, f"no swatch of {SCANNET20_NAMES[k]} in the legend"
        xs.append(hit.mean())
    assert xs == sorted(xs), "legend not in palette order"
    assert _exact(bottom, PAL.ignore_color).sum() >= 16, "no 'unlabelled' swatch"
    assert not _exact(bottom, SCANNET20_COLORS[TABLE]).any(), "a class that is not present is in the legend"
    assert (bottom.sum(-1) < 200).sum() > 30, "no legend text"
    assert (img[:strip].sum(-1) < 200).sum() > 30, "no title text"
    body = img[strip:h - strip]
    left, right = body[:, : w // 2], body[:, w // 2:]
    for k in (WALL, FLOOR, CHAIR):  # both panels drawn, in the palette's colours (shaded)
        assert _has_shade_of(left, SCANNET20_COLORS[k]) > 30 and _has_shade_of(right, SCANNET20_COLORS[k]) > 30, k
    assert _has_shade_of(left, SCANNET20_COLORS[SOFA]) > 30  # the prediction's mistake shows on the left only
    assert _has_shade_of(right, SCANNET20_COLORS[SOFA]) == 0


def test_render_labels_rejects_labels_out_of_palette(tmp_path):
    from sparse3d.vis.labels import LabelPanel
    v, f, lab = voxel_mesh(np.array([[0, 0, 0]]), np.array([2]))
    bad = LabelPanel("prediction", v, f, np.full(len(v), 30))
    with pytest.raises(ValueError, match=r"labels of panel 'prediction' must be class indices in \[0, 20\).*got 30"):
        render_labels([bad], PAL, str(tmp_path / "x.png"), 200, 150)
    assert not (tmp_path / "x.png").exists()


def _main(argv):
    """`sparse3d view ...` with `view segmentation` registered the way the command line does it (sparse3d.cli's
    `view` group), with this test's small palette."""
    from sparse3d.utils.argtypes import polish_help
    from sparse3d.vis.cli import register_completion
    from sparse3d.vis.label_cli import register_segmentation
    parser = argparse.ArgumentParser(prog="sparse3d")
    view = parser.add_subparsers(dest="command", required=True).add_parser("view")
    vsub = view.add_subparsers(dest="task", required=True)
    register_completion(vsub)
    register_segmentation(vsub, PAL)
    args = polish_help(parser).parse_args(argv)
    return args.func(args)


def _write_pred(d, scene="scene0000_00", **over):
    c, pred, gt = _room()
    arrays = dict(coords=c, labels=pred, gt_labels=gt, voxel_size=np.float64(0.05))
    arrays.update(over)
    np.savez(d / f"{scene}_voxels.npz", **arrays)
    return c, pred, gt


def test_view_segmentation_voxels_png(tmp_path, capsys):
    _, pred, gt = _write_pred(tmp_path)
    png = str(tmp_path / "v.png")
    assert _main(["view", "segmentation", str(tmp_path), "--scene", "scene0000_00", "--png", png,
                  "--width", "400", "--height", "240"]) == 0
    out = capsys.readouterr().out
    valid = gt != 255
    acc = (pred[valid] == gt[valid]).mean()
    assert f"accuracy of the prediction on the {valid.sum()} ground-truth-labelled voxels: {acc:.3f}" in out
    assert "sofa" in out and "wrote" in out
    img = np.asarray(Image.open(png))[..., :3]
    assert img.shape == (240, 400, 3) and _exact(img, SCANNET20_COLORS[SOFA]).sum() >= 16
    # --hide-unlabelled drops the unlabelled top layer of the ground truth: no grey swatch
    assert _main(["view", "segmentation", str(tmp_path), "--scene", "scene0000_00", "--png", png,
                  "--width", "400", "--height", "240", "--hide-unlabelled"]) == 0
    assert not _exact(np.asarray(Image.open(png))[..., :3], PAL.ignore_color).any()
    capsys.readouterr()
    # no ground truth (a real scan without labels: gt_labels all 255): the prediction alone, no accuracy
    c, pred, _ = _write_pred(tmp_path, gt_labels=np.full(len(pred), 255, np.uint8))
    assert _main(["view", "segmentation", str(tmp_path), "--scene", "scene0000_00", "--png", png,
                  "--width", "400", "--height", "240"]) == 0
    out = capsys.readouterr().out
    assert "accuracy" not in out and "ground truth" not in out and "prediction" in out


def test_view_segmentation_voxels_bad_input(tmp_path):
    with pytest.raises(SystemExit, match=r"scene0000_00_voxels\.npz does not exist \(written by `sparse3d predict "
                                         r"segmentation`"):
        _main(["view", "segmentation", str(tmp_path), "--scene", "scene0000_00", "--png", str(tmp_path / "a.png")])
    c, pred, _ = _room()
    _write_pred(tmp_path, labels=np.where(pred == SOFA, 25, pred).astype(np.uint8))
    with pytest.raises(SystemExit, match=r"scene0000_00_voxels\.npz: labels must be class indices in "
                                         r"\[0, 20\).*got 25"):
        _main(["view", "segmentation", str(tmp_path), "--scene", "scene0000_00", "--png", str(tmp_path / "a.png")])
    _write_pred(tmp_path, gt_labels=np.zeros(len(c) - 3, np.uint8))
    with pytest.raises(SystemExit, match=rf"gt_labels must have one label per voxel \({len(c)}\), got {len(c) - 3}"):
        _main(["view", "segmentation", str(tmp_path), "--scene", "scene0000_00", "--png", str(tmp_path / "a.png")])
    _write_pred(tmp_path)
    with pytest.raises(SystemExit, match=r"height 120 leaves no room for the pictures under the title and the \d+ "
                                         r"legend rows"):
        _main(["view", "segmentation", str(tmp_path), "--scene", "scene0000_00", "--png", str(tmp_path / "a.png"),
               "--width", "60", "--height", "120"])
    with pytest.raises(SystemExit, match="--gt applies to --mesh"):
        _main(["view", "segmentation", str(tmp_path), "--scene", "scene0000_00", "--gt", str(tmp_path),
               "--png", str(tmp_path / "a.png")])
    assert not (tmp_path / "a.png").exists()


def _plane_mesh(path, n=12):
    """A n x n vertex grid in the z=0 plane with a bump; vertex i's nyu40 id: floor left, table right."""
    x, y = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    v = np.stack([x.ravel(), y.ravel(), 0.3 * ((x.ravel() - n / 2) ** 2 < 4)], 1).astype(np.float64) * 0.1
    q = (x[:-1, :-1] * n + y[:-1, :-1]).ravel()
    f = np.concatenate([np.stack([q, q + n, q + n + 1], 1), np.stack([q, q + n + 1, q + 1], 1)])
    write_ply(str(path), v, f.astype(np.int64))
    return v, f


def test_view_segmentation_mesh_vertices(tmp_path, capsys):
    mesh = tmp_path / "scene0001_00_vh_clean_2.ply"
    v, _ = _plane_mesh(mesh)
    (tmp_path / "pred").mkdir()
    (tmp_path / "gt").mkdir()
    gt = np.where(v[:, 0] < 0.6, 2, 7)  # nyu40: floor | table
    pred = gt.copy()
    pred[:10] = 6  # sofa
    pred[10:12] = 22  # ceiling: valid nyu40, no class -> unlabelled
    gt[-3:] = 0  # unannotated
    (tmp_path / "pred" / "scene0001_00.txt").write_text("\n".join(map(str, pred)) + "\n")
    (tmp_path / "gt" / "scene0001_00.txt").write_text("\n".join(map(str, gt)) + "\n")
    png = str(tmp_path / "m.png")
    assert _main(["view", "segmentation", str(tmp_path / "pred"), "--scene", "scene0001_00", "--mesh", str(mesh),
                  "--gt", str(tmp_path / "gt"), "--png", png, "--width", "400", "--height", "220"]) == 0
    out = capsys.readouterr().out
    valid = gt != 0
    acc = (pred[valid] == gt[valid]).mean()
    assert f"on the {valid.sum()} ground-truth-labelled vertices: {acc:.3f}" in out
    img = np.asarray(Image.open(png))[..., :3]
    for k in (FLOOR, TABLE, SOFA):
        assert _exact(img, SCANNET20_COLORS[k]).sum() >= 16, SCANNET20_NAMES[k]
    body = img[13:-26]
    assert _has_shade_of(body[:, :200], SCANNET20_COLORS[TABLE]) > 20
    assert _has_shade_of(body[:, 200:], SCANNET20_COLORS[TABLE]) > 20
    # a submission file with the wrong number of lines / a non-integer line names the file
    (tmp_path / "pred" / "scene0001_00.txt").write_text("\n".join(map(str, pred[:-1])) + "\n")
    with pytest.raises(SystemExit, match=rf"scene0001_00\.txt: expected one id per line for each of the {len(v)} "
                                         rf"vertices of .*, got {len(v) - 1} lines"):
        _main(["view", "segmentation", str(tmp_path / "pred"), "--scene", "scene0001_00", "--mesh", str(mesh),
               "--png", png])
    (tmp_path / "pred" / "scene0001_00.txt").write_text("1\nwall\n")
    with pytest.raises(ValueError, match=r"scene0001_00\.txt: line 2 must be an integer id, got 'wall'"):
        read_id_file(str(tmp_path / "pred" / "scene0001_00.txt"))


def test_view_segmentation_window_prints_legend(tmp_path, monkeypatch, capsys):
    import types
    import sparse3d.vis.viewer as viewer
    log = {}

    class Vis:
        def create_window(self, window_name="", width=0, height=0):
            log["window"] = (width, height)
            return True

        def add_geometry(self, g, reset_bounding_box=True):
            log.setdefault("colors", []).append(np.asarray(g.vertex_colors))

        def register_key_callback(self, key, cb):
            pass

        def run(self):
            pass

        def destroy_window(self):
            pass

    monkeypatch.setattr(viewer, "_o3d", lambda: types.SimpleNamespace(
        visualization=types.SimpleNamespace(VisualizerWithKeyCallback=Vis)))
    monkeypatch.setenv("DISPLAY", ":0")
    _write_pred(tmp_path)
    assert _main(["view", "segmentation", str(tmp_path), "--scene", "scene0000_00", "--width", "300"]) == 0
    out = capsys.readouterr().out
    assert "legend (classes present" in out and "sofa" in out and "accuracy of the prediction" in out
    assert log["window"] == (300, 700) and len(log["colors"]) == 2
    sofa = SCANNET20_COLORS[SOFA] / 255
    assert np.isclose(log["colors"][0], sofa).all(1).any() and not np.isclose(log["colors"][1], sofa).all(1).any()
    monkeypatch.delenv("DISPLAY")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    with pytest.raises(SystemExit, match="--png FILE"):
        _main(["view", "segmentation", str(tmp_path), "--scene", "scene0000_00"])
    with pytest.raises(RuntimeError, match="--png"):
        view_labels([voxel_panel("p", *_room()[:2], PAL)], PAL)

"""Voxels and vertices in their own colours (sparse3d.vis.color_render): argument checks, the colour each voxel's
faces carry, and a headless picture whose pixels show those colours."""
import numpy as np
import pytest

from sparse3d.vis.color_render import ColorPanel, check_colors, render_colors, voxel_color_panel


def test_check_colors_accepts_uint8_ints_and_unit_floats():
    assert check_colors(np.array([[0, 128, 255]]), 1).dtype == np.uint8
    np.testing.assert_array_equal(check_colors(np.array([[0.0, 0.5, 1.0]]), 1), [[0, 128, 255]])


@pytest.mark.parametrize("colors,match", [
    (np.zeros((2, 3), np.uint8), r"\[1, 3\].*got shape \[2, 3\]"),
    (np.array([[0, 0, 256]]), "0..255"),
    (np.array([[0.0, 0.0, 1.5]]), r"\[0, 1\]"),
    (np.array([[0.0, np.nan, 0.0]]), "finite"),
    (np.array([["a", "b", "c"]]), "dtype"),
])
def test_check_colors_names_the_problem(colors, match):
    with pytest.raises(ValueError, match=match):
        check_colors(colors, 1, "colors")


def test_each_face_of_a_voxel_carries_its_colour():
    coords = np.array([[0, 0, 0], [1, 0, 0], [5, 5, 5]])
    rgb = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    p = voxel_color_panel("v", coords, rgb, voxel_size=0.5, origin=(1.0, 2.0, 3.0))
    assert p.colors.shape == (len(p.verts), 3) and p.faces.max() < len(p.verts)
    # the shared face of voxels 0 and 1 is hidden: 5 + 5 + 6 quads, 4 vertices each
    assert len(p.verts) == 4 * 16
    centres = (p.verts[p.faces].mean(1) - (1.0, 2.0, 3.0)) / 0.5  # each triangle's centre, in voxel units
    for k, c in enumerate(coords):
        on_cube = (np.abs(centres - c - 0.5) <= 0.5 + 1e-9).all(1)  # triangles on voxel k's cube surface
        assert on_cube.any()
        np.testing.assert_array_equal(np.unique(p.colors[p.faces[on_cube].ravel()], axis=0), rgb[k][None])


def test_render_colors_shows_the_colours(tmp_path):
    pytest.importorskip("open3d")
    from PIL import Image
    coords = np.array([[x, y, 0] for x in range(6) for y in range(6)])
    red = voxel_color_panel("red", coords, np.tile([[220, 20, 20]], (36, 1)))
    blue = voxel_color_panel("blue", coords, np.tile([[20, 20, 220]], (36, 1)))
    path = render_colors([red, blue], str(tmp_path / "c.png"), 400, 200)
    img = np.asarray(Image.open(path).convert("RGB")).astype(int)
    r = (img[..., 0] > 100) & (img[..., 2] < 60)
    b = (img[..., 2] > 100) & (img[..., 0] < 60)
    assert r.sum() > 500 and b.sum() > 500
    assert np.median(np.nonzero(r)[1]) < np.median(np.nonzero(b)[1])  # red panel left of the blue one


def test_render_colors_checks_the_panels(tmp_path):
    bad = ColorPanel("bad", np.zeros((3, 3)), np.array([[0, 1, 2]]), np.zeros((2, 3), np.uint8))
    with pytest.raises(ValueError, match="colors of panel 'bad'"):
        render_colors([bad], str(tmp_path / "x.png"))
    with pytest.raises(ValueError, match="width"):
        render_colors([], str(tmp_path / "x.png"), width=0)

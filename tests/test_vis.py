import numpy as np
from PIL import Image

from sparse3d.data.procedural import procedural_sample
from sparse3d.train.predict import input_prediction, meshes
from sparse3d.vis.render import nonblank_fraction, render_side_by_side

import pytest as _pytest
from _completion_fixtures import one_thread


@_pytest.fixture(autouse=True)
def _one_thread():
    yield from one_thread()


def test_render_png_not_blank(tmp_path):
    s = procedural_sample(16, 1)
    ms = meshes(s, input_prediction(s))
    png = str(tmp_path / "side.png")
    render_side_by_side([(k, *ms[k]) for k in ("input", "prediction", "target")], png, 320, 160)
    img = np.asarray(Image.open(png))
    assert img.shape[:2] == (160, 320)
    frac = nonblank_fraction(img)
    assert 0.05 < frac < 0.95, frac
    # three panels: each third of the image shows something
    for k in range(3):
        assert nonblank_fraction(img[:, k * 106:(k + 1) * 106], background=(255, 255, 255)) > 0.02


def test_view_cli_png(tmp_path):
    from sparse3d.cli import main
    from sparse3d.models.mesh import write_ply
    s = procedural_sample(16, 2)
    for k, (v, f) in meshes(s, input_prediction(s)).items():
        write_ply(str(tmp_path / f"sc_{k}.ply"), v, f)
    png = str(tmp_path / "v.png")
    assert main(["view", "--dir", str(tmp_path), "--scene", "sc", "--png", png, "--width", "240",
                 "--height", "120"]) == 0
    assert nonblank_fraction(np.asarray(Image.open(png))) > 0.05

import numpy as np
from PIL import Image

from sparse3d.tasks.completion.predict import input_prediction, meshes
from sparse3d.tasks.completion.procedural import procedural_sample
from sparse3d.utils.mesh import write_ply
from sparse3d.vis.render import PALETTE, nonblank_fraction, render_side_by_side

import pytest as _pytest

pytestmark = _pytest.mark.usefixtures("one_thread")  # tests/conftest.py


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
    _write_scene(tmp_path)
    png = str(tmp_path / "v.png")
    assert main(["view", "completion", "--dir", str(tmp_path), "--scene", "sc", "--png", png, "--width", "240",
                 "--height", "120"]) == 0
    assert nonblank_fraction(np.asarray(Image.open(png))) > 0.05


class _FakeVisualizer:
    """Stands in for open3d.visualization.VisualizerWithKeyCallback (no display needed)."""

    def __init__(self, log):
        self.log = log

    def create_window(self, window_name="", width=0, height=0):
        self.log["window"] = (width, height)
        return True

    def add_geometry(self, g, reset_bounding_box=True):
        self.log.setdefault("triangles", []).append(len(g.triangles))

    def register_key_callback(self, key, cb):
        pass

    def run(self):
        pass

    def destroy_window(self):
        pass


def _fake_o3d(monkeypatch):
    import types
    import sparse3d.vis.viewer as viewer
    log = {}
    fake = types.SimpleNamespace(visualization=types.SimpleNamespace(
        VisualizerWithKeyCallback=lambda: _FakeVisualizer(log)))
    monkeypatch.setattr(viewer, "_o3d", lambda: fake)
    return log


def _write_scene(tmp_path):
    s = procedural_sample(16, 2)
    for k, (v, f) in meshes(s, input_prediction(s)).items():
        write_ply(str(tmp_path / f"sc_{k}.ply"), v, f)


def test_view_window_honours_width_height_clip_top(tmp_path, monkeypatch):
    monkeypatch.setenv("DISPLAY", ":0")
    from sparse3d.cli import main
    from sparse3d.vis.render import layout, read_mesh
    from sparse3d.vis.render import clip_top_panels
    _write_scene(tmp_path)
    log = _fake_o3d(monkeypatch)
    assert main(["view", "completion", "--dir", str(tmp_path), "--scene", "sc"]) == 0
    assert log["window"] == (1400, 700)
    full = log["triangles"]
    log.clear()
    assert main(["view", "completion", "--dir", str(tmp_path), "--scene", "sc", "--width", "320", "--height", "200",
                 "--clip-top", "0.5"]) == 0
    assert log["window"] == (320, 200)
    panels = layout([(k, *read_mesh(str(tmp_path / f"sc_{k}.ply"))) for k in ("input", "prediction", "target")])
    assert log["triangles"] == [len(f) for _, _, f in clip_top_panels(panels, 0.5)]
    assert all(c <= n for c, n in zip(log["triangles"], full)) and sum(log["triangles"]) < sum(full)


def test_view_window_rejects_png_only_options(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DISPLAY", ":0")
    import pytest
    from sparse3d.cli import main
    _write_scene(tmp_path)
    log = _fake_o3d(monkeypatch)
    with pytest.raises(SystemExit, match=r"--renderer filament applies only to --png"):
        main(["view", "completion", "--dir", str(tmp_path), "--scene", "sc", "--renderer", "filament"])
    assert "window" not in log
    with pytest.raises(SystemExit):
        main(["view", "completion", "--dir", str(tmp_path), "--scene", "sc", "--clip-top", "1.5"])
    assert "argument --clip-top: expected a number in [0, 1), got 1.5" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["view", "completion", "--dir", str(tmp_path), "--scene", "sc", "--width", "0"])
    assert "argument --width: expected an integer >= 1, got 0" in capsys.readouterr().err


def test_no_display_reason():
    from sparse3d.vis.viewer import no_display_reason
    assert "--png" in no_display_reason({}, "linux")
    assert no_display_reason({"DISPLAY": ":0"}, "linux") is None
    assert no_display_reason({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
    assert no_display_reason({}, "darwin") is None and no_display_reason({}, "win32") is None


def test_view_without_display_says_use_png(tmp_path, monkeypatch):
    """No DISPLAY / WAYLAND_DISPLAY on Linux: a one-line message naming --png, before Open3D is touched."""
    import pytest
    from sparse3d.cli import main
    _write_scene(tmp_path)
    log = _fake_o3d(monkeypatch)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    with pytest.raises(SystemExit) as e:
        main(["view", "completion", "--dir", str(tmp_path), "--scene", "sc"])
    msg = str(e.value.code)
    assert msg.startswith("error: no display") and "--png FILE" in msg and "\n" not in msg, msg
    assert "window" not in log
    with pytest.raises(RuntimeError, match="--png"):  # the library function says the same
        from sparse3d.vis.viewer import view
        view([("a", np.zeros((3, 3)), np.zeros((1, 3), np.int64))])


def test_png_has_titles_and_key(tmp_path):
    """The title strip holds one swatch of each panel's colour above that panel; the key strip holds a
    grey ramp; the meshes sit between the strips."""
    s = procedural_sample(16, 1)
    ms = meshes(s, input_prediction(s))
    png = str(tmp_path / "side.png")
    w, h = 600, 300
    render_side_by_side([(k, *ms[k]) for k in ("input", "prediction", "target")], png, w, h)
    img = np.asarray(Image.open(png))[..., :3].astype(int)
    assert img.shape[:2] == (h, w)
    strip = round(h * 0.06)
    top, body, bottom = img[:strip], img[strip:h - strip], img[h - strip:]
    assert nonblank_fraction(body, background=(255, 255, 255)) > 0.05
    xs = []
    for k in ("input", "prediction", "target"):  # the swatch: a block of exactly the palette colour
        col = np.array([int(255 * c) for c in PALETTE[k]])
        hit = np.nonzero((np.abs(top - col).sum(-1) == 0).any(0))[0]
        assert len(hit) >= 4, f"no swatch of {k}'s colour in the title strip"
        xs.append(hit.mean())
    assert xs == sorted(xs), xs  # left to right like the panels
    dark_text = (top.sum(-1) < 200).sum()
    assert dark_text > 50, "no title text"
    row = bottom[strip // 2]
    greys = row[(row[:, 0] == row[:, 1]) & (row[:, 1] == row[:, 2]) & (row[:, 0] > 80) & (row[:, 0] < 245)]
    assert len(np.unique(greys[:, 0])) > 10, "no grey ramp (height key) in the key strip"


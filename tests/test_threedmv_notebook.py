"""notebooks/threedmv_tutorial.ipynb runs top to bottom: textured rooms -> whole-scene crops -> the frames' colour
lifted into the voxels (checked against the fused colour) -> 2D pre-training -> joint training -> benchmark-format
prediction -> benchmark scores -> the pictures."""
import re

from _notebooks import run_notebook


def test_threedmv_tutorial_runs(monkeypatch):
    run = run_notebook("threedmv_tutorial.ipynb", monkeypatch)
    assert len(run.pngs) == 2, "the lifted-colour and the label pictures"
    m = re.search(r"(\d+) of (\d+) voxels seen by 3 views per box; mean \|lifted - fused\| R/G/B = "
                  r"([\d.]+) / ([\d.]+) / ([\d.]+) of 255", run.text)
    assert m, run.text[-2000:]
    seen, n = int(m.group(1)), int(m.group(2))
    assert seen > 0.6 * n, "most voxels of the room pass some chosen view's depth test"
    # the lifted colour is the fused colour up to texture finer than a voxel: far below the ~80 of unrelated colours
    assert max(float(m.group(k)) for k in (3, 4, 5)) < 30
    for needle in ("mIoU", "accuracy", "wrote"):
        assert needle in run.text, f"no {needle!r} in the notebook's output"
    assert run.seconds < 150, f"the tutorial took {run.seconds:.0f} s; it must stay well under 2.5 minutes"

"""notebooks/segmentation_tutorial.ipynb runs top to bottom: synthetic rooms -> whole-scene crops ->
a few U-Net steps -> benchmark-format prediction -> benchmark scores -> the labelled pictures."""
from _notebooks import run_notebook


def test_segmentation_tutorial_runs(monkeypatch):
    run = run_notebook("segmentation_tutorial.ipynb", monkeypatch)
    assert len(run.pngs) == 2, "the last two cells must show the voxel and the mesh pictures"
    for needle in ("(val):", "trained 20 steps", "mIoU", "accuracy", "legend (classes present",
                   "accuracy of the prediction on the", "wrote"):
        assert needle in run.text, f"no {needle!r} in the notebook's output"
    assert run.seconds < 120, f"the tutorial took {run.seconds:.0f} s; it must stay well under 2 minutes"

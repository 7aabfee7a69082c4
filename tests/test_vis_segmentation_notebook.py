"""notebooks/segmentation_tutorial.ipynb runs top to bottom: synthetic rooms -> whole-scene crops ->
a few U-Net steps -> benchmark-format prediction -> benchmark scores -> the labelled pictures."""
import os
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_segmentation_tutorial_runs():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    path = os.path.join(REPO, "notebooks", "segmentation_tutorial.ipynb")
    nb = nbformat.read(path, as_version=4)
    os.environ["PYTHONPATH"] = REPO + os.pathsep + os.environ.get("PYTHONPATH", "")
    t0 = time.time()
    nbclient.NotebookClient(nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": REPO}}).execute()
    seconds = time.time() - t0
    outs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    pngs = [o for o in outs if "image/png" in o.get("data", {})]
    assert len(pngs) == 2, "the last two cells must show the voxel and the mesh pictures"
    text = "".join(o.get("text", "") for o in outs)
    for needle in ("(val):", "trained 20 steps", "mIoU", "accuracy", "legend (classes present",
                   "accuracy of the prediction on the", "wrote"):
        assert needle in text, f"no {needle!r} in the notebook's output"
    assert seconds < 120, f"the tutorial took {seconds:.0f} s; it must stay well under 2 minutes"

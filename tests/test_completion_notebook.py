import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_completion_tutorial_runs():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    path = os.path.join(REPO, "notebooks", "completion_tutorial.ipynb")
    nb = nbformat.read(path, as_version=4)
    os.environ["PYTHONPATH"] = REPO + os.pathsep + os.environ.get("PYTHONPATH", "")
    nbclient.NotebookClient(nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": REPO}}).execute()
    outs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outs), "the last cell must show the rendered PNG"
    text = "".join(o.get("text", "") for o in outs)
    assert "IoU input" in text

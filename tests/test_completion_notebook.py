"""notebooks/completion_tutorial.ipynb runs top to bottom and ends with the rendered picture."""
from _notebooks import run_notebook


def test_completion_tutorial_runs(monkeypatch):
    run = run_notebook("completion_tutorial.ipynb", monkeypatch)
    assert run.pngs, "the last cell must show the rendered PNG"
    assert "IoU input" in run.text

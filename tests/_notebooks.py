"""Execute a notebook of notebooks/ top to bottom (nbclient, a fresh python3 kernel that imports this checkout)
and hand back what its cells printed and showed."""
import os
import time
from dataclasses import dataclass
from typing import List

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True)
class NotebookRun:
    """text: every stream / text output of the code cells, joined; pngs: the image/png outputs; seconds: run time."""
    text: str
    pngs: List[dict]
    seconds: float


def run_notebook(name: str, monkeypatch: pytest.MonkeyPatch, timeout: int = 240) -> NotebookRun:
    """Run notebooks/<name> (skips when nbformat / nbclient are missing); the kernel's PYTHONPATH starts with
    the repository (set through ``monkeypatch``, undone after the test)."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(os.path.join(REPO, "notebooks", name), as_version=4)
    monkeypatch.setenv("PYTHONPATH", REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.time()
    nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": REPO}}).execute()
    outs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    return NotebookRun("".join(o.get("text", "") for o in outs), [o for o in outs if "image/png" in o.get("data", {})],
                       time.time() - t0)

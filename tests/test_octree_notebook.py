"""notebooks/octree_tutorial.ipynb runs top to bottom: the bunny's octree per depth, an octree conv equal to the
sparse conv, ops between depths, octree generation from the true splits and from a tiny trained network."""
import re

from _data_helpers import shared_path
from _notebooks import run_notebook


def test_octree_tutorial_runs(monkeypatch):
    shared_path("meshes", "bunny.ply")  # skips (with the reason) without the shared sample data
    run = run_notebook("octree_tutorial.ipynb", monkeypatch)
    assert len(run.pngs) == 1, "the octants picture"
    fractions = [float(f) for f in re.findall(r"hold surface = +([\d.]+)% of the", run.text)]
    assert len(fractions) == 7 and fractions[6] < fractions[4] < fractions[2], "occupancy falls with the depth"
    m = re.search(r"octree conv vs sparse conv: max \|diff\| = ([\d.e+-]+)", run.text)
    assert m and float(m.group(1)) < 1e-10, run.text[-2000:]
    assert "(same as the octree: True)" in run.text
    m = re.search(r"IoU with the bunny's (\d+) surface cells = ([\d.]+)", run.text)
    assert m, run.text[-2000:]
    assert float(m.group(2)) > IOU_FLOOR, "the tiny generator learned which octants to split"
    assert run.seconds < 120, f"the tutorial took {run.seconds:.0f} s; it must stay well under 2 minutes"


IOU_FLOOR = 0.6

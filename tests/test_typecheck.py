"""The typed boundary: mypy is clean on the public engine API (the files listed under [tool.mypy] in
pyproject.toml: tensor, coords, kernel, kernel maps, ops, nn, backends, utils), and the type stub of
the C++ extension (sparse3d/_C.pyi) names every class and function the built module binds, and
nothing it does not."""
import ast
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STUB = REPO / "sparse3d" / "_C.pyi"
SUBMODULES = ("hash", "kmap", "conv", "fusion", "limits", "project", "octree")


def _public(names):
    return {n for n in names if not n.startswith("_")}


def _stub_names():
    """{submodule: names declared in its stub class} and the module-level names of the stub."""
    tree = ast.parse(STUB.read_text())
    classes, top = {}, set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names = set()
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.ClassDef)):
                    names.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    names.add(item.target.id)
            classes[node.name] = names
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            top.add(node.target.id)
    return classes, top


def test_stub_covers_every_binding():
    from sparse3d import _ext

    C = _ext.load()
    classes, top = _stub_names()
    assert set(classes) == set(SUBMODULES), f"stub classes {sorted(classes)} vs submodules {SUBMODULES}"
    assert top == {"with_cuda"}
    for sub in SUBMODULES:
        mod = getattr(C, sub)
        bound = _public(dir(mod))
        assert classes[sub] == bound, (f"_C.{sub}: only in the stub {sorted(classes[sub] - bound)}, "
                                       f"only in the module {sorted(bound - classes[sub])}")
        for name in bound:  # bound classes: their public members are stubbed too
            obj = getattr(mod, name)
            if isinstance(obj, type):
                stub_cls = next(n for n in ast.parse(STUB.read_text()).body
                                if isinstance(n, ast.ClassDef) and n.name == sub)
                nested = next(n for n in stub_cls.body if isinstance(n, ast.ClassDef) and n.name == name)
                members = {i.name for i in nested.body if isinstance(i, ast.FunctionDef)}
                missing = _public(vars(obj)) - members
                assert not missing, f"_C.{sub}.{name}: members missing from the stub: {sorted(missing)}"


def test_limits_are_read_from_the_extension():
    """One statement of the coordinate limits: C++ (common/coord_pack.h) -> _C.limits -> sparse3d.coords."""
    from sparse3d import _ext, coords

    lim = _ext.limits()
    assert (coords.COORD_MIN, coords.COORD_MAX, coords.BATCH_MAX) == (lim.COORD_MIN, lim.COORD_MAX, lim.BATCH_MAX)
    assert (lim.COORD_MIN, lim.COORD_MAX, lim.BATCH_MAX) == (-32768, 32767, 2047)
    assert coords.SCALED_COORD_BOUND == lim.SCALED_COORD_BOUND


def test_mypy_is_clean_on_the_engine_api():
    pytest.importorskip("mypy", reason="mypy is not installed (pip install mypy; it is in requirements.txt)")
    # a cache that outlives the test run (outside the checkout) keeps reruns fast
    cache = Path(tempfile.gettempdir()) / f"sparse3d-mypy-cache-{os.getuid() if hasattr(os, 'getuid') else 0}"
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"), "--cache-dir", str(cache),
           "--no-error-summary", "--hide-error-context"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    took = time.perf_counter() - t0
    assert proc.returncode == 0, f"mypy found problems ({took:.0f} s):\n{proc.stdout[-6000:]}{proc.stderr[-2000:]}"

"""Checkpoint format versions (issue 23 item 4) and ``weights_only=True`` everywhere.

A checkpoint of an unknown (future) format fails with a message that names the file, its version and
the versions this sparse3d reads; a format-1 checkpoint (no ``format_version``) still loads; no
``torch.load`` in the package, the preprocessing tools or the benchmarks can unpickle arbitrary
objects (each passes ``weights_only=True``, checked on the syntax tree).
"""
import ast
import pickle
from pathlib import Path

import pytest
import torch

from sparse3d.tasks.completion.checkpoint import load_completion_checkpoint
from sparse3d.tasks.segmentation.checkpoint import load_segmentation_checkpoint
from sparse3d.train.checkpoint import (FORMAT_VERSION, OLDEST_FORMAT_VERSION, format_version, load_checkpoint,
                                       save_checkpoint)
from sparse3d.utils.atomic_io import atomic_torch_save

REPO = Path(__file__).resolve().parents[1]


def _state():
    return {"model": {"w": torch.arange(6.0).reshape(2, 3)}, "config": {"lr": 0.1}, "step": 7}


def test_current_format_round_trips_with_version_and_task(tmp_path):
    p = tmp_path / "c.pt"
    save_checkpoint(str(p), _state(), task="completion")
    s = load_checkpoint(str(p), task="completion", require=("model", "config"))
    assert s["format_version"] == FORMAT_VERSION == format_version(s) and s["task"] == "completion"
    assert torch.equal(s["model"]["w"], torch.arange(6.0).reshape(2, 3)) and s["step"] == 7


@pytest.mark.parametrize("loader", [load_checkpoint, load_completion_checkpoint, load_segmentation_checkpoint])
def test_a_future_format_names_both_versions_and_the_file(tmp_path, loader):
    p = tmp_path / "future.pt"
    future = FORMAT_VERSION + 1
    atomic_torch_save(p, {**_state(), "format_version": future, "task": "completion"})
    with pytest.raises(ValueError) as info:
        loader(str(p))
    msg = str(info.value)
    assert str(p) in msg
    assert f"format version {future}" in msg
    assert f"versions {OLDEST_FORMAT_VERSION} to {FORMAT_VERSION}" in msg


@pytest.mark.parametrize("bad", ["2", 2.0, None, -1, 0, [2]])
def test_a_malformed_version_field_is_rejected(tmp_path, bad):
    p = tmp_path / "bad.pt"
    atomic_torch_save(p, {**_state(), "format_version": bad})
    with pytest.raises(ValueError, match=r"format version"):
        load_checkpoint(str(p))


def test_the_previous_format_still_loads(tmp_path):
    """Format 1: written before format_version existed; read as version 1 and migrated by the task."""
    p = tmp_path / "v1.pt"
    atomic_torch_save(p, _state())  # no format_version, no task
    s = load_completion_checkpoint(str(p))
    assert format_version(s) == OLDEST_FORMAT_VERSION == 1 and s["step"] == 7


def test_wrong_task_and_missing_entries_name_the_file(tmp_path):
    p = tmp_path / "seg.pt"
    save_checkpoint(str(p), _state(), task="segmentation")
    with pytest.raises(ValueError, match=r"written by task 'segmentation', expected a 'completion'"):
        load_completion_checkpoint(str(p))
    q = tmp_path / "nomodel.pt"
    save_checkpoint(str(q), {"config": {}}, task="segmentation")
    with pytest.raises(ValueError, match=rf"{q}.*lacks the entries \['model'\]"):
        load_segmentation_checkpoint(str(q))
    with pytest.raises(FileNotFoundError, match="absent.pt"):
        load_checkpoint(str(tmp_path / "absent.pt"))


class _Evil:
    """An object whose unpickling would run code: weights_only must refuse it."""

    def __reduce__(self):
        return (Path.touch, (Path("/tmp/s3d_pwned_by_checkpoint"),))


def test_a_checkpoint_that_unpickles_code_is_refused(tmp_path):
    p = tmp_path / "evil.pt"
    torch.save({"model": {}, "config": {}, "x": _Evil()}, p)
    marker = Path("/tmp/s3d_pwned_by_checkpoint")
    marker.unlink(missing_ok=True)
    with pytest.raises(ValueError, match=rf"checkpoint '{p}' cannot be loaded"):
        load_checkpoint(str(p))
    assert not marker.exists()
    # a bare pickle (not a torch zip) is refused as well
    q = tmp_path / "evil.pkl"
    q.write_bytes(pickle.dumps(_Evil(), protocol=2))
    with pytest.raises(ValueError, match="cannot be loaded"):
        load_checkpoint(str(q))
    assert not marker.exists()


def _calls(tree: ast.AST, module: str, func: str):
    """Calls ``module.func(...)`` (also through ``import module as m`` and ``from module import func``)."""
    aliases, direct = {module}, set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases |= {a.asname or a.name for a in node.names if a.name == module}
        elif isinstance(node, ast.ImportFrom) and node.module == module:
            direct |= {a.asname or a.name for a in node.names if a.name == func}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if (isinstance(f, ast.Attribute) and f.attr == func and isinstance(f.value, ast.Name)
                and f.value.id in aliases) or (isinstance(f, ast.Name) and f.id in direct):
            yield node


def _kw(call: ast.Call, name: str):
    for k in call.keywords:
        if k.arg == name:
            return k.value
    return None


def _sources():
    for top in ("sparse3d", "data_tools", "benchmarks", "scripts"):
        yield from sorted((REPO / top).rglob("*.py"))


def test_every_torch_load_uses_weights_only_and_no_numpy_load_allows_pickle():
    bad, seen = [], 0
    for path in _sources():
        tree = ast.parse(path.read_text(), filename=str(path))
        for call in _calls(tree, "torch", "load"):
            seen += 1
            v = _kw(call, "weights_only")
            if not (isinstance(v, ast.Constant) and v.value is True):
                bad.append(f"{path.relative_to(REPO)}:{call.lineno}: torch.load without weights_only=True")
        for call in _calls(tree, "numpy", "load"):
            v = _kw(call, "allow_pickle")
            if v is not None and not (isinstance(v, ast.Constant) and v.value is False):
                bad.append(f"{path.relative_to(REPO)}:{call.lineno}: numpy.load with allow_pickle={ast.unparse(v)}")
    assert seen >= 1, "found no torch.load call at all: the scan is broken"
    assert not bad, "\n".join(bad)


def test_the_scan_finds_a_torch_load_without_weights_only():
    """The checker itself: every spelling of an unsafe load is caught."""
    src = ("import torch\nimport torch as T\nfrom torch import load as L\nimport numpy as np\n"
           "torch.load('a')\nT.load('b', weights_only=False)\nL('c')\ntorch.load('d', weights_only=True)\n"
           "np.load('e', allow_pickle=True)\n")
    tree = ast.parse(src)
    unsafe = [c.lineno for c in _calls(tree, "torch", "load") if not (
        isinstance(_kw(c, "weights_only"), ast.Constant) and _kw(c, "weights_only").value is True)]
    assert unsafe == [5, 6, 7]
    assert [c.lineno for c in _calls(tree, "numpy", "load")] == [9]

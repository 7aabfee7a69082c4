"""`sparse3d preprocess --dask`: one task per scene on a Dask distributed cluster, with the same skipping of done
scenes, failure report and manifest as the serial / --workers runs. Most tests use an in-process LocalCluster
(threads, processes=False) reached through its scheduler address, as a real cluster is; one runs `local:1`
(a LocalCluster of worker processes, started and stopped by preprocess)."""
import os
import shutil
import subprocess
import sys

import pytest

from _data_helpers import native_or_skip
from data_tools import generate_scenes, load_manifest, preprocess, recipe_config
from data_tools.pipeline import _run_one

distributed = pytest.importorskip("distributed")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENES = ["scene0000_00", "scene0001_00", "scene0002_00"]


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    native_or_skip()
    root = tmp_path_factory.mktemp("scans")
    generate_scenes(str(root), 3, seed=1, n_frames=20, width=80, height=60)
    return str(root)


@pytest.fixture(scope="module")
def cfg():
    return recipe_config("segmentation")


@pytest.fixture(scope="module")
def serial(scans, cfg, tmp_path_factory):
    """The manifest bytes of a serial run over every scene: what every Dask run must write."""
    out = tmp_path_factory.mktemp("serial")
    s = preprocess(scans, out, cfg, val_fraction=0.5, progress=False)
    assert s["failed"] == {} and s["done"] == SCENES
    return (out / "manifest.json").read_bytes()


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as c:
        yield c


def test_dask_runs_remaining_scenes_and_writes_the_serial_manifest(scans, cfg, serial, cluster, tmp_path):
    out = tmp_path / "out"
    first = preprocess(scans, out, cfg, val_fraction=0.5, progress=False, scenes=SCENES[:1],
                       dask=cluster.scheduler_address)
    assert first["done"] == SCENES[:1] and first["failed"] == {}
    s = preprocess(scans, out, cfg, val_fraction=0.5, progress=False, dask=cluster.scheduler_address)
    assert s["skipped"] == SCENES[:1] and s["done"] == SCENES[1:] and s["failed"] == {}
    assert (out / "manifest.json").read_bytes() == serial
    again = preprocess(scans, out, cfg, val_fraction=0.5, progress=False, dask=cluster.scheduler_address)
    assert again["done"] == [] and again["skipped"] == SCENES


def test_failing_scene_is_reported_others_done_then_resumed(scans, cfg, serial, cluster, tmp_path, capsys):
    from data_tools.cli import main
    root = tmp_path / "root"
    shutil.copytree(scans, root)
    sens = root / SCENES[1] / f"{SCENES[1]}.sens"
    good = sens.read_bytes()
    sens.write_bytes(good[:len(good) // 2])
    out = tmp_path / "out"
    argv = ["preprocess", str(root), str(out), "--recipe", "segmentation", "--val-fraction", "0.5", "--quiet",
            "--dask", cluster.scheduler_address]
    assert main(argv) == 1
    cap = capsys.readouterr()
    assert "2 done, 0 skipped (already done), 1 failed" in cap.out
    assert f"{SCENES[1]}.sens: frame" in cap.err and "truncated" in cap.err
    man = load_manifest(out)
    assert sorted(man["scenes"]) == [SCENES[0], SCENES[2]] and list(man["failed"]) == [SCENES[1]]
    sens.write_bytes(good)  # the download repaired: the rerun does that scene only
    assert main(argv) == 0
    assert "1 done, 2 skipped (already done), 0 failed" in capsys.readouterr().out
    assert (out / "manifest.json").read_bytes() == serial.replace(scans.encode(), str(root).encode())


def _raise_in_task(src, out, cfg, threads, label_tsv=None):
    """Stand-in for the scene task: scene0002_00's task raises (as a lost worker or a bug would surface)."""
    if src.scene_id == "scene0002_00":
        raise RuntimeError("worker lost")
    return _run_one(src, out, cfg, threads, label_tsv)


def test_task_error_fails_that_scene_only(scans, cfg, cluster, tmp_path, monkeypatch):
    import data_tools.pipeline as pipeline
    monkeypatch.setattr(pipeline, "_run_one", _raise_in_task)
    s = preprocess(scans, tmp_path / "out", cfg, val_fraction=0.5, progress=False, dask=cluster.scheduler_address)
    assert s["done"] == SCENES[:2] and list(s["failed"]) == ["scene0002_00"]
    msg = s["failed"]["scene0002_00"]
    assert "not finished on the Dask cluster (RuntimeError: worker lost)" in msg and "rerun" in msg
    assert load_manifest(tmp_path / "out")["failed"] == s["failed"]


def test_local_cluster_of_worker_processes(scans, cfg, serial, tmp_path):
    out = tmp_path / "out"
    for sid in SCENES[1:]:  # two scenes done already: local:1 runs the third in a worker process
        preprocess(scans, out, cfg, val_fraction=0.5, progress=False, scenes=[sid])
    s = preprocess(scans, out, cfg, val_fraction=0.5, progress=False, dask="local:1")
    assert s["done"] == SCENES[:1] and s["skipped"] == SCENES[1:] and s["failed"] == {}
    assert (out / "manifest.json").read_bytes() == serial


@pytest.mark.parametrize("argv,message", [
    (["--workers", "2", "--dask", "local:2"], "argument --dask: not allowed with argument --workers"),
    (["--dask", "local:0"], "argument --dask: expected local:N with an integer N >= 1"),
    (["--dask", "local:two"], "argument --dask: expected local:N with an integer N >= 1"),
])
def test_cli_rejects_workers_with_dask_and_bad_local(argv, message, capsys):
    from data_tools.cli import main
    with pytest.raises(SystemExit) as e:
        main(["preprocess", "in", "out"] + argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_api_rejects_workers_with_dask(scans, cfg, tmp_path):
    with pytest.raises(ValueError, match=r"workers and dask: give one of them, got workers=2 and dask='local:1'"):
        preprocess(scans, tmp_path, cfg, workers=2, dask="local:1")
    with pytest.raises(ValueError, match=r"dask: expected local:N with an integer N >= 1"):
        preprocess(scans, tmp_path, cfg, dask="local:-1")


def test_dask_is_imported_only_when_used():
    code = ("import sys, data_tools.cli, data_tools.pipeline; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "[]"

"""`sparse3d demo completion` end to end at the smallest size (2 training rooms, 1 held-out room, 2 steps): whole
rooms by default, crops with --train-on crops, each in its own folders; a second run resumes (the checkpoint is
kept) and a run folder trained on other data is refused. Quality is not checked here: docs/completion.md has the
measured table."""
import json
import os

import pytest

from sparse3d.cli import main


def test_demo_completion_smallest_run(tmp_path, capsys):
    out = str(tmp_path / "demo")
    argv = ["demo", "completion", "--out", out, "--train-scenes", "2", "--test-scenes", "1", "--steps", "2",
            "--threads", "1"]
    assert main(argv) == 0
    assert "held-out scenes: raw input vs target" in capsys.readouterr().out
    m = json.load(open(os.path.join(out, "metrics.json")))
    assert m["train_on"] == "rooms" and m["batch_size"] == 1 and m["steps"] == 2
    assert list(m["scenes"]) == ["scene0100_00"] and 0.0 <= m["scenes"]["scene0100_00"]["prediction"]["iou"] <= 1.0
    rooms = json.load(open(os.path.join(out, "samples", "rooms", "manifest.json")))
    assert rooms["placement"] == "whole" and len(rooms["splits"]["train"]) == 2 and len(rooms["splits"]["val"]) == 1
    assert json.load(open(os.path.join(out, "run", "config.json")))["data"] == os.path.join(out, "samples", "rooms")
    for f in ("predictions/scene0100_00_prediction.ply", "pictures/scene0100_00.png", "run/last.pt"):
        assert os.path.isfile(os.path.join(out, f)), f
    mtime = os.path.getmtime(os.path.join(out, "run", "last.pt"))
    assert main(argv) == 0                                                   # resumed: nothing retrained
    assert os.path.getmtime(os.path.join(out, "run", "last.pt")) == mtime
    assert main(argv + ["--train-on", "crops"]) == 0                           # its own samples and run folders
    m = json.load(open(os.path.join(out, "metrics.json")))
    assert m["train_on"] == "crops" and m["batch_size"] == 4
    crops = json.load(open(os.path.join(out, "samples", "crops", "manifest.json")))
    assert crops["placement"] == "random" and os.path.isfile(os.path.join(out, "run_crops", "last.pt"))
    cfg_path = os.path.join(out, "run", "config.json")
    cfg = json.load(open(cfg_path))
    cfg["data"] = os.path.join(out, "samples", "crops")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    with pytest.raises(SystemExit, match="holds a run trained on .*samples/crops, not on .*samples/rooms"):
        main(argv)

"""`sparse3d demo segmentation` end to end at the smallest size (2 training rooms, 1 held-out room, 2 steps of
each model): every stage runs, the submissions are scored, the pictures and metrics.json are written, and a
second run resumes (every stage's output is kept). Quality is not checked here: docs/segmentation.md has the
measured table."""
import json
import os

import pytest

from sparse3d.cli import main


def test_demo_segmentation_smallest_run(tmp_path, capsys):
    out = str(tmp_path / "demo")
    argv = ["demo", "segmentation", "--out", out, "--train-scenes", "2", "--test-scenes", "1", "--steps", "2",
            "--window-steps", "2", "--threads", "1"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "ScanNet benchmark scores over mesh vertices" in text and "sparse U-Net" in text and "sliding window" in text
    m = json.load(open(os.path.join(out, "metrics.json")))
    assert set(m["models"]) == {"sparse U-Net", "U-Net, 8 views", "+ segment vote", "sliding window"}
    assert m["test_scenes"] == ["scene0100_00"] and m["models"]["U-Net, 8 views"]["tta"] == 8
    assert m["models"]["+ segment vote"]["vote_segments"] and m["models"]["+ segment vote"]["tta"] == 8
    assert not m["models"]["U-Net, 8 views"]["vote_segments"]
    for model in m["models"].values():
        assert 0.0 <= model["scores"]["miou"] <= 1.0 and model["inference_seconds_median"] > 0
    for task in ("segmentation", "segmentation_tta8", "segmentation_tta8_vote", "segmentation-window"):
        n_vertices = sum(1 for _ in open(os.path.join(out, "ground_truth", "scene0100_00.txt")))
        assert sum(1 for _ in open(os.path.join(out, "predictions", task, "scene0100_00.txt"))) == n_vertices
        assert os.path.isfile(os.path.join(out, "scores", task, "confusion.png"))
    assert os.path.isfile(os.path.join(out, "pictures", "scene0100_00.png"))
    # resumed: the trained checkpoints are kept (the trainer resumes at its last step), the table is the same
    mtime = os.path.getmtime(os.path.join(out, "runs", "unet", "last.pt"))
    assert main(argv) == 0
    assert os.path.getmtime(os.path.join(out, "runs", "unet", "last.pt")) == mtime
    again = json.load(open(os.path.join(out, "metrics.json")))
    assert again["models"]["sparse U-Net"]["scores"]["miou"] == m["models"]["sparse U-Net"]["scores"]["miou"]


def test_room_plan_never_reuses_a_scene_or_a_seed():
    """Past 100 training rooms the demo used to generate scene0100_00.. as training rooms, and the held-out
    rooms (scene0100_00.., kept because they existed) were training rooms."""
    from sparse3d.tasks.segmentation.demo import room_plan
    for n_train, n_test, seed in ((60, 5, 0), (100, 5, 3), (101, 5, 0), (250, 20, 1), (7, 900, 0)):
        plan = room_plan(n_train, n_test, seed)
        scenes = {p: [(first + k, s * 1000 + k) for first, n, s in plan[p] for k in range(n)] for p in plan}
        assert len(scenes["train"]) == n_train and len(scenes["test"]) == n_test
        numbers = [a for p in scenes for a, _ in scenes[p]]
        seeds = [b for p in scenes for _, b in scenes[p]]
        assert len(set(numbers)) == len(numbers) and len(set(seeds)) == len(seeds)
        assert [a for a, _ in scenes["test"]] == list(range(100, 100 + n_test))
    assert room_plan(60, 5, 0)["train"] == [(0, 60, 0)]  # the documented demo's rooms are unchanged
    with pytest.raises(ValueError, match="test_scenes must be <= 900, got 901"):
        room_plan(60, 901, 0)

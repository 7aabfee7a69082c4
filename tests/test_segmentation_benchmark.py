"""The ScanNet benchmark protocol: ground-truth export (labels.ply or segs + aggregation + tsv) and the
scoring of `<scene>.txt` files (`sparse3d eval segmentation`), checked against a hand computation."""
from __future__ import annotations

import argparse
import json
import os

import numpy as np
import pytest

from data_tools.scannet.benchmark_export import (export_gt, export_scene_gt, mesh_vertex_count, read_label_file,
                                                 scene_gt_labels, write_label_file)
from data_tools.scannet.ply import read_ply
from data_tools.synthetic import RAW_TO_NYU40, generate_scenes
from sparse3d.tasks.segmentation.benchmark import (N_CLASSES, evaluate, scene_confusion, scores_from_confusion,
                                                   write_report)
from sparse3d.tasks.segmentation.benchmark_cli import register_eval
from sparse3d.utils.argtypes import polish_help
from sparse3d.utils.mesh import write_ply
from tests._data_helpers import shared_path


def _cli(argv):
    """`sparse3d export-gt ...` / `sparse3d eval segmentation ...` as sparse3d/cli.py wires them (the
    registration functions of this area, without the rest of the command tree)."""
    from data_tools.benchmark_cli import register
    parser = argparse.ArgumentParser(prog="sparse3d")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    register_eval(sub.add_parser("eval").add_subparsers(dest="task", required=True))
    args = polish_help(parser).parse_args(argv)
    return int(args.func(args) or 0)


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """Two synthetic ScanNet scene folders (few small frames: only the meshes and labels matter here)."""
    root = tmp_path_factory.mktemp("scans")
    generate_scenes(str(root), 2, seed=5, n_frames=2, width=16, height=12)
    return str(root)


def _tsv(path, table):
    """A label table in the layout of scannetv2-labels.combined.tsv (the columns LabelMap reads)."""
    rows = ["id\traw_category\tcategory\tcount\tnyu40id\tnyu40class"]
    rows += [f"{k + 1}\t{raw}\t{raw}\t1\t{nid}\tclass{nid}" for k, (raw, nid) in enumerate(sorted(table.items()))]
    with open(path, "w") as f:
        f.write("\n".join(rows) + "\n")
    return str(path)


def _copy_scene(src_dir, dst_root, keep):
    """Copy the files of a scene folder whose suffix is in `keep` into dst_root/<scene>."""
    sid = os.path.basename(src_dir)
    d = os.path.join(dst_root, sid)
    os.makedirs(d, exist_ok=True)
    for suf in keep:
        with open(os.path.join(src_dir, sid + suf), "rb") as f, open(os.path.join(d, sid + suf), "wb") as g:
            g.write(f.read())
    return d


# ---------------------------------------------------------------- ground-truth export

def test_labels_ply_and_aggregation_sources_agree(scans, tmp_path):
    tsv = _tsv(tmp_path / "labels.tsv", RAW_TO_NYU40)
    for sid in sorted(os.listdir(scans)):
        d = os.path.join(scans, sid)
        a = scene_gt_labels(d, source="labels_ply")
        b = scene_gt_labels(d, label_tsv=tsv, source="aggregation")
        n = mesh_vertex_count(os.path.join(d, sid + "_vh_clean_2.ply"))
        assert n == len(read_ply(os.path.join(d, sid + "_vh_clean_2.ply")).vertices)
        assert a.shape == b.shape == (n,)
        np.testing.assert_array_equal(a, b)
        assert len(set(a.tolist()) - {0}) >= 3  # a real labelling, not zeros
        path = export_scene_gt(d, str(tmp_path / "one"), label_tsv=tsv, source="aggregation")
        assert path == str(tmp_path / "one" / f"{sid}.txt")
        np.testing.assert_array_equal(read_label_file(path, n_expected=n), a)


def test_aggregation_with_the_real_tsv_matches_labels_ply(scans):
    tsv = shared_path("scannet", "scannetv2-labels.combined.tsv")
    d = os.path.join(scans, sorted(os.listdir(scans))[0])
    np.testing.assert_array_equal(scene_gt_labels(d, label_tsv=tsv, source="aggregation"),
                                  scene_gt_labels(d, source="labels_ply"))


def test_vertices_in_no_group_get_zero(scans, tmp_path):
    src = os.path.join(scans, sorted(os.listdir(scans))[0])
    d = _copy_scene(src, str(tmp_path), ["_vh_clean_2.ply", "_vh_clean_2.0.010000.segs.json", ".aggregation.json"])
    sid = os.path.basename(d)
    agg_path = os.path.join(d, sid + ".aggregation.json")
    with open(agg_path) as f:
        agg = json.load(f)
    dropped = agg["segGroups"].pop(0)  # the first object loses its annotation
    with open(agg_path, "w") as f:
        json.dump(agg, f)
    segs = np.asarray(json.load(open(os.path.join(d, sid + "_vh_clean_2.0.010000.segs.json")))["segIndices"])
    labels = scene_gt_labels(d, label_tsv=_tsv(tmp_path / "l.tsv", RAW_TO_NYU40))
    in_dropped = np.isin(segs, dropped["segments"])
    assert in_dropped.any() and (labels[in_dropped] == 0).all()
    assert (labels[~in_dropped] > 0).any()


def test_export_writes_one_line_per_vertex_atomically_and_resumes(scans, tmp_path):
    out = str(tmp_path / "gt")
    s = export_gt(scans, out, progress=False)
    sids = sorted(os.listdir(scans))
    assert s == {"done": sids, "skipped": [], "failed": {}}
    assert sorted(os.listdir(out)) == [f"{sid}.txt" for sid in sids]  # no temp files left behind
    for sid in sids:
        d = os.path.join(scans, sid)
        ids = read_label_file(os.path.join(out, sid + ".txt"))
        np.testing.assert_array_equal(ids, read_ply(os.path.join(d, sid + "_vh_clean_2.labels.ply")).labels)
    # resumable: done scenes are skipped, even when their file is stale, unless overwrite
    stale = os.path.join(out, sids[0] + ".txt")
    with open(stale, "w") as f:
        f.write("1\n")
    assert export_gt(scans, out, progress=False) == {"done": [], "skipped": sids, "failed": {}}
    assert open(stale).read() == "1\n"
    assert export_gt(scans, out, scenes=[sids[0]], overwrite=True, progress=False)["done"] == [sids[0]]
    assert len(read_label_file(stale)) > 1


def test_export_errors_name_the_file(scans, tmp_path):
    src = os.path.join(scans, sorted(os.listdir(scans))[0])
    sid = os.path.basename(src)
    # a labels.ply with fewer vertices than the mesh
    d = _copy_scene(src, str(tmp_path / "a"), ["_vh_clean_2.ply"])
    m = read_ply(os.path.join(src, sid + "_vh_clean_2.labels.ply"))
    bad = os.path.join(d, sid + "_vh_clean_2.labels.ply")
    write_ply(bad, m.vertices[:-1], m.faces[:1], labels=m.labels[:-1])
    with pytest.raises(ValueError, match=rf"{sid}_vh_clean_2.labels.ply: has {len(m.labels) - 1} vertices, but the "
                                         rf"mesh .*{sid}_vh_clean_2.ply has {len(m.labels)}"):
        scene_gt_labels(d)
    # no mesh at all
    d2 = _copy_scene(src, str(tmp_path / "b"), ["_vh_clean_2.labels.ply"])
    with pytest.raises(FileNotFoundError, match=rf"{sid}_vh_clean_2.ply: scene mesh"):
        scene_gt_labels(d2)
    # aggregation without a tsv, with a tsv missing a raw category, with a missing segs file
    d3 = _copy_scene(src, str(tmp_path / "c"), ["_vh_clean_2.ply", "_vh_clean_2.0.010000.segs.json",
                                                ".aggregation.json"])
    with pytest.raises(ValueError, match="needs the label table"):
        scene_gt_labels(d3)
    partial = {k: v for k, v in RAW_TO_NYU40.items() if k != "wall"}
    with pytest.raises(ValueError, match=r"aggregation.json: raw categories \['wall'\] are not in the label table"):
        scene_gt_labels(d3, label_tsv=_tsv(tmp_path / "p.tsv", partial))
    os.remove(os.path.join(d3, sid + "_vh_clean_2.0.010000.segs.json"))
    with pytest.raises(FileNotFoundError, match="segs.json: over-segmentation"):
        scene_gt_labels(d3, label_tsv=_tsv(tmp_path / "f.tsv", RAW_TO_NYU40))
    # a batch goes on past a failed scene and reports it
    root = tmp_path / "root"
    _copy_scene(src, str(root), ["_vh_clean_2.ply"])  # no labels of any kind
    other = os.path.join(scans, sorted(os.listdir(scans))[1])
    _copy_scene(other, str(root), ["_vh_clean_2.ply", "_vh_clean_2.labels.ply"])
    s = export_gt(str(root), str(tmp_path / "out"), progress=False)
    assert s["done"] == [os.path.basename(other)] and list(s["failed"]) == [sid]
    assert "segs.json" in s["failed"][sid]


def test_export_gt_command(scans, tmp_path, capsys):
    out = str(tmp_path / "gt")
    assert _cli(["export-gt", scans, out, "--quiet"]) == 0
    assert "2 written" in capsys.readouterr().out
    assert _cli(["export-gt", scans, out, "--quiet", "--source", "aggregation"]) == 0  # resumed: nothing to do
    assert "2 skipped" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        _cli(["export-gt", scans, out, "--source", "mesh"])
    assert e.value.code == 2


# ---------------------------------------------------------------- label files

def test_label_file_round_trip_and_errors(tmp_path):
    p = str(tmp_path / "s.txt")
    write_label_file(p, np.array([0, 1, 40, 39], np.uint16))
    assert open(p).read() == "0\n1\n40\n39\n"
    np.testing.assert_array_equal(read_label_file(p, n_expected=4), [0, 1, 40, 39])
    with pytest.raises(ValueError, match=r"s.txt: has 4 lines, expected 5"):
        read_label_file(p, n_expected=5)
    for text, msg in (("1\n2\nchair\n", r"line 3 must be an integer id, got 'chair'"),
                      ("1\n2.5\n", r"line 2 must be an integer id, got '2.5'"),
                      ("1\n\n3\n", r"line 2 must be an integer id, got ''"),
                      ("1\n41\n-1\n", r"line 2 must be an id in \[0, 40\], got 41 \(2 lines out of range\)")):
        with open(p, "w") as f:
            f.write(text)
        with pytest.raises(ValueError, match=r"s.txt: " + msg):
            read_label_file(p)
    with open(p, "w") as f:
        f.write("3\r\n4")  # Windows line ends and no final newline are fine
    np.testing.assert_array_equal(read_label_file(p), [3, 4])


# ---------------------------------------------------------------- scoring

# scene A: gt / pred nyu40 ids. wall=1, floor=2, cabinet=3, chair=5, table=7; 0 and 13 (pillow) are not benchmark
# classes (ignored as gt); 0 and 40 as predictions are misses.
GT_A = [1, 1, 1, 1, 2, 2, 2, 5, 0, 13]
PRED_A = [1, 1, 2, 0, 2, 2, 1, 5, 1, 1]
GT_B = [5, 5, 5, 7, 7, 7, 1]
PRED_B = [5, 5, 40, 5, 7, 3, 1]


def _write_pair(tmp_path):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    for d, a, b in ((gt, GT_A, GT_B), (pred, PRED_A, PRED_B)):
        d.mkdir()
        write_label_file(str(d / "sceneA.txt"), np.array(a))
        write_label_file(str(d / "sceneB.txt"), np.array(b))
    return str(pred), str(gt)


def test_evaluate_equals_a_hand_computation(tmp_path):
    """By hand, over the 15 vertices whose gt is a benchmark class (A: 8, B: 7):
    wall   TP 3 (A0, A1, B6), FN 2 (A2 -> floor, A3 -> 0), FP 1 (A6: floor gt; A8 has gt 0: not counted) -> 3/6
    floor  TP 2 (A4, A5), FN 1 (A6 -> wall), FP 1 (A2)                                               -> 2/4
    chair  TP 3 (A7, B0, B1), FN 1 (B2 -> 40: a miss), FP 1 (B3: table gt)                          -> 3/5
    table  TP 1 (B4), FN 2 (B3 -> chair, B5 -> cabinet), FP 0                                       -> 1/3
    cabinet: not in the gt (1 FP, B5): not present. The other 15 classes: not present.
    mIoU = (1/2 + 1/2 + 3/5 + 1/3) / 4 = 29/60; accuracy = (3 + 2 + 3 + 1) / 15 = 3/5."""
    pred, gt = _write_pair(tmp_path)
    s = evaluate(pred, gt)
    wall, floor, cabinet, chair, table = 0, 1, 2, 4, 6
    assert s.scenes == ["sceneA", "sceneB"] and s.n_vertices == 15
    for c, (tp, fp, fn, iou) in {wall: (3, 1, 2, 1 / 2), floor: (2, 1, 1, 1 / 2), chair: (3, 1, 1, 3 / 5),
                                 table: (1, 0, 2, 1 / 3)}.items():
        assert (s.tp[c], s.fp[c], s.fn[c]) == (tp, fp, fn)
        assert s.iou[c] == pytest.approx(iou)
    assert s.present.tolist() == [c in (wall, floor, chair, table) for c in range(N_CLASSES)]
    assert s.fp[cabinet] == 1 and np.isnan(s.iou[cabinet])
    assert s.miou == pytest.approx(29 / 60)
    assert s.accuracy == pytest.approx(3 / 5)
    expected = np.zeros((N_CLASSES, N_CLASSES), np.int64)
    expected[wall, wall], expected[wall, floor] = 3, 1
    expected[floor, floor], expected[floor, wall] = 2, 1
    expected[chair, chair] = 3
    expected[table, table], expected[table, chair], expected[table, cabinet] = 1, 1, 1
    np.testing.assert_array_equal(s.confusion, expected)
    other = np.zeros(N_CLASSES, np.int64)
    other[wall], other[chair] = 1, 1
    np.testing.assert_array_equal(s.other, other)
    # the same from the summed per-scene counts
    c = scene_confusion(np.array(GT_A), np.array(PRED_A)) + scene_confusion(np.array(GT_B), np.array(PRED_B))
    assert scores_from_confusion(c).miou == pytest.approx(29 / 60)
    table_text = s.format_table()
    assert "cabinet" in table_text and "not present" in table_text and "mIoU 0.483 over 4 classes" in table_text
    assert len(table_text.splitlines()) == N_CLASSES + 2  # header, every class, summary


def test_report_json_and_png(tmp_path):
    pred, gt = _write_pair(tmp_path)
    paths = write_report(evaluate(pred, gt), str(tmp_path / "rep"))
    d = json.load(open(paths["json"]))
    assert d["miou"] == pytest.approx(29 / 60) and d["accuracy"] == pytest.approx(0.6)
    assert len(d["classes"]) == N_CLASSES and d["classes"]["cabinet"]["iou"] is None
    assert d["classes"]["table"] == {"nyu40": 7, "present": True, "iou": pytest.approx(1 / 3), "tp": 1, "fp": 0,
                                     "fn": 2, "gt_vertices": 3}
    with open(paths["png"], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert sorted(os.listdir(tmp_path / "rep")) == ["confusion.png", "segmentation_eval.json"]


def test_evaluate_errors_name_the_file(tmp_path):
    pred, gt = _write_pair(tmp_path)
    write_label_file(os.path.join(pred, "sceneA.txt"), np.array(PRED_A[:-1]))
    with pytest.raises(ValueError, match=r"pred.sceneA.txt: has 9 lines, expected 10"):
        evaluate(pred, gt)
    with open(os.path.join(pred, "sceneA.txt"), "w") as f:
        f.write("\n".join(map(str, PRED_A[:4] + [41] + PRED_A[5:])) + "\n")
    with pytest.raises(ValueError, match=r"sceneA.txt: line 5 must be an id in \[0, 40\], got 41"):
        evaluate(pred, gt)
    os.remove(os.path.join(pred, "sceneA.txt"))
    with pytest.raises(FileNotFoundError, match=r"no prediction file for 1 ground-truth scenes: sceneA.txt"):
        evaluate(pred, gt)
    assert evaluate(pred, gt, scenes=["sceneB"]).n_vertices == 7  # a subset of the gt scenes


def test_eval_segmentation_command(tmp_path, capsys):
    pred, gt = _write_pair(tmp_path)
    out = str(tmp_path / "report")
    assert _cli(["eval", "segmentation", pred, gt, "--out", out, "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "mIoU 0.483" in text and "accuracy 0.600" in text
    assert sorted(os.listdir(out)) == ["confusion.png", "segmentation_eval.json"]
    os.remove(os.path.join(pred, "sceneB.txt"))
    assert _cli(["eval", "segmentation", pred, gt, "--quiet"]) == 2
    assert "sceneB.txt" in capsys.readouterr().err

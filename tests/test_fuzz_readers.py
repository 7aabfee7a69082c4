"""Fuzzing of every file reader: `.sens`, PLY meshes and labels, segs / aggregation JSON, the label tsv,
RGB-D folders, crop `.npz` files and checkpoints.

Valid seed files are made by the project's own writers (data_tools.synthetic.writer.generate_scene,
SensReader.export, chunks.crop_from_dense + save_crop, train.checkpoint.save_checkpoint); hypothesis
then truncates them, flips bits, overwrites bytes, and sets header fields to absurd values (a `.sens`
claiming 10^12 frames or 4-billion-pixel images, a PLY with 10^15 vertices, an npz member claiming
terabytes, JSON nested 10^5 deep). Each case runs in the child process of tests/fuzz_long.py. The rule:
the reader succeeds or raises an exception that names the file; never a signal, a hang (CASE_TIMEOUT_S)
or a MemoryError (a huge allocation: the worker runs under an address-space limit).
"""
from __future__ import annotations

import os
import shutil
import struct
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fuzz_long  # noqa: E402  (beside this file; not a package)

READERS = ("sens", "ply", "labels_ply", "segs", "aggregation", "tsv", "rgbd", "crop", "checkpoint")
_TSV = ("id\traw_category\tcategory\tcount\tnyu40id\tnyu40class\n1\twall\twall\t8277\t1\twall\n"
        "2\tchair\tchair\t4646\t5\tchair\n3\tbooks\tbook\t1678\t23\tbooks\n")


# ---- seeds (parent side, once) ----------------------------------------------------------------------
def make_seed_files(root: Path) -> Dict[str, str]:
    """Valid files of every reader under ``root``, written by the project's writers; reader -> path."""
    import numpy as np
    import torch

    from data_tools.chunks import crop_from_dense, save_crop
    from data_tools.scannet.sens import SensReader
    from data_tools.synthetic.writer import generate_scene
    from sparse3d.train.checkpoint import save_checkpoint

    root = Path(root)
    scene = Path(generate_scene(root / "scans", "scene0000_00", seed=0, n_frames=2, width=16, height=12))
    s = "scene0000_00"
    with SensReader(scene / f"{s}.sens") as r:
        r.export(root / "rgbd")
    (root / "labels.tsv").write_text(_TSV)
    t = np.linspace(-3, 3, 4 * 4 * 4, dtype=np.float32).reshape(4, 4, 4)
    known = np.ones((4, 4, 4), bool)
    save_crop(root / "crop.npz", crop_from_dense(t, known, -t, known, voxel_size=0.05, trunc_voxels=2.0))
    save_checkpoint(str(root / "ckpt.pt"), {"model": {"w": torch.ones(2, 3)}, "config": {"lr": 0.1}, "step": 1},
                    task="completion")
    return {"sens": str(scene / f"{s}.sens"), "ply": str(scene / f"{s}_vh_clean_2.ply"),
            "labels_ply": str(scene / f"{s}_vh_clean_2.labels.ply"),
            "segs": str(scene / f"{s}_vh_clean_2.0.010000.segs.json"),
            "aggregation": str(scene / f"{s}.aggregation.json"), "tsv": str(root / "labels.tsv"),
            "rgbd": str(root / "rgbd"), "crop": str(root / "crop.npz"), "checkpoint": str(root / "ckpt.pt")}


# ---- cases ----------------------------------------------------------------------------------------------
_BIG = [0, 1, 2**15 + 1, 2**31, 2**32 - 1, 10**12, 2**63, 2**64 - 1]
# .sens header fields after the sensor name: (offset from the end of the name, struct format)
_SENS_FIELDS = {"version": (-12, "<I"), "name_length": (-8, "<Q"), "color_compression": (256, "<i"),
                "depth_compression": (260, "<i"), "color_width": (264, "<I"), "color_height": (268, "<I"),
                "depth_width": (272, "<I"), "depth_height": (276, "<I"), "depth_shift": (280, "<f"),
                "n_frames": (284, "<Q"), "frame0_color_bytes": (292 + 80, "<Q"), "frame0_depth_bytes": (292 + 88, "<Q")}
_TEXT_EDITS = [  # (find, replace) applied to text files (PLY header, JSON, tsv)
    ("element vertex ", "element vertex 999999999999999"), ("element vertex ", "element vertex -"),
    ("element face ", "element face 99999999999"), ("property float x", "property float x\nproperty float x"),
    ("property float", "property quad"), ("list uchar int", "list float int"), ("list uchar int", "list int int"),
    ("end_header", "end_hdr"), ("binary_little_endian", "ascii"), ("\"segIndices\"", "\"segIndicez\""),
    ("\"segIndices\": [", "\"segIndices\": [1e400, "), ("\"segIndices\": [", "\"segIndices\": [[1, 2], "),
    ("\"segIndices\": [", "\"segIndices\": [\"x\", "), ("\"segments\": [", "\"segments\": [99999999999999999999, "),
    ("\"objectId\": ", "\"objectId\": null, \"x\": "), ("\"label\": ", "\"label\": {}, \"y\": "),
    ("nyu40id", "nyu40_id"), ("\t5\t", "\tfive\t"), ("\t5\t", "\t99999\t"), ("wall", "wa\x00ll"),
    ("chair", "\"chair"), ("\n", "\r"),
]
_STRUCTURED = ["deep_json", "npz_huge_member", "npz_crop_size", "npz_mask_length", "npz_coords_range",
               "npz_object_member", "ckpt_future_version", "ckpt_pickle", "delete_file", "empty_file", "directory"]


def _mutation():
    frac = st.floats(0, 1, allow_nan=False)
    byte_edits = st.fixed_dictionaries({
        "truncate": st.one_of(st.none(), frac),
        "flips": st.lists(st.tuples(frac, st.integers(0, 7)), max_size=8),
        "sets": st.lists(st.tuples(frac, st.sampled_from([b"\xff" * 8, b"\x00" * 8, b"\x7f\xff\xff\xff"]).map(
            lambda b: b.hex())), max_size=3)})
    field = st.fixed_dictionaries({"sens_field": st.sampled_from(sorted(_SENS_FIELDS)),
                                   "value": st.sampled_from(_BIG + [-1, 2**31 - 1])})
    text = st.fixed_dictionaries({"text_edit": st.integers(0, len(_TEXT_EDITS) - 1)})
    structured = st.fixed_dictionaries({"structured": st.sampled_from(_STRUCTURED)})
    return st.one_of(byte_edits, byte_edits, field, text, structured)


def reader_cases(seeds: Dict[str, str] | None = None):
    """Strategy of one reader case; ``seeds`` (reader -> seed path) default to the ones made by the long run."""
    return st.fixed_dictionaries({"kind": st.just("reader"), "reader": st.sampled_from(READERS),
                                  "mutation": _mutation(), "file_pick": st.integers(0, 10**6),
                                  "seeds": st.just(seeds or _long_run_seeds())})


_SEEDS_CACHE: Dict[str, Dict[str, str]] = {}


def _long_run_seeds() -> Dict[str, str]:
    if "long" not in _SEEDS_CACHE:
        _SEEDS_CACHE["long"] = make_seed_files(Path(tempfile.mkdtemp(prefix="s3d_fuzz_seeds_")))
    return _SEEDS_CACHE["long"]


# ---- child side -----------------------------------------------------------------------------------------
def _apply_bytes(data: bytes, m: Dict[str, Any]) -> bytes:
    b = bytearray(data)
    if m.get("truncate") is not None:
        b = b[:int(m["truncate"] * len(b))]
    for frac, bit in m.get("flips", []):
        if b:
            b[min(int(frac * len(b)), len(b) - 1)] ^= 1 << bit
    for frac, hexval in m.get("sets", []):
        v = bytes.fromhex(hexval)
        if len(b) >= len(v):
            i = min(int(frac * len(b)), len(b) - len(v))
            b[i:i + len(v)] = v
    return bytes(b)


def _sens_field(data: bytes, name: str, value: int) -> bytes:
    (n,) = struct.unpack_from("<Q", data, 4)
    off, fmt = _SENS_FIELDS[name]
    pos = 12 + n + off
    kind = fmt[1]
    if kind == "f":
        raw = struct.pack(fmt, [float("nan"), float("inf"), -1.0, 0.0, 1e-30][value % 5])
    else:
        lo, hi = {"I": (0, 2**32 - 1), "i": (-(2**31), 2**31 - 1), "Q": (0, 2**64 - 1)}[kind]
        raw = struct.pack(fmt, min(max(value, lo), hi))
    b = bytearray(data)
    if pos + len(raw) <= len(b):
        b[pos:pos + len(raw)] = raw
    return bytes(b)


def _structured(target: Path, what: str) -> None:
    import io
    import zipfile

    import numpy as np
    import torch

    if what == "deep_json":
        target.write_text("[" * 100000 + "]" * 100000)
    elif what == "delete_file":
        target.unlink()
    elif what == "empty_file":
        target.write_bytes(b"")
    elif what == "directory":
        target.unlink()
        target.mkdir()
    elif what.startswith("npz_"):
        if what == "npz_huge_member":  # a valid zip whose .npy header claims 2^40 float64
            hdr = io.BytesIO()
            np.lib.format.write_array_header_1_0(hdr, {"descr": "<f8", "fortran_order": False,
                                                       "shape": (2**40,)})
            with zipfile.ZipFile(target, "a") as z:
                z.writestr("target_known.npy", hdr.getvalue() + b"\0" * 64)
            return
        with np.load(target, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
        if what == "npz_crop_size":
            d["crop_size"] = np.array([10**6, 10**6, 10**6], np.int64)
        elif what == "npz_mask_length":
            d["input_known"] = np.zeros(10**6, np.uint8)
        elif what == "npz_coords_range":
            d["target_coords"] = d["target_coords"] + 1000
        elif what == "npz_object_member":
            buf = io.BytesIO()
            np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
            with zipfile.ZipFile(target, "a") as z:
                z.writestr("scene_id.npy", buf.getvalue())
            return
        np.savez(target, **d)
        if target.suffix != ".npz":
            os.replace(str(target) + ".npz", target)
    elif what == "ckpt_future_version":
        torch.save({"model": {}, "config": {}, "format_version": 99, "task": "completion"}, target)
    elif what == "ckpt_pickle":
        import pickle

        target.write_bytes(pickle.dumps({"model": os.getcwd}, protocol=2))


def _mutate(path: Path, m: Dict[str, Any]) -> None:
    if "structured" in m:
        if m["structured"].startswith("npz_") and path.suffix != ".npz":
            path.write_bytes(_apply_bytes(path.read_bytes(), {"truncate": 0.5}))  # only npz files have members
        else:
            _structured(path, m["structured"])
    elif "sens_field" in m:
        path.write_bytes(_sens_field(path.read_bytes(), m["sens_field"], m["value"]) if path.suffix == ".sens"
                         else _apply_bytes(path.read_bytes(), {"flips": [(0.5, 3)]}))
    elif "text_edit" in m:
        find, repl = _TEXT_EDITS[m["text_edit"]]
        data = path.read_bytes()
        path.write_bytes(data.replace(find.encode(), repl.encode(), 1) if find.encode() in data
                         else _apply_bytes(data, {"truncate": 0.5}))
    else:
        path.write_bytes(_apply_bytes(path.read_bytes(), m))


def _read(reader: str, path: Path) -> None:
    """Calls the reader of ``path`` and touches everything it returns."""
    if reader == "sens":
        from data_tools.scannet.sens import SensReader

        with SensReader(path) as r:
            for i in range(min(len(r), 3)):
                r.frame(i)
    elif reader in ("ply", "labels_ply"):
        from data_tools.scannet.ply import read_ply

        read_ply(path)
    elif reader == "segs":
        from data_tools.scannet.labels import read_segs

        read_segs(path)
    elif reader == "aggregation":
        from data_tools.scannet.labels import read_aggregation

        read_aggregation(path)
    elif reader == "tsv":
        from data_tools.scannet.labels import LabelMap

        m = LabelMap.from_tsv(path)
        for raw in m.rows:
            m.scannet20(raw)
            m.raw_categories_for_nyu40(m.nyu40(raw))
    elif reader == "rgbd":
        from data_tools.scannet.rgbd_folder import RGBDFolder

        f = RGBDFolder(path)
        for k in range(len(f)):
            f.frame(k)
    elif reader == "crop":
        from data_tools.chunks import dense_volumes, load_crop

        dense_volumes(load_crop(path))
    elif reader == "checkpoint":
        from sparse3d.train.checkpoint import load_checkpoint

        load_checkpoint(str(path), require=("model",))
    else:
        raise ValueError(f"unknown reader {reader!r}")


def run_reader_case(case: Dict[str, Any]) -> None:
    """Child side: copy the seed to a fresh folder, mutate it, read it (errors as fuzz_long._Raised)."""
    seed = Path(case["seeds"][case["reader"]])
    work = Path(tempfile.mkdtemp(prefix="s3d_fuzz_"))
    try:
        dst = work / seed.name
        if seed.is_dir():
            shutil.copytree(seed, dst)
            files = sorted(p for p in dst.rglob("*") if p.is_file())
            target = files[case["file_pick"] % len(files)]
        else:
            shutil.copy(seed, dst)
            target = dst
        _mutate(target, case["mutation"])
        fuzz_long._call(f"read {case['reader']}", f"{work} {target.name}", _read, case["reader"], dst)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---- the tests ------------------------------------------------------------------------------------------
SHORT = settings(derandomize=True, max_examples=120, deadline=None, database=None,
                 suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return make_seed_files(tmp_path_factory.mktemp("fuzz_seeds"))


@pytest.fixture(scope="module")
def worker():
    w = fuzz_long.Worker()
    yield w
    w.close()


def test_seed_files_are_read_cleanly(worker, seeds):
    """The unmutated seeds load: the fuzzer starts from valid files (so its errors come from the damage)."""
    for reader in READERS:
        case = {"kind": "reader", "reader": reader, "mutation": {"flips": []}, "file_pick": 0, "seeds": seeds}
        assert worker.run(case) == {"outcome": "ok", "succeeded": [f"read {reader}"], "raised": []}, reader


@pytest.mark.parametrize("reader,mutation", [
    ("sens", {"sens_field": "n_frames", "value": 10**12}),
    ("sens", {"sens_field": "color_width", "value": 2**32 - 1}),
    ("sens", {"sens_field": "frame0_depth_bytes", "value": 2**63}),
    ("ply", {"text_edit": 0}),
    ("crop", {"structured": "npz_huge_member"}),
    ("crop", {"structured": "npz_crop_size"}),
    ("segs", {"structured": "deep_json"}),
    ("checkpoint", {"structured": "ckpt_future_version"}),
])
def test_oversized_headers_are_rejected_naming_the_file(worker, seeds, reader, mutation):
    """Headers that claim huge sizes fail with an error naming the file, before any allocation of that size."""
    case = {"kind": "reader", "reader": reader, "mutation": mutation, "file_pick": 0, "seeds": seeds}
    res = worker.run(case)
    assert res["outcome"] == "error" and res["type"] != "MemoryError", res
    problem = fuzz_long.check_outcome(case, res, reader=True)
    assert problem is None, problem


@given(data=st.data())
@SHORT
def test_damaged_files_raise_errors_naming_the_file(worker, seeds, data):
    case = data.draw(reader_cases(seeds))
    res = worker.run(case, timeout=30)
    problem = fuzz_long.check_outcome(case, res, reader=True)
    assert problem is None, problem

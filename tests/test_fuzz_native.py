"""Fuzzing of every sparse3d._C entry point and the Python API above it that takes user coordinates.

Hypothesis draws arguments (coordinates huge/negative/int64/float/non-contiguous/duplicated/empty,
mismatched shapes, dtypes and devices ('meta' tensors stand in for a wrong device on a CPU machine),
kernel/stride/tile/chunk extremes, fusion depth and poses with NaN/inf, back-projection views); each
case runs in one long-lived child process (tests/fuzz_long.py: Worker), so a segfault or a hang is
a test failure naming the case, not the end of pytest. The rule (fuzz_long.check_outcome): success,
or RuntimeError/ValueError/TypeError/IndexError... whose message names an argument of the call.

Short and seeded (derandomize=True); scripts/fuzz.sh runs the same cases for minutes.
"""
import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fuzz_long  # noqa: E402  (beside this file; not a package)
import fuzz_native_cases  # noqa: E402

from sparse3d import _C  # noqa: E402

SHORT = settings(derandomize=True, max_examples=150, deadline=None, database=None,
                 suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def worker():
    w = fuzz_long.Worker()
    yield w
    w.close()


@SHORT
@given(case=fuzz_native_cases.native_cases())
def test_native_entry_points_raise_named_errors_never_crash(worker, case):
    res = worker.run(case)
    problem = fuzz_long.check_outcome(case, res)
    assert problem is None, problem


def test_every_entry_point_of_the_extension_is_fuzzed():
    """New bindings must get cases: each function and bound method of _C appears in the harness."""
    src = Path(fuzz_native_cases.__file__).read_text()
    missing = []
    for sub in ("hash", "kmap", "conv", "fusion", "project", "octree"):
        mod = getattr(_C, sub, None)
        if mod is None:
            continue
        for name in dir(mod):
            obj = getattr(mod, name)
            if name.startswith("_") or not callable(obj):
                continue
            if isinstance(obj, type):  # bound classes: their methods
                for meth in dir(obj):
                    if not meth.startswith("_") and callable(getattr(obj, meth)) and f".{meth}" not in src:
                        missing.append(f"{sub}.{name}.{meth}")
                continue
            if f"_C.{sub}.{name}" not in src:
                missing.append(f"{sub}.{name}")
    assert not missing, f"entry points of sparse3d._C without fuzz cases in tests/fuzz_native_cases.py: {missing}"


def test_harness_reports_a_crash_as_a_failure(worker):
    """The worker turns a signal in the child into a 'crash' outcome (and restarts for the next case)."""
    res = worker.run({"kind": "native", "op": "__crash__"})
    # unknown ops raise ValueError in the child outside any named call: reported, not a crash
    assert res["outcome"] == "error" and res["type"] == "ValueError" and res["call"] == "harness"
    assert fuzz_long.check_outcome({}, res) is not None
    if not os.environ.get("S3D_ASAN"):  # under scripts/asan_check.sh the segfault would be a sanitizer report
        res = worker.run({"kind": "selftest", "reader": "segfault"})
        assert res["outcome"] == "crash" and res["returncode"] != 0, res
        assert "fuzz case" in res["stderr"]
    ok = worker.run({"op": "hash", "coords": {"shape": [1, 4], "dtype": "int32", "values": [0]},
                     "query": {"shape": [1, 4], "dtype": "int32", "values": [0]}})
    assert ok == {"outcome": "ok", "succeeded": ["hash.build", "CoordHashTable.lookup"], "raised": []}


def _t(shape, dtype="int32", values=(0,), device="cpu"):
    return {"shape": list(shape), "dtype": dtype, "values": list(values), "device": device, "noncontig": False}


_K = [6.0, 0, 5, 0, 6, 5, 0, 0, 1]
_FUSION = {"op": "fusion", "voxel_size": 0.05, "trunc_voxels": 3.0, "block_res": 8, "with_color": False,
           "depth": _t([8, 8], "float32", [1.0]), "color": _t([0], "uint8"), "intrinsic": _t([3, 3], "float64", _K),
           "pose": _t([4, 4], "float64", [1.0, 0, 0, 0, 0]), "depth_max": 3.0, "touch_stride": 1, "threads": 0,
           "min_weight": 0.0, "max_abs": 1.0, "coords": _t([2, 3]), "trunc": 0.1, "depth_scale": 1000.0,
           "origin": _t([3], "int64"), "dims": _t([3], "int64", [2]), "n_frames": 1}
_CONV = {"op": "conv", "feats": _t([3, 2], "float32", [1.0]), "weight": _t([1, 2, 2], "float32", [1.0]),
         "grad_out": _t([3, 2], "float32", [1.0]), "nbr": _t([3, 1], "int32", [0, 1, 2]), "n_in": 3, "tile": 16,
         "chunk": 0, "c_in": 2, "c_out": 2, "sort_rows": True, "emulate": False, "simd": "auto"}


@pytest.mark.parametrize("case,call,message", [
    # each of these ended the process (or looped without end) before the checks added for issue 23
    ({**_FUSION, "threads": 2**32}, "TSDFVolume.integrate", "threads: expected in [0, 1024]"),
    ({**_FUSION, "dims": _t([3], "int64", [2**62, 2**62, 4])}, "fusion.observed_grid", "dims: expected sizes"),
    ({**_FUSION, "coords": _t([2, 3], device="meta")}, "fusion.visibility", "coords: expected a CPU tensor"),
    ({**_CONV, "chunk": 2**63 - 1}, "conv.implicit_chunks", "chunk must be in"),
    ({**_CONV, "tile": 2**62}, "conv.forward", "tile must be in [1, 1048576]"),
    # found by scripts/fuzz.sh: pairs(n_in=2**40).swapped() made forward_pairs allocate 2**40 output rows
    ({**_CONV, "n_in": 2**40, "sort_rows": False}, "conv.pairs", "n_in must be in [0, 2147483647]"),
    ({**_CONV, "feats": _t([3, 2], "float32", device="meta"), "weight": _t([1, 2, 2], "float32", device="meta"),
      "nbr": _t([3, 1], device="meta")}, "conv.forward", "feats must be a CPU or CUDA tensor, got device meta"),
    ({"op": "hash", "coords": _t([3, 4], device="meta"), "query": _t([1, 4])}, "hash.build",
     "coords must be a CPU or CUDA tensor"),
    ({"op": "kmap", "query": _t([2, 4], device="meta"), "table": _t([2, 4]), "mul": 1,
      "offsets": _t([1, 3]), "n_in": 2}, "kmap.sort_coords", "coords must be a CPU or CUDA tensor"),
])
def test_inputs_that_crashed_now_raise_named_errors(worker, case, call, message):
    res = worker.run(case)
    raised = [r for r in res.get("raised", []) if r["call"] == call]
    assert raised and message in raised[0]["msg"], res
    assert fuzz_long.check_outcome(case, res) is None


def test_threads_extreme_fusion_segfault_is_fixed_in_process():
    """The first crash the fuzzer found (TSDFVolume.integrate, threads=2**32: an OpenMP team of 0 threads,
    then local[tid] out of bounds) raises in this very process now."""
    import torch

    v = _C.fusion.TSDFVolume(0.05, 3.0, 8, False)
    k = torch.tensor([[6.0, 0, 4], [0, 6, 4], [0, 0, 1]], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"threads: expected in \[0, 1024\]"):
        v.integrate(torch.ones(8, 8), torch.empty(0), k, torch.eye(4, dtype=torch.float64), 3.0, 1, 2**32)
    assert v.integrate(torch.ones(8, 8), torch.empty(0), k, torch.eye(4, dtype=torch.float64), 3.0, 1, 2) > 0


def test_python_layer_meta_coords_name_the_argument():
    import torch

    import sparse3d as s3d

    with pytest.raises((ValueError, TypeError), match="coords"):
        s3d.SparseTensor(torch.zeros(2, 4, dtype=torch.int32, device="meta"), torch.zeros(2, 1))

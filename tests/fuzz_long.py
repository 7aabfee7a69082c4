"""Fuzzing harness of sparse3d: the child-process worker, the native-op cases and the long run.

Every risky call runs in a child process (:class:`Worker`), so a crash of the C++ extension (a
signal) or a hang becomes a failure of the parent instead of killing it. The child reads one JSON
case per line on stdin and answers one JSON line per case:

    {"outcome": "ok" | "error", "call": <the call that raised>, "names": <its argument names>,
     "type": <exception class>, "msg": <first line of the message>}

and announces each case on stderr before running it, so a crash names the case that caused it.

Cases are plain JSON made by hypothesis strategies in the parent (:func:`native_cases`; the file
readers' cases are in tests/test_fuzz_readers.py). A tensor is described by a dict
``{"shape", "dtype", "device", "values", "noncontig"}`` and made in the child by :func:`make_tensor`.

The rule every case is checked against (:func:`check_outcome`): the call succeeds, or raises one of
ALLOWED_ERRORS whose message names one of the arguments of the call that raised (or the file).

Long run (scripts/fuzz.sh)::

    python tests/fuzz_long.py --minutes 10 [--seed 0] [--native] [--readers]

prints how many inputs of each kind were tried and what happened (ok / which exception), and exits 1
on any crash, hang or unnamed error.
"""
from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from hypothesis import strategies as st

ALLOWED_ERRORS = ("RuntimeError", "ValueError", "TypeError", "IndexError", "FileNotFoundError",
                  "NotImplementedError", "OSError", "EOFError", "MemoryError", "KeyError",
                  "UnpicklingError", "IsADirectoryError", "PermissionError", "BadZipFile", "UnicodeDecodeError",
                  "JSONDecodeError", "OverflowError")
CASE_TIMEOUT_S = 60.0  # a case running longer than this counts as a hang
START_TIMEOUT_S = 600.0  # the worker's start-up (imports torch; slow on a loaded machine)

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


# ---- tensors described as JSON --------------------------------------------------------------------
def make_tensor(spec: Dict[str, Any]):
    """A torch tensor from its JSON description (child side)."""
    import torch

    dtype = getattr(torch, spec["dtype"])
    shape = [int(s) for s in spec["shape"]]
    if spec.get("device", "cpu") == "meta":
        return torch.empty(shape, dtype=dtype, device="meta")
    n = 1
    for s in shape:
        n *= s
    vals = spec.get("values") or [0]
    flat = torch.tensor([vals[i % len(vals)] for i in range(n)], dtype=torch.float64)
    if dtype.is_floating_point:
        t = flat.to(dtype)
    elif dtype == torch.bool:
        t = flat != 0
    else:  # integers: saturate to the dtype's range (values outside it are exactly what we test)
        info = torch.iinfo(dtype)
        t = torch.nan_to_num(flat, nan=0.0).clamp(info.min, info.max).to(torch.int64).to(dtype)
    t = t.reshape(shape)
    if spec.get("noncontig") and t.dim() >= 1 and t.numel() > 1:
        t = torch.stack([t, t], dim=-1)[..., 0]  # same values, strides twice the contiguous ones
    return t


def mostly(good, bad, odds: int = 4):
    """``good`` in ``odds`` of ``odds + 1`` draws, else ``bad``: most cases get past the first checks and
    reach the deeper code, the rest probe the checks."""
    return st.integers(0, odds).flatmap(lambda i: bad if i == 0 else good)


def tensors(shape, dtype: Any = "int32", values=None, meta: bool = True):
    """Strategy of a tensor description: ``shape`` a strategy of lists (or a list), ``dtype`` a name or a
    strategy of names; CPU mostly, 'meta' sometimes (if ``meta``), non-contiguous half the time."""
    shp = shape if isinstance(shape, st.SearchStrategy) else st.just(list(shape))
    dt = st.just(dtype) if isinstance(dtype, str) else dtype
    vals = values if values is not None else st.lists(st.integers(-3, 3), min_size=1, max_size=8)
    dev = mostly(st.just("cpu"), st.just("meta"), 40) if meta else st.just("cpu")
    return st.fixed_dictionaries({"shape": shp, "dtype": dt, "values": vals, "device": dev,
                                  "noncontig": st.booleans()})


def _shape(good, ndim_bad: int = 3):
    """``good`` (a list or strategy) mostly, else any small shape."""
    g = good if isinstance(good, st.SearchStrategy) else st.just(list(good))
    return mostly(g, st.lists(st.integers(0, 5), max_size=ndim_bad), 10)


def _dtype(good: str, *bad: str):
    return mostly(st.just(good), st.sampled_from(bad or ("int64", "float32", "bool")), 10)


SPECIAL_COORDS = [INT32_MIN, INT32_MAX, -32769, -32768, 32767, 32768, 2047, 2048, -1, 64512, -64512]


def _coord_values(good=st.integers(-4, 4)):
    return st.lists(mostly(good, st.sampled_from(SPECIAL_COORDS), 40), min_size=1, max_size=16)


NONFINITE = [float("nan"), float("inf"), -float("inf"), 1e30, -1e30, 0.0]


def _float_values(lo: float = -3.0, hi: float = 3.0):
    return st.lists(mostly(st.floats(lo, hi), st.sampled_from(NONFINITE), 8), min_size=1, max_size=8)


def _int(lo: int, hi: int, bad=(0, -1, 2**31, 2**32, 2**40, 2**62, -(2**62), 2**63 - 1)):
    return mostly(st.integers(lo, hi), st.sampled_from(bad))


def _float(lo: float, hi: float):
    return mostly(st.floats(lo, hi), st.sampled_from([0.0, -1.0, 1e-300, 1e300] + NONFINITE[:3]))


_FLOAT_BAD = ("float64", "float16", "bfloat16", "int32", "bool")


def _coords(n, meta: bool = True, batches: int = 3):
    """int32 [n, 4] rows (b, x, y, z): b mostly in [0, batches), x, y, z mostly small, sometimes extreme."""
    row = st.tuples(mostly(st.integers(0, batches - 1), st.sampled_from(SPECIAL_COORDS), 40),
                    *[mostly(st.integers(-4, 4), st.sampled_from(SPECIAL_COORDS), 40)] * 3)
    vals = st.lists(row, min_size=max(n, 1), max_size=max(n, 1)).map(lambda rows: [v for r in rows for v in r])
    return tensors(_shape([n, 4]), _dtype("int32", "int64", "float32", "int16", "bool"), vals, meta)


@st.composite
def _hash_case(draw):
    return {"op": "hash", "coords": draw(_coords(draw(st.integers(0, 10)))),
            "query": draw(_coords(draw(st.integers(0, 10))))}


@st.composite
def _kmap_case(draw):
    return {"op": "kmap", "query": draw(_coords(draw(st.integers(0, 10)))),
            "table": draw(_coords(draw(st.integers(0, 10)))), "mul": draw(_int(1, 4, (0, -1, 64, 65, 2**40))),
            "offsets": draw(tensors(_shape([draw(st.integers(0, 5)), 3]), _dtype("int32", "int64"),
                                    _coord_values(st.integers(-2, 2)))),
            "n_in": draw(_int(0, 12))}


@st.composite
def _conv_case(draw):
    n_in, n_out, k = draw(st.integers(0, 8)), draw(st.integers(0, 8)), draw(st.integers(0, 4))
    # C_out % 8 == 0 (float32) takes the direct AVX2 kernels of conv_cpu_direct.cpp, the rest the tiled GEMM
    c_in, c_out = draw(st.integers(0, 3)), draw(st.sampled_from([0, 1, 2, 3, 8, 16]))
    fdt = draw(_dtype("float32", *_FLOAT_BAD))
    nbr_vals = st.lists(mostly(st.integers(-1, max(n_in - 1, 0)), st.sampled_from(
        [n_in, -2, INT32_MIN, INT32_MAX, 2**20]), 40), min_size=1, max_size=12)
    return {"op": "conv",
            "feats": draw(tensors(_shape([n_in, c_in]), mostly(st.just(fdt), st.sampled_from(_FLOAT_BAD)),
                                  _float_values())),
            "weight": draw(tensors(_shape([k, c_in, c_out]), mostly(st.just(fdt), st.sampled_from(_FLOAT_BAD)),
                                   _float_values())),
            "grad_out": draw(tensors(_shape([n_out, c_out]), mostly(st.just(fdt), st.sampled_from(_FLOAT_BAD)),
                                     _float_values())),
            "nbr": draw(tensors(_shape([n_out, k]), _dtype("int32", "int64", "float32"), nbr_vals)),
            "n_in": draw(_int(n_in, n_in)), "tile": draw(_int(1, 16)), "chunk": draw(_int(-1, 64)),
            "c_in": draw(_int(c_in, c_in)), "c_out": draw(_int(c_out, c_out)), "sort_rows": draw(st.booleans()),
            "emulate": draw(st.sampled_from([False] * 5 + [True]))}


def _pose():
    """A 4x4 camera pose: mostly a rigid one, sometimes NaN/inf/huge."""
    base = [1.0, 0, 0, 0.1, 0, 1, 0, 0.2, 0, 0, 1, -1.0, 0, 0, 0, 1]
    return mostly(st.just(base), st.lists(mostly(st.floats(-2, 2), st.sampled_from(NONFINITE + [1e300]), 3),
                                          min_size=16, max_size=16), 3)


_K = [6.0, 0, 5, 0, 6, 5, 0, 0, 1]


@st.composite
def _fusion_case(draw):
    h, w = draw(st.integers(0, 12)), draw(st.integers(0, 12))
    depth_vals = st.lists(mostly(st.floats(0, 4), st.sampled_from([0.0, -1.0, 65535.0] + NONFINITE[:3]), 4),
                          min_size=1, max_size=8)
    return {"op": "fusion", "voxel_size": draw(_float(0.02, 0.5)), "trunc_voxels": draw(_float(1, 5)),
            "block_res": draw(_int(1, 8, (0, -1, 64, 65, 2**40))), "with_color": draw(st.booleans()),
            "depth": draw(tensors(_shape([h, w]), _dtype("float32", "float64", "uint16"), depth_vals)),
            "color": draw(mostly(tensors([h, w, 3], _dtype("uint8", "float32"), st.lists(st.integers(0, 255),
                                                                                         min_size=1)),
                                 tensors(_shape([0]), "uint8"))),
            "intrinsic": draw(tensors(_shape([3, 3]), _dtype("float64", "float32", "int64"),
                                      mostly(st.just(_K), _float_values(), 3))),
            "pose": draw(tensors(_shape([4, 4]), _dtype("float64", "float32"), _pose())),
            "depth_max": draw(_float(0.5, 10)), "touch_stride": draw(_int(1, 4)),
            "threads": draw(_int(0, 2, (-1, 2**31, 2**32, 2**40))), "min_weight": draw(_float(0, 2)),
            "max_abs": draw(_float(0, 1)),
            "coords": draw(tensors(_shape([draw(st.integers(0, 8)), 3]), _dtype("int32", "int64"),
                                   _coord_values(st.integers(-20, 20)))),
            "trunc": draw(_float(0.01, 0.5)), "depth_scale": draw(_float(100, 5000)),
            "origin": draw(tensors(_shape([3]), _dtype("int64", "float32", "int32"),
                                   st.lists(_int(-5, 5, (2**62, -(2**62), 2**40)), min_size=1, max_size=3))),
            "dims": draw(tensors(_shape([3]), _dtype("int64", "float32"),
                                 st.lists(_int(0, 6, (-1, 2**31, 2**33, 2**62)), min_size=1, max_size=3))),
            "n_frames": draw(st.integers(0, 3))}


@st.composite
def _python_case(draw):
    """SparseTensor / from_points / conv3d. CPU tensors only: 'meta' coordinates are a known gap of the
    Python layer (tests/test_fuzz_native.py::test_python_layer_meta_coords_name_the_argument, xfail)."""
    n = draw(st.integers(0, 10))
    return {"op": "python", "coords": draw(_coords(n, meta=False)),
            "feats": draw(tensors(_shape([n, draw(st.integers(0, 3))]), _dtype("float32", *_FLOAT_BAD),
                                  _float_values(), meta=False)),
            "stride": draw(_int(1, 4)), "kernel_size": draw(mostly(st.integers(1, 3), st.sampled_from(
                [0, -1, 2**40, 1.5, True, "3"]))), "conv_stride": draw(_int(1, 2)), "dilation": draw(_int(1, 2)),
            "points": draw(tensors(_shape([draw(st.integers(0, 10)), 3]), _dtype("float32", *_FLOAT_BAD),
                                   _float_values(-100, 100), meta=False)),
            "voxel_size": draw(_float(0.01, 1))}


@st.composite
def _project_case(draw):
    n, b, v, c = draw(st.integers(0, 8)), draw(st.integers(1, 2)), draw(st.integers(0, 2)), draw(st.integers(1, 3))
    hh, ww = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    eye = [1.0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]
    return {"op": "project", "coords": draw(_coords(n, batches=b)),
            "voxel_to_world": draw(tensors(_shape([b, 4, 4]), _dtype("float64", "float32"),
                                           mostly(st.just(eye), _pose(), 3))),
            "feats2d": draw(tensors(_shape([v, c, hh, ww], 4), _dtype("float32", *_FLOAT_BAD), _float_values())),
            "depth": draw(tensors(_shape([v, hh * 2, ww * 2]), _dtype("float32", "float64"),
                                  _float_values(0, 4))),
            "intrinsics": draw(tensors(_shape([v, 4]), _dtype("float64", "float32"),
                                       mostly(st.just([4.0, 4.0, 2.0, 2.0]), _float_values(), 3))),
            "world_to_cam": draw(tensors(_shape([v, 4, 4]), _dtype("float64", "float32"), _pose())),
            "view_batch": draw(tensors(_shape([v]), _dtype("int64", "int32"),
                                       st.lists(_int(0, b - 1, (-1, b, 2**40, -(2**40))), min_size=1, max_size=2))),
            "thresh": draw(tensors(_shape([b]), _dtype("float64", "float32"), _float_values(0, 1))),
            "near": draw(_float(0.1, 0.5)), "far": draw(_float(2, 5)), "pool_max": draw(st.booleans()),
            "grad": draw(tensors(_shape([n, c]), _dtype("float32", *_FLOAT_BAD), _float_values())),
            "V": draw(_int(v, v)), "h": draw(_int(hh, hh)), "w": draw(_int(ww, ww))}


def native_cases():
    """Strategy of one native-op case (a JSON dict with "op" and its arguments)."""
    return st.one_of(_hash_case(), _kmap_case(), _conv_case(), _fusion_case(), _python_case(), _project_case())


# ---- child side: run one case ---------------------------------------------------------------------
class _Raised(Exception):
    """An exception of a named call, with that call's argument names."""

    def __init__(self, call: str, names: List[str], exc: BaseException) -> None:
        super().__init__(call)
        self.call, self.names, self.exc = call, names, exc


_SUCCEEDED: List[str] = []  # calls of the current case that returned (child side; reported per case)
_RAISED: List[Dict[str, Any]] = []  # every call of the current case that raised, also those caught later


def _describe(call: str, names: List[str], exc: BaseException) -> Dict[str, Any]:
    msg = str(exc).strip().splitlines()
    # the allowed built-in class it derives from (SensFormatError -> ValueError), or None
    base = next((c.__name__ for c in type(exc).__mro__ if c.__name__ in ALLOWED_ERRORS), None)
    return {"call": call, "names": names, "type": type(exc).__name__, "base": base, "msg": msg[0][:300] if msg else ""}


def _call(call: str, names: str, fn: Callable, *args, **kwargs):
    try:
        out = fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - classified by the parent
        _RAISED.append(_describe(call, names.split(), exc))
        raise _Raised(call, names.split(), exc) from exc
    _SUCCEEDED.append(call)
    return out


def _run_native(case: Dict[str, Any]) -> None:
    import torch
    from sparse3d import _C

    op, T = case["op"], lambda k: make_tensor(case[k])
    if op == "hash":
        t = _call("hash.build", "coords", _C.hash.build, T("coords"))
        _call("CoordHashTable.lookup", "coords", t.lookup, T("query"))
    elif op == "kmap":
        q = _call("kmap.sort_coords", "coords mul", _C.kmap.sort_coords, T("query"), case["mul"])
        t = _call("kmap.sort_coords", "coords mul", _C.kmap.sort_coords, T("table"), 1)
        nbr = _call("kmap.neighbor_table", "query table offsets mul", _C.kmap.neighbor_table, q, t, T("offsets"))
        _call("kmap.invert", "nbr_out n_in", _C.kmap.invert, nbr, case["n_in"])
        _call("kmap.invert", "nbr_out n_in", _C.kmap.invert, nbr, t.keys.shape[0])
    elif op == "conv":
        feats, weight, nbr, grad = T("feats"), T("weight"), T("nbr"), T("grad_out")
        if hasattr(_C.conv, "direct_supported"):  # the CPU conv's kernel choice (conv_cpu_direct.cpp)
            _call("conv.direct_supported", "feats c_out", _C.conv.direct_supported, feats, case["c_out"])
        if hasattr(_C.conv, "direct_kernels"):
            _call("conv.direct_kernels", "feats c_in c_out", _C.conv.direct_kernels, feats, case["c_in"],
                  case["c_out"])
        for fn, second in ((_C.conv.forward, weight), (_C.conv.weight_grad, grad)):
            try:
                _call(f"conv.{fn.__name__}", "feats weight grad_out nbr tile N_out N_in K C_in", fn, feats, second,
                      nbr, case["tile"])
            except _Raised:
                pass
        p = _call("conv.pairs", "nbr n_in N_in", _C.conv.pairs, nbr, case["n_in"])
        p = p if case["sort_rows"] else _call("ConvPairs.swapped", "pairs", p.swapped)
        for fn, second in ((_C.conv.forward_pairs, weight), (_C.conv.weight_grad_pairs, grad)):
            try:
                _call(f"conv.{fn.__name__}", "feats weight grad_out pairs N_in N_out K C_in", fn, feats, second, p)
            except _Raised:
                pass
        _call("conv.implicit_chunks", "chunk c_in c_out pairs", _C.conv.implicit_chunks, p, case["chunk"],
              case["c_in"], case["c_out"])
        try:
            _call("conv.weight_grad_implicit", "feats grad_out pairs", _C.conv.weight_grad_implicit, feats, grad, p)
        except _Raised:
            pass
        tab = _call("conv.implicit_table", "nbr n_in N_in", _C.conv.implicit_table, nbr, case["n_in"],
                    case["sort_rows"])
        if case["emulate"] and feats.numel() <= 64 and weight.numel() <= 64:
            try:
                _call("conv.forward_implicit_emulated", "feats weight table N_in K C_in",
                      _C.conv.forward_implicit_emulated, feats, weight, tab)
            except _Raised:
                pass
            _call("conv.weight_grad_implicit_emulated", "feats grad_out pairs chunk N_in N_out",
                  _C.conv.weight_grad_implicit_emulated, feats, grad, p, case["chunk"])
        _call("conv.forward_implicit", "feats weight table", _C.conv.forward_implicit, feats, weight, tab)
    elif op == "fusion":
        pose = T("pose")
        vis_args = (T("coords"), case["voxel_size"], T("depth"), T("intrinsic"), pose, case["trunc"],
                    case["depth_max"])
        try:
            _call("fusion.visibility", "coords voxel_size depth intrinsic camera_to_world trunc depth_max",
                  _C.fusion.visibility, *vis_args)
        except _Raised:
            pass
        nf = case["n_frames"]
        d = T("depth")
        depths = (d * 1000).clamp(0, 65535).to(torch.int32).to(torch.uint16) if d.device.type == "cpu" \
            and d.is_floating_point() and not d.isnan().any() else d
        depths = depths.expand(nf, *depths.shape) if depths.dim() == 2 else depths
        poses = pose.expand(nf, *pose.shape) if pose.dim() == 2 else pose
        try:
            _call("fusion.observed_grid", "depths depth_scale intrinsic camera_to_world origin dims voxel_size",
                  _C.fusion.observed_grid, depths, case["depth_scale"], T("intrinsic"), poses, T("origin"),
                  T("dims"), case["voxel_size"], case["trunc"], case["depth_max"])
        except _Raised:
            pass
        v = _call("fusion.TSDFVolume", "voxel_size trunc_voxels block_res", _C.fusion.TSDFVolume,
                  case["voxel_size"], case["trunc_voxels"], case["block_res"], case["with_color"])
        _call("TSDFVolume.integrate", "depth color intrinsic camera_to_world depth_max touch_stride threads",
              v.integrate, T("depth"), T("color"), T("intrinsic"), pose, case["depth_max"], case["touch_stride"],
              case["threads"])
        _call("TSDFVolume.extract", "min_weight max_abs_tsdf", v.extract, case["min_weight"], case["max_abs"])
    elif op == "python":
        import sparse3d as s3d

        x = _call("SparseTensor", "coords feats stride", s3d.SparseTensor, T("coords"), T("feats"),
                  case["stride"])
        try:
            _call("SparseTensor.from_points", "points feats voxel_size", s3d.SparseTensor.from_points,
                  T("points"), voxel_size=case["voxel_size"])
        except _Raised:
            pass
        ks = case["kernel_size"]
        k = ks if isinstance(ks, int) and not isinstance(ks, bool) and 1 <= ks <= 5 else 1
        w = torch.zeros(k**3, x.num_channels, 2, dtype=x.dtype)
        _call("ops.conv3d", "x weight kernel_size stride dilation", s3d.ops.conv3d, x, w, None, ks,
              case["conv_stride"], case["dilation"])
    elif op == "project":
        if not hasattr(_C, "project"):
            return
        geo = [T(k) for k in ("coords", "voxel_to_world")]
        rest = [T(k) for k in ("depth", "intrinsics", "world_to_cam", "view_batch", "thresh")]
        names = "coords voxel_to_world feats2d depth intrinsics world_to_cam view_batch thresh near far"
        try:
            _call("project.visibility", names, _C.project.visibility, *geo, *rest, case["near"], case["far"])
        except _Raised:
            pass
        feats2d = T("feats2d")
        out = _call("project.forward", names + " pool_max", _C.project.forward, *geo, feats2d, *rest, case["near"],
                    case["far"], case["pool_max"])
        grad = T("grad")
        try:
            _call("project.backward_max", "grad argmax V h w", _C.project.backward_max, grad, out[2],
                  case["V"], case["h"], case["w"])
        except _Raised:
            pass
        _call("project.backward_mean", names + " grad n_views h w", _C.project.backward_mean, *geo, *rest,
              case["near"], case["far"], grad, out[1], case["h"], case["w"])
    else:
        raise ValueError(f"unknown case op {op!r}")


def run_case(case: Dict[str, Any]) -> Dict[str, Any]:
    """Runs one case in this process; the outcome as a JSON-able dict (child side)."""
    kind = case.get("kind", "native")
    _SUCCEEDED.clear()
    _RAISED.clear()
    try:
        if kind == "native":
            _run_native(case)
        elif kind == "selftest":  # the harness's own test: a real segfault in the child
            import ctypes

            ctypes.string_at(0)
        else:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            import test_fuzz_readers  # the readers' cases live beside their tests

            test_fuzz_readers.run_reader_case(case)
    except _Raised as r:
        call, names, exc = r.call, r.names, r.exc
    except Exception as e:  # noqa: BLE001 - outside any named call: reported with no argument names
        call, names, exc = "harness", [], e
    else:
        return {"outcome": "ok", "succeeded": list(_SUCCEEDED), "raised": list(_RAISED)}
    raised = list(_RAISED) if call != "harness" else [*_RAISED, _describe(call, names, exc)]
    return {"outcome": "error", **_describe(call, names, exc), "succeeded": list(_SUCCEEDED), "raised": raised}


ADDRESS_SPACE_HEADROOM_GB = 6  # the worker may map this much more than it had at start


def _limit_address_space() -> None:
    """Caps the child's address space a few GB above its size at start, so a huge allocation fails with
    MemoryError (which the readers' rule rejects) instead of swapping the machine. Not under ASan, whose
    shadow memory needs terabytes of address space."""
    if os.environ.get("S3D_ASAN"):
        return
    import importlib
    import resource

    importlib.import_module("torch")  # loaded first: its libraries are part of the baseline

    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    limit = vm + ADDRESS_SPACE_HEADROOM_GB * 2**30
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))


def worker_main() -> None:
    """The child loop: one JSON case per stdin line -> one JSON outcome per stdout line."""
    import faulthandler

    faulthandler.enable()  # a crash prints the native and Python stacks on stderr
    _limit_address_space()
    out = sys.stdout
    sys.stdout = sys.stderr  # stray prints must not break the protocol
    import importlib

    for mod in ("sparse3d", "data_tools.scannet"):  # imported before READY: case timeouts exclude start-up
        importlib.import_module(mod)

    out.write("READY\n")
    out.flush()
    for line in sys.stdin:
        case = json.loads(line)
        sys.stderr.write(f"fuzz case: {line}")
        sys.stderr.flush()
        out.write(json.dumps(run_case(case)) + "\n")
        out.flush()


# ---- parent side ----------------------------------------------------------------------------------
class Worker:
    """A child process running cases; restarted after a crash or a hang."""

    def __init__(self, env: Optional[Dict[str, str]] = None) -> None:
        self.env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), **(env or {}))
        self.proc: Optional[subprocess.Popen] = None
        self.stderr_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"s3d_fuzz_worker_{os.getpid()}.log"

    def _start(self) -> None:
        self._err = open(self.stderr_path, "w")
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._err, text=True, env=self.env,
                                     cwd=str(Path(__file__).resolve().parents[1]))
        ready, _, _ = select.select([self.proc.stdout], [], [], START_TIMEOUT_S)
        line = self.proc.stdout.readline() if ready else ""
        if line != "READY\n":
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"fuzz worker did not start (got {line!r}); its stderr: "
                               f"{self.stderr_path.read_text(errors='replace')[-2000:]}")

    def close(self) -> None:
        if self.proc is not None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self._err.close()
            self.proc = None

    def _died(self, what: str) -> Dict[str, Any]:
        self.proc.kill()
        rc = self.proc.wait()
        self._err.close()
        tail = self.stderr_path.read_text(errors="replace")[-3000:]
        self.proc = None
        return {"outcome": what, "returncode": rc, "stderr": tail}

    def run(self, case: Dict[str, Any], timeout: float = CASE_TIMEOUT_S) -> Dict[str, Any]:
        if self.proc is None:
            self._start()
        try:
            self.proc.stdin.write(json.dumps(case) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            return self._died("crash")
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return self._died("hang")
        line = self.proc.stdout.readline()
        if not line:
            return self._died("crash")
        return json.loads(line)


def check_outcome(case: Dict[str, Any], res: Dict[str, Any], extra_names=(), reader: bool = False) -> Optional[str]:
    """None when the outcome follows the rule, else what is wrong. ``reader``: a file reader, for which
    a MemoryError also fails (it tried a huge allocation instead of checking the file first)."""
    if res["outcome"] in ("crash", "hang"):
        return (f"{res['outcome']} (exit code {res['returncode']}) on case {json.dumps(case)}\n"
                f"child stderr:\n{res['stderr']}")
    for r in res.get("raised", [res]):  # every call that raised, also those the case caught and went on
        if reader and r["base"] == "MemoryError":
            return f"{r['call']} ran out of memory (a huge allocation): {r['msg']} on {json.dumps(case)}"
        if r["base"] is None:
            return f"{r['call']} raised {r['type']}: {r['msg']} (not one of ALLOWED_ERRORS) on {json.dumps(case)}"
        names = list(r.get("names", [])) + list(extra_names)
        if not any(n.lower() in r["msg"].lower() for n in names if n):
            return (f"{r['call']} raised {r['type']} whose message names none of {names}: {r['msg']!r} "
                    f"on {json.dumps(case)}")
    return None


class Tally:
    """Counts of cases by kind and outcome, for the long run's report."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.calls: Counter = Counter()  # (call, "returned" | exception type)
        self.failures: List[str] = []

    def add(self, kind: str, res: Dict[str, Any], problem: Optional[str]) -> None:
        what = "ok" if res["outcome"] == "ok" else res.get("type", res["outcome"])
        self.counts[(kind, what)] += 1
        for call in res.get("succeeded", []):
            self.calls[(call, "returned")] += 1
        for r in res.get("raised", []):
            self.calls[(r["call"], r["type"])] += 1
        if problem:
            self.failures.append(problem)

    def report(self) -> str:
        kinds = sorted({k for k, _ in self.counts})
        lines = [f"{'kind':<24} {'tried':>7}  outcomes"]
        for kind in kinds:
            row = {w: n for (k, w), n in self.counts.items() if k == kind}
            lines.append(f"{kind:<24} {sum(row.values()):>7}  " +
                         ", ".join(f"{w} {n}" for w, n in sorted(row.items(), key=lambda x: -x[1])))
        lines.append(f"{'total':<24} {sum(self.counts.values()):>7}  problems (crash/hang/unnamed error): "
                     f"{len(self.failures)}")
        lines.append("")
        lines.append(f"{'call':<36} {'calls':>7}  outcomes")
        for call in sorted({c for c, _ in self.calls}):
            row = {w: n for (c, w), n in self.calls.items() if c == call}
            lines.append(f"{call:<36} {sum(row.values()):>7}  " +
                         ", ".join(f"{w} {n}" for w, n in sorted(row.items(), key=lambda x: -x[1])))
        return "\n".join(lines)


def _case_kind(case: Dict[str, Any]) -> str:
    return case.get("op") if case.get("kind", "native") == "native" else f"file:{case.get('reader')}"


def long_run(minutes: float, seed: int, native: bool, readers: bool, batch: int = 200) -> Tally:
    """Draws cases with hypothesis until ``minutes`` have passed; each round is one seeded hypothesis run."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hseed

    strategies = []
    if native:
        strategies.append(native_cases())
    if readers:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import test_fuzz_readers

        strategies.append(test_fuzz_readers.reader_cases())
    strategy = st.one_of(*strategies)
    tally, worker = Tally(), Worker()
    end = time.monotonic() + 60 * minutes
    rnd = seed

    def body(case):
        if time.monotonic() > end:
            return
        reader = case.get("kind") == "reader"
        res = worker.run(case, timeout=30 if reader else CASE_TIMEOUT_S)
        tally.add(_case_kind(case), res, check_outcome(case, res, reader=reader))

    try:
        while time.monotonic() < end:
            run = settings(max_examples=batch, deadline=None, database=None,
                           suppress_health_check=list(HealthCheck))(hseed(rnd)(given(strategy)(body)))
            run()
            rnd += 1
            print(f"[{time.strftime('%H:%M:%S')}] round {rnd - seed}: {sum(tally.counts.values())} cases, "
                  f"{len(tally.failures)} problems", flush=True)
    finally:
        worker.close()
    return tally


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--minutes", type=float, default=5.0, help="how long to fuzz (default 5)")
    ap.add_argument("--seed", type=int, default=0, help="first hypothesis seed (one per round)")
    ap.add_argument("--native", action="store_true", help="only the native ops (default: both)")
    ap.add_argument("--readers", action="store_true", help="only the file readers (default: both)")
    args = ap.parse_args(argv)
    if args.worker:
        worker_main()
        return 0
    both = not (args.native or args.readers)
    tally = long_run(args.minutes, args.seed, args.native or both, args.readers or both)
    print(tally.report())
    for f in tally.failures[:20]:
        print("PROBLEM:", f[:2000])
    return 1 if tally.failures else 0


if __name__ == "__main__":
    # run as the importable module (not __main__), so the readers' cases (test_fuzz_readers imports
    # fuzz_long) and this loop share one _Raised class
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import fuzz_long

    sys.exit(fuzz_long.main())

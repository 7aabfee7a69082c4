"""The native ops' fuzz cases: hypothesis strategies of JSON cases (parent side) and their runner (child
side) for every ``sparse3d._C`` entry point and the Python layer above it; run through the worker of
tests/fuzz_long.py. A tensor is described by a dict ``{"shape", "dtype", "device", "values", "noncontig"}``
and made in the child by :func:`make_tensor`."""
from __future__ import annotations

from typing import Any, Dict

from hypothesis import strategies as st

from fuzz_long import _call, _Raised

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
    # C_out % 8 == 0 (float32) takes the direct kernels of conv_cpu_direct.cpp (AVX-512 for C_out % 16 == 0 where the
    # CPU has it, under the simd cap), the rest the tiled GEMM
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
            "emulate": draw(st.sampled_from([False] * 5 + [True])),
            "simd": draw(st.sampled_from(["auto"] * 4 + ["avx512", "avx2", "none", "sse", ""]))}


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


def _cells(n):
    """int32 [n, 4] leaf cells (b, x, y, z) that fit a 2-item batch at depth >= 2: the octree build gets past
    its checks."""
    row = st.tuples(st.integers(0, 1), *[st.integers(0, 3)] * 3)
    vals = st.lists(row, min_size=max(n, 1), max_size=max(n, 1)).map(lambda rows: [v for r in rows for v in r])
    return tensors(st.just([n, 4]), "int32", vals, meta=False)


@st.composite
def _octree_case(draw):
    p, m, q = draw(st.integers(0, 8)), draw(st.integers(0, 4)), draw(st.integers(0, 6))
    depth = draw(_int(2, 4, (0, 1, -1, 15, 16, 2**31, 2**40)))
    small = st.lists(mostly(st.integers(-1, 8), st.sampled_from(SPECIAL_COORDS), 20), min_size=1, max_size=16)
    return {"op": "octree",
            "points": draw(tensors(_shape([p, 3]), _dtype("float32", "float64", "float16", "int32", "bool"),
                                   _float_values(0, 1))),
            "origin": draw(mostly(st.just([0.0, 0.0, 0.0]), st.lists(_float(-1, 1), min_size=0, max_size=4), 3)),
            "size": draw(_float(0.5, 2)), "depth": depth,
            "cells": draw(mostly(_cells(p), _coords(p, batches=2), 2)), "full_depth": draw(_int(0, 2, (-1, 16, 2**40))),
            "batch_size": draw(_int(1, 2, (0, -1, 2**31, 2**40))),
            "nbr_parent": draw(tensors(_shape([m, 27]), _dtype("int32", "int64", "float32"), small)),
            "children_parent": draw(tensors(_shape([m]), _dtype("int32", "int64"), small)),
            "parent_rows": draw(tensors(_shape([q]), _dtype("int32", "int64"), small)),
            "child_pos": draw(tensors(_shape([q]), _dtype("int32", "int64"), small)),
            "n_child": draw(_int(0, 8 * max(m, 1)))}


def native_cases():
    """Strategy of one native-op case (a JSON dict with "op" and its arguments)."""
    return st.one_of(_hash_case(), _kmap_case(), _conv_case(), _fusion_case(), _python_case(), _project_case(),
                     _octree_case())


def run_native(case: Dict[str, Any]) -> None:
    """Runs one native-op case in the child (errors as fuzz_long._Raised, via fuzz_long._call)."""
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
        # the CPU conv's kernel choice (conv_cpu_direct.cpp)
        _call("conv.direct_kernels", "feats c_in c_out simd", _C.conv.direct_kernels, feats, case["c_in"],
              case["c_out"], case["simd"])
        for fn, second in ((_C.conv.forward, weight), (_C.conv.weight_grad, grad)):
            try:
                _call(f"conv.{fn.__name__}", "feats weight grad_out nbr tile simd N_out N_in K C_in", fn, feats, second,
                      nbr, case["tile"], case["simd"])
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
        _call("project.backward_mean", "grad rows n_views V h w", _C.project.backward_mean, grad, out[2], out[1],
              case["V"], case["h"], case["w"])
    elif op == "octree":
        if not hasattr(_C, "octree"):
            return
        try:
            _call("octree.points_to_cells", "points origin size depth", _C.octree.points_to_cells, T("points"),
                  case["origin"], case["size"], case["depth"])
        except _Raised:
            pass
        lv = _call("octree.build", "cells depth full_depth batch_size", _C.octree.build, T("cells"), case["depth"],
                   case["full_depth"], case["batch_size"])
        for name in ("keys", "children", "coords"):
            getattr(lv, name)
        _ = lv.leaf_of_input
        _call("octree.neighbors", "nbr_parent children_parent parent_rows child_pos n_child", _C.octree.neighbors,
              T("nbr_parent"), T("children_parent"), T("parent_rows"), T("child_pos"), case["n_child"])
    else:
        raise ValueError(f"unknown case op {op!r}")

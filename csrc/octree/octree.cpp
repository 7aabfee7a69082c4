// Argument checks, CPU/CUDA dispatch and bindings of the octree build (octree.h). Value checks are ATen
// reductions, so they run on either device and the kernels may assume valid input.
#include "octree/octree.h"

#include <cmath>
#include <limits>
#include <sstream>

#include "common/checks.h"
#include "octree/octree_key.h"

namespace s3d {

namespace {

void check_depth(int64_t depth) {
  TORCH_CHECK_VALUE(depth >= 1 && depth <= octree::kMaxDepth, "depth must be in [1, ", octree::kMaxDepth,
                    "], got ", depth);
}

// Row index of the first true entry of a bool [N] tensor, or -1.
int64_t first_true(const at::Tensor& mask) {
  if (mask.numel() == 0 || !mask.any().item<bool>()) return -1;
  return mask.nonzero().select(1, 0).min().item<int64_t>();
}

std::string row_str(const at::Tensor& t, int64_t row) {
  at::Tensor r = t.select(0, row).to(at::kCPU).to(at::kDouble).contiguous();
  std::ostringstream s;
  s << "(";
  for (int64_t a = 0; a < r.numel(); ++a) s << (a ? ", " : "") << r.data_ptr<double>()[a];
  s << ")";
  return s.str();
}

// The first row of an int32 [N] tensor outside [lo, hi], or -1.
void check_values(const at::Tensor& t, int64_t lo, int64_t hi, const char* name) {
  if (t.numel() == 0) return;
  const int64_t bad = t.is_cuda() ? first_true(at::logical_or(t.lt(lo), t.gt(hi)).reshape({t.size(0), -1}).any(1))
                                  : first_row_outside_cpu(t.contiguous(), lo, hi);
  TORCH_CHECK_VALUE(bad < 0, name, " must hold values in [", lo, ", ", hi, "], got ", name, "[", bad,
                    "] = ", row_str(t, bad));
}

}  // namespace

at::Tensor octree_points_to_cells(const at::Tensor& points, std::vector<double> origin, double size, int64_t depth) {
  S3D_CHECK_DIM(points, 2);
  TORCH_CHECK_VALUE(points.size(1) == 3, "points must have shape [P, 3], got ", points.sizes());
  TORCH_CHECK_TYPE(points.scalar_type() == at::kFloat || points.scalar_type() == at::kDouble,
                   "points must be float32 or float64, got ", points.scalar_type());
  S3D_CHECK_DEVICE(points);
  check_depth(depth);
  TORCH_CHECK_VALUE(origin.size() == 3, "origin must have 3 values (x, y, z), got ", origin.size());
  for (double o : origin) TORCH_CHECK_VALUE(std::isfinite(o), "origin must be finite, got ", o);
  TORCH_CHECK_VALUE(std::isfinite(size) && size > 0, "size (the cube's edge) must be a finite number > 0, got ",
                    size);
  const auto fail = [&](int64_t nonfinite, int64_t outside) {
    TORCH_CHECK_VALUE(nonfinite < 0, "points must be finite, got points[", nonfinite, "] = ", row_str(points, nonfinite));
    TORCH_CHECK_VALUE(outside < 0, "points must lie inside the cube [origin, origin + size] = [(", origin[0], ", ",
                      origin[1], ", ", origin[2], "), (", origin[0] + size, ", ", origin[1] + size, ", ",
                      origin[2] + size, ")], got points[", outside, "] = ", row_str(points, outside));
  };
  if (points.is_cuda()) {
#ifdef WITH_CUDA
    if (points.size(0) > 0) {  // ATen reductions on the device, then the kernel
      const int64_t nonfinite = first_true(points.isfinite().logical_not().any(1));
      at::Tensor rel = points.to(at::kDouble) - at::tensor(origin, points.options().dtype(at::kDouble));
      fail(nonfinite, nonfinite >= 0 ? -1 : first_true(at::logical_or(rel.lt(0), rel.gt(size)).any(1)));
    }
    return octree_points_to_cells_cuda(points.contiguous(), origin.data(), size, depth);
#else
    S3D_NO_CUDA("octree.points_to_cells");
#endif
  }
  int64_t nonfinite = -1, outside = -1;  // checked in the kernel's pass
  at::Tensor cells = octree_points_to_cells_cpu(points.contiguous(), origin.data(), size, depth, &nonfinite, &outside);
  fail(nonfinite, nonfinite >= 0 ? -1 : outside);
  return cells;
}

OctreeLevels octree_build(const at::Tensor& cells, int64_t depth, int64_t full_depth, int64_t batch_size) {
  S3D_CHECK_DIM(cells, 2);
  TORCH_CHECK_VALUE(cells.size(1) == 4, "cells must have shape [P, 4] (b, x, y, z), got ", cells.sizes());
  S3D_CHECK_DTYPE(cells, at::kInt);
  S3D_CHECK_DEVICE(cells);
  check_depth(depth);
  TORCH_CHECK_VALUE(full_depth >= 0 && full_depth <= depth, "full_depth must be in [0, depth=", depth, "], got ",
                    full_depth);
  TORCH_CHECK_VALUE(batch_size >= 1 && batch_size <= int64_t(kBatchMax) + 1, "batch_size must be in [1, ",
                    int64_t(kBatchMax) + 1, "], got ", batch_size);
  TORCH_CHECK_VALUE(batch_size << (3 * full_depth) <= std::numeric_limits<int32_t>::max(),
                    "batch_size * 8^full_depth must fit int32 rows, got batch_size=", batch_size, ", full_depth=",
                    full_depth);
  TORCH_CHECK_VALUE(cells.size(0) <= std::numeric_limits<int32_t>::max() / 8, "cells has too many rows (",
                    cells.size(0), ") for int32 node rows");
  if (cells.size(0) > 0) {
    const int64_t side = int64_t(1) << depth;
    int64_t bad_b = -1, bad = -1;
    if (cells.is_cuda()) {
      bad_b = first_true(at::logical_or(cells.select(1, 0).lt(0), cells.select(1, 0).ge(batch_size)));
      bad = first_true(at::logical_or(cells.narrow(1, 1, 3).lt(0), cells.narrow(1, 1, 3).ge(side)).any(1));
    } else {
      cells_first_bad_cpu(cells.contiguous(), batch_size, side, &bad_b, &bad);
    }
    TORCH_CHECK_VALUE(bad_b < 0, "cells[:, 0] (batch index) must be in [0, batch_size=", batch_size, "), got cells[",
                      bad_b, "] = ", row_str(cells, bad_b));
    TORCH_CHECK_VALUE(bad < 0, "cells[:, 1:4] (x, y, z) must be in [0, 2^depth=", side, "), got cells[", bad,
                      "] = ", row_str(cells, bad));
  }
  if (cells.is_cuda()) {
#ifdef WITH_CUDA
    return octree_build_cuda(cells.contiguous(), depth, full_depth, batch_size);
#else
    S3D_NO_CUDA("octree.build");
#endif
  }
  return octree_build_cpu(cells.contiguous(), depth, full_depth, batch_size);
}

at::Tensor octree_neighbors(const at::Tensor& nbr_parent, const at::Tensor& children_parent,
                            const at::Tensor& parent_rows, const at::Tensor& child_pos, int64_t n_child) {
  S3D_CHECK_DIM(nbr_parent, 2);
  TORCH_CHECK_VALUE(nbr_parent.size(1) == 27, "nbr_parent must have shape [M, 27], got ", nbr_parent.sizes());
  S3D_CHECK_DTYPE(nbr_parent, at::kInt);
  S3D_CHECK_DEVICE(nbr_parent);
  const int64_t m = nbr_parent.size(0);
  for (const auto& [t, name] : {std::pair<const at::Tensor&, const char*>{children_parent, "children_parent"},
                                {parent_rows, "parent_rows"}, {child_pos, "child_pos"}}) {
    TORCH_CHECK_VALUE(t.dim() == 1, name, " must have shape [N], got ", t.sizes());
    TORCH_CHECK_TYPE(t.scalar_type() == at::kInt, name, " must be int32, got ", t.scalar_type());
    TORCH_CHECK_VALUE(t.device() == nbr_parent.device(), name, " must be on nbr_parent's device ",
                      nbr_parent.device(), ", got ", t.device());
  }
  TORCH_CHECK_VALUE(children_parent.size(0) == m, "children_parent must have shape [M=", m, "] (rows of nbr_parent), got ",
                    children_parent.sizes());
  TORCH_CHECK_VALUE(parent_rows.size(0) == child_pos.size(0), "parent_rows and child_pos must have the same length, got ",
                    parent_rows.size(0), " and ", child_pos.size(0));
  s3d_check_range(n_child, 0, std::numeric_limits<int32_t>::max(), "n_child");
  check_values(nbr_parent, -1, m - 1, "nbr_parent");
  check_values(children_parent, -1, n_child / 8 - 1, "children_parent (ordinals of 8-child groups in n_child rows)");
  check_values(parent_rows, 0, m - 1, "parent_rows");
  check_values(child_pos, 0, 7, "child_pos");
  if (nbr_parent.is_cuda()) {
#ifdef WITH_CUDA
    return octree_neighbors_cuda(nbr_parent.contiguous(), children_parent.contiguous(), parent_rows.contiguous(),
                                 child_pos.contiguous(), n_child);
#else
    S3D_NO_CUDA("octree.neighbors");
#endif
  }
  return octree_neighbors_cpu(nbr_parent.contiguous(), children_parent.contiguous(), parent_rows.contiguous(),
                              child_pos.contiguous(), n_child);
}

}  // namespace s3d

void init_octree(pybind11::module_& m) {
  namespace py = pybind11;
  py::class_<s3d::OctreeLevels>(m, "OctreeLevels")
      .def_readonly("keys", &s3d::OctreeLevels::keys)
      .def_readonly("children", &s3d::OctreeLevels::children)
      .def_readonly("coords", &s3d::OctreeLevels::coords)
      .def_readonly("leaf_of_input", &s3d::OctreeLevels::leaf_of_input);
  m.attr("MAX_DEPTH") = s3d::octree::kMaxDepth;
  m.def("points_to_cells", &s3d::octree_points_to_cells, py::arg("points"), py::arg("origin"), py::arg("size"),
        py::arg("depth"),
        "points float [P, 3] inside the cube [origin, origin + size] -> int32 [P, 3] cells at depth "
        "(floor((p - origin) / size * 2^depth), the max face in the last cell)");
  m.def("build", &s3d::octree_build, py::arg("cells"), py::arg("depth"), py::arg("full_depth"), py::arg("batch_size"),
        "cells int32 [P, 4] (b, x, y, z) at depth -> OctreeLevels (keys, children, coords per depth; leaf_of_input)");
  m.def("neighbors", &s3d::octree_neighbors, py::arg("nbr_parent"), py::arg("children_parent"),
        py::arg("parent_rows"), py::arg("child_pos"), py::arg("n_child"),
        "3x3x3 neighbours int32 [Q, 27] of the children (parent_rows[q], child_pos[q]) through the parent depth's "
        "table nbr_parent int32 [M, 27] and children ordinals children_parent int32 [M]; rows of n_child or -1");
}

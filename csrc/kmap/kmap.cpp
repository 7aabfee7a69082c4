#include "kmap/kmap.h"
#include "common/checks.h"
#include "kmap/wide_key.h"
#include <limits>

namespace s3d {

SortedCoords sort_coords(const at::Tensor& coords, int64_t mul) {
  S3D_CHECK_DIM(coords, 2);
  TORCH_CHECK_VALUE(coords.size(1) == 4, "coords must have shape [N, 4], got ", coords.sizes());
  S3D_CHECK_DTYPE(coords, at::kInt);
  S3D_CHECK_DEVICE(coords);
  TORCH_CHECK_VALUE(mul >= 1 && mul <= 64, "mul must be in [1, 64], got ", mul);
  if (coords.is_cuda()) {
#ifdef WITH_CUDA
    return sort_coords_cuda(coords.contiguous(), mul);
#else
    S3D_NO_CUDA("kmap.sort_coords");
#endif
  }
  return sort_coords_cpu(coords.contiguous(), mul);
}

at::Tensor neighbor_table(const SortedCoords& query, const SortedCoords& table, const at::Tensor& offsets) {
  S3D_CHECK_DIM(offsets, 2);
  TORCH_CHECK_VALUE(offsets.size(1) == 3, "offsets must have shape [K, 3], got ", offsets.sizes());
  S3D_CHECK_DTYPE(offsets, at::kInt);
  S3D_CHECK_DEVICE(offsets);
  S3D_CHECK_SAME_DEVICE(query.keys, table.keys);
  TORCH_CHECK_VALUE(table.mul == 1, "the table side must be sorted with mul=1, got mul=", table.mul);
  at::Tensor off = offsets.to(at::kCPU).contiguous();
  if (query.keys.numel() > 0 && off.size(0) > 0) {  // every shifted query must stay inside its key field
    const int32_t* o = off.data_ptr<int32_t>();
    for (int a = 0; a < 3; ++a) {
      int64_t omin = o[a], omax = o[a];
      for (int64_t k = 0; k < off.size(0); ++k) {
        omin = std::min<int64_t>(omin, o[3 * k + a]);
        omax = std::max<int64_t>(omax, o[3 * k + a]);
      }
      TORCH_CHECK_VALUE(query.lo[a] + omin >= -kWideOffset && query.hi[a] + omax < kWideOffset,
                        "query coordinates times ", query.mul, " plus kernel offsets leave [", -kWideOffset, ", ",
                        kWideOffset, ") on axis ", a);
    }
  }
  if (query.keys.is_cuda()) {
#ifdef WITH_CUDA
    return neighbor_table_cuda(query, table, offsets.contiguous());
#else
    S3D_NO_CUDA("kmap.neighbor_table");
#endif
  }
  return neighbor_table_cpu(query, table, off);
}

at::Tensor invert_table(const at::Tensor& nbr_out, int64_t n_in) {
  S3D_CHECK_DIM(nbr_out, 2);
  S3D_CHECK_DTYPE(nbr_out, at::kInt);
  S3D_CHECK_DEVICE(nbr_out);
  // the table's entries are int32 rows
  s3d_check_range(n_in, 0, std::numeric_limits<int32_t>::max(), "n_in");
  if (nbr_out.is_cuda()) {
#ifdef WITH_CUDA
    return invert_table_cuda(nbr_out.contiguous(), n_in);
#else
    S3D_NO_CUDA("kmap.invert");
#endif
  }
  return invert_table_cpu(nbr_out.contiguous(), n_in);
}

}  // namespace s3d

void init_kmap(pybind11::module_& m) {
  namespace py = pybind11;
  py::class_<s3d::SortedCoords>(m, "SortedCoords")
      .def_readonly("keys", &s3d::SortedCoords::keys)
      .def_readonly("order", &s3d::SortedCoords::order)
      .def_readonly("mul", &s3d::SortedCoords::mul)
      .def_readonly("has_duplicates", &s3d::SortedCoords::has_duplicates);
  m.def("sort_coords", &s3d::sort_coords, py::arg("coords"), py::arg("mul") = 1,
        "coords int32 [N, 4] -> SortedCoords: ascending keys of (b, x*mul, y*mul, z*mul) and their rows");
  m.def("neighbor_table", &s3d::neighbor_table, py::arg("query"), py::arg("table"), py::arg("offsets"),
        "SortedCoords query (mul = stride), SortedCoords table (mul = 1), offsets int32 [K, 3] -> int32 [M, K]: "
        "row in table of query * mul + offset, -1 where absent");
  m.def("invert", &s3d::invert_table, py::arg("nbr_out"), py::arg("n_in"),
        "int32 [N_out, K] -> int32 [n_in, K]: nbr_in[i, k] = o where nbr_out[o, k] = i, else -1");
}

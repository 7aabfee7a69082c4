#include "kmap/kmap.h"
#include "common/checks.h"

namespace s3d {

at::Tensor neighbor_table(const at::Tensor& query, const CoordHashTable& table, const at::Tensor& offsets,
                          int64_t mul, int64_t div) {
  S3D_CHECK_DIM(query, 2);
  TORCH_CHECK_VALUE(query.size(1) == 4, "query must have shape [M, 4], got ", query.sizes());
  S3D_CHECK_DTYPE(query, at::kInt);
  S3D_CHECK_DIM(offsets, 2);
  TORCH_CHECK_VALUE(offsets.size(1) == 3, "offsets must have shape [K, 3], got ", offsets.sizes());
  S3D_CHECK_DTYPE(offsets, at::kInt);
  TORCH_CHECK_VALUE(mul >= 1 && div >= 1, "mul and div must be >= 1, got mul=", mul, " div=", div);
  S3D_CHECK_SAME_DEVICE(query, table.keys);
  at::Tensor off = offsets.to(at::kCPU).contiguous();
  if (query.is_cuda()) {
#ifdef WITH_CUDA
    return neighbor_table_cuda(query.contiguous(), table, offsets.contiguous(), mul, div);
#else
    S3D_NO_CUDA("kmap.neighbor_table");
#endif
  }
  return neighbor_table_cpu(query.contiguous(), table, off, mul, div);
}

}  // namespace s3d

void init_kmap(pybind11::module_& m) {
  namespace py = pybind11;
  m.def("neighbor_table", &s3d::neighbor_table, py::arg("query"), py::arg("table"), py::arg("offsets"),
        py::arg("mul") = 1, py::arg("div") = 1,
        "query int32 [M, 4], offsets int32 [K, 3] -> int32 [M, K]: row in table of "
        "(q.xyz * mul + offset) / div, -1 where absent or not divisible");
}

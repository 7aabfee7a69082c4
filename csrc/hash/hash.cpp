// Device dispatch and Python bindings for the coordinate hash table.
#include "hash/hash.h"
#include "common/checks.h"

namespace s3d {

static void check_coords(const at::Tensor& coords) {
  S3D_CHECK_DIM(coords, 2);
  TORCH_CHECK_VALUE(coords.size(1) == 4, "coords must have shape [N, 4] (batch, x, y, z), got ",
                    coords.sizes());
  S3D_CHECK_DTYPE(coords, at::kInt);
  S3D_CHECK_DEVICE(coords);
}

CoordHashTable build_hash_table(const at::Tensor& coords) {
  check_coords(coords);
  if (coords.is_cuda()) {
#ifdef WITH_CUDA
    return build_hash_table_cuda(coords.contiguous());
#else
    S3D_NO_CUDA("hash.build");
#endif
  }
  return build_hash_table_cpu(coords.contiguous());
}

at::Tensor CoordHashTable::lookup(const at::Tensor& coords) const {
  check_coords(coords);
  S3D_CHECK_SAME_DEVICE(coords, keys);
  if (coords.is_cuda()) {
#ifdef WITH_CUDA
    return lookup_cuda(*this, coords.contiguous());
#else
    S3D_NO_CUDA("hash.lookup");
#endif
  }
  return lookup_cpu(*this, coords.contiguous());
}

}  // namespace s3d

void init_hash(pybind11::module_& m) {
  namespace py = pybind11;
  py::class_<s3d::CoordHashTable>(m, "CoordHashTable")
      .def_readonly("keys", &s3d::CoordHashTable::keys)
      .def_readonly("values", &s3d::CoordHashTable::values)
      .def_readonly("size", &s3d::CoordHashTable::size)
      .def("lookup", &s3d::CoordHashTable::lookup, py::arg("coords"),
           "coords int32 [M, 4] -> int32 [M] row index, -1 where absent");
  m.def("build", &s3d::build_hash_table, py::arg("coords"),
        "Hash table over coords int32 [N, 4]; raises ValueError on duplicates or out-of-range values");
}

// The single Python extension module sparse3d._C, with one nested submodule per area,
// so the C++ call path reads like the Python one: _C.hash.build, _C.kmap.neighbor_table, ...
#include <torch/extension.h>

#include "common/coord_pack.h"
#include "kmap/wide_key.h"

void init_hash(pybind11::module_& m);
void init_kmap(pybind11::module_& m);
void init_conv(pybind11::module_& m);
void init_fusion(pybind11::module_& m);
void init_project(pybind11::module_& m);
void init_octree(pybind11::module_& m);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "sparse3d native kernels (C++/OpenMP; CUDA when built with it)";
#ifdef WITH_CUDA
  m.attr("with_cuda") = true;
#else
  m.attr("with_cuda") = false;
#endif
  // The coordinate limits, stated once (common/coord_pack.h, kmap/wide_key.h) and read by sparse3d/coords.py.
  auto limits = m.def_submodule("limits", "coordinate limits of every op (common/coord_pack.h, kmap/wide_key.h)");
  limits.attr("COORD_MIN") = s3d::kCoordMin;  // x, y, z in [COORD_MIN, COORD_MAX]
  limits.attr("COORD_MAX") = s3d::kCoordMax;
  limits.attr("BATCH_MAX") = s3d::kBatchMax;  // batch index in [0, BATCH_MAX]
  // kernel maps need |coordinate * stride| < SCALED_COORD_BOUND (the rest of a wide key's field is for offsets)
  limits.attr("SCALED_COORD_BOUND") = s3d::kWideHeadroom;
  auto hash = m.def_submodule("hash", "hash tables over packed (b, x, y, z) coordinates");
  init_hash(hash);
  auto kmap = m.def_submodule("kmap", "kernel maps (neighbor tables) for sparse convolution");
  init_kmap(kmap);
  auto conv = m.def_submodule("conv", "gather-GEMM-scatter sparse convolution");
  init_conv(conv);
  auto fusion = m.def_submodule("fusion", "TSDF fusion of RGB-D frames into sparse voxel blocks");
  init_fusion(fusion);
  auto project = m.def_submodule("project", "3DMV back-projection of 2D feature maps into sparse voxels");
  init_project(project);
  auto octree = m.def_submodule("octree", "octree build and per-depth neighbour tables (O-CNN's full octree)");
  init_octree(octree);
}

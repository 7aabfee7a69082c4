// The single Python extension module sparse3d._C, with one nested submodule per area,
// so the C++ call path reads like the Python one: _C.hash.build, _C.kmap.neighbor_table, ...
#include <torch/extension.h>

void init_hash(pybind11::module_& m);
void init_kmap(pybind11::module_& m);
void init_conv(pybind11::module_& m);
void init_fusion(pybind11::module_& m);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "sparse3d native kernels (C++/OpenMP; CUDA when built with it)";
#ifdef WITH_CUDA
  m.attr("with_cuda") = true;
#else
  m.attr("with_cuda") = false;
#endif
  auto hash = m.def_submodule("hash", "hash tables over packed (b, x, y, z) coordinates");
  init_hash(hash);
  auto kmap = m.def_submodule("kmap", "kernel maps (neighbor tables) for sparse convolution");
  init_kmap(kmap);
  auto conv = m.def_submodule("conv", "gather-GEMM-scatter sparse convolution");
  init_conv(conv);
  auto fusion = m.def_submodule("fusion", "TSDF fusion of RGB-D frames into sparse voxel blocks");
  init_fusion(fusion);
}

#include "conv/conv.h"
#include "conv/conv_cpu_direct.h"
#include "common/checks.h"
#include "common/no_autocast.h"

namespace s3d {

static void check_table(const at::Tensor& nbr, int64_t rows, const char* rows_name) {
  S3D_CHECK_DIM(nbr, 2);
  S3D_CHECK_DTYPE(nbr, at::kInt);
  TORCH_CHECK_VALUE(nbr.size(0) == rows, "nbr must have ", rows_name, " = ", rows, " rows, got shape ",
                    nbr.sizes());
}

// rows per tile: each thread allocates [tile, C] buffers, so a tile is bounded
static void check_tile(int64_t tile) { s3d_check_range(tile, 1, int64_t(1) << 20, "tile"); }

// simd parsed (ValueError for a bad name or a set this CPU lacks); CUDA tensors take only "auto"
static Simd check_simd(const std::string& simd, const at::Tensor& feats) {
  const Simd isa = parse_simd(simd);
  TORCH_CHECK_VALUE(!feats.is_cuda() || simd == "auto", "simd='", simd,
                    "' picks CPU kernels; CUDA tensors take simd='auto'");
  return isa;
}

at::Tensor conv_forward(const at::Tensor& feats, const at::Tensor& weight, const at::Tensor& nbr, int64_t tile,
                        const std::string& simd) {
  const NoAutocast no_autocast;
  S3D_CHECK_DIM(feats, 2);
  S3D_CHECK_DIM(weight, 3);
  S3D_CHECK_DIM(nbr, 2);
  TORCH_CHECK_VALUE(weight.size(1) == feats.size(1), "weight must have shape [K, C_in=", feats.size(1),
                    ", C_out], got ", weight.sizes());
  TORCH_CHECK_VALUE(nbr.size(1) == weight.size(0), "nbr must have K=", weight.size(0),
                    " columns (one per kernel offset), got shape ", nbr.sizes());
  check_table(nbr, nbr.size(0), "N_out");
  TORCH_CHECK_TYPE(feats.scalar_type() == weight.scalar_type(), "feats and weight must have one dtype, got ",
                   feats.scalar_type(), " and ", weight.scalar_type());
  s3d_check_float(feats, "feats");
  check_tile(tile);
  S3D_CHECK_DEVICE(feats);
  const Simd isa = check_simd(simd, feats);
  S3D_CHECK_SAME_DEVICE(feats, weight);
  S3D_CHECK_SAME_DEVICE(feats, nbr);
  if (feats.is_cuda()) {
#ifdef WITH_CUDA
    return conv_forward_cuda(feats.contiguous(), weight.contiguous(), nbr.contiguous(), tile);
#else
    S3D_NO_CUDA("conv.forward");
#endif
  }
  return conv_forward_cpu(feats.contiguous(), weight.contiguous(), nbr.contiguous(), tile, isa);
}

at::Tensor conv_weight_grad(const at::Tensor& feats, const at::Tensor& grad_out, const at::Tensor& nbr,
                            int64_t tile, const std::string& simd) {
  const NoAutocast no_autocast;
  S3D_CHECK_DIM(feats, 2);
  S3D_CHECK_DIM(grad_out, 2);
  check_table(nbr, grad_out.size(0), "N_out (rows of grad_out)");
  TORCH_CHECK_TYPE(feats.scalar_type() == grad_out.scalar_type(), "feats and grad_out must have one dtype, got ",
                   feats.scalar_type(), " and ", grad_out.scalar_type());
  s3d_check_float(feats, "feats");
  check_tile(tile);
  S3D_CHECK_DEVICE(feats);
  const Simd isa = check_simd(simd, feats);
  S3D_CHECK_SAME_DEVICE(feats, grad_out);
  S3D_CHECK_SAME_DEVICE(feats, nbr);
  if (feats.is_cuda()) {
#ifdef WITH_CUDA
    return conv_weight_grad_cuda(feats.contiguous(), grad_out.contiguous(), nbr.contiguous(), tile);
#else
    S3D_NO_CUDA("conv.weight_grad");
#endif
  }
  return conv_weight_grad_cpu(feats.contiguous(), grad_out.contiguous(), nbr.contiguous(), tile, isa);
}

}  // namespace s3d

void init_conv_pairs(pybind11::module_& m);     // conv_pairs.cpp
void init_implicit_gemm(pybind11::module_& m);  // implicit_gemm.cpp

void init_conv(pybind11::module_& m) {
  namespace py = pybind11;
  init_conv_pairs(m);
  init_implicit_gemm(m);
  m.def("forward", &s3d::conv_forward, py::arg("feats"), py::arg("weight"), py::arg("nbr"), py::arg("tile") = 2048,
        py::arg("simd") = "auto",
        "feats [N_in, C_in], weight [K, C_in, C_out], nbr int32 [N_out, K] -> [N_out, C_out]; simd: the widest CPU "
        "instruction set of the direct kernels ('auto', 'avx512', 'avx2', 'none')");
  m.def("weight_grad", &s3d::conv_weight_grad, py::arg("feats"), py::arg("grad_out"), py::arg("nbr"),
        py::arg("tile") = 2048, py::arg("simd") = "auto",
        "feats [N_in, C_in], grad_out [N_out, C_out], nbr int32 [N_out, K] -> [K, C_in, C_out]; simd as forward");
  m.def(
      "direct_kernels",
      [](const at::Tensor& feats, int64_t c_in, int64_t c_out, const std::string& simd) {
        const s3d::Simd cap = s3d::parse_simd(simd);
        return std::make_tuple(
            std::string(s3d::simd_name(s3d::conv_direct_forward_isa(feats.scalar_type(), c_out, cap))),
            std::string(s3d::simd_name(s3d::conv_direct_weight_grad_isa(feats.scalar_type(), c_in, c_out, cap))));
      },
      py::arg("feats"), py::arg("c_in"), py::arg("c_out"), py::arg("simd") = "auto",
      "(forward, weight_grad): the kernels CPU tensors like feats with C_in -> C_out channels take under simd: "
      "'avx512' or 'avx2' (the direct kernels of conv/conv_cpu_direct.cpp) or 'gemm' (the tiled GEMM path)");
}

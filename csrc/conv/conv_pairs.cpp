// Pair compaction (ATen ops, any device), argument checks and dispatch of the pair-list convs, and
// their CPU implementation: per offset, index_select + one GEMM + index_add_, in float32 for the
// half types. (The CPU's fast path is the tiled neighbor-table conv in conv_cpu.cpp; this one
// exists so the pair-list path, which the CUDA kernels take, is checked on every machine.)
#include "conv/conv_pairs.h"
#include "common/checks.h"
#include "common/no_autocast.h"
#include <limits>

namespace s3d {

ConvPairs ConvPairs::swapped() const {
  ConvPairs s;
  s.src = dst;
  s.dst = src;
  s.begin = begin;
  s.n_in = n_out;
  s.n_out = n_in;
  return s;
}

ConvPairs conv_pairs(const at::Tensor& nbr, int64_t n_in) {
  const NoAutocast no_autocast;
  S3D_CHECK_DIM(nbr, 2);
  S3D_CHECK_DTYPE(nbr, at::kInt);
  S3D_CHECK_DEVICE(nbr);
  // rows are int32 indices; a larger n_in would only size the swapped pairs' output (an n_in-row allocation)
  s3d_check_range(n_in, 0, std::numeric_limits<int32_t>::max(), "n_in");
  const int64_t n_out = nbr.size(0), k_total = nbr.size(1);
  ConvPairs p;
  p.n_in = n_in;
  p.n_out = n_out;
  p.begin = at::zeros({k_total + 1}, at::TensorOptions().dtype(at::kLong));
  if (n_out == 0 || k_total == 0) {
    p.src = at::empty({0}, nbr.options().dtype(at::kLong));
    p.dst = at::empty({0}, nbr.options().dtype(at::kLong));
    return p;
  }
  const at::Tensor nbr_t = nbr.t().contiguous();  // [K, N_out]: positions come out grouped by offset
  const at::Tensor active = nbr_t >= 0;
  // per-offset counts and the largest index, in one device-to-host copy
  const at::Tensor stats =
      at::cat({active.sum(at::IntArrayRef{1}, /*keepdim=*/false, at::kLong), nbr_t.max().to(at::kLong).reshape({1})})
          .cpu();
  const int64_t* st = stats.data_ptr<int64_t>();
  TORCH_CHECK_VALUE(st[k_total] < n_in, "nbr holds an index >= N_in = ", n_in, " (rows of feats)");
  int64_t* b = p.begin.data_ptr<int64_t>();
  for (int64_t k = 0; k < k_total; ++k) b[k + 1] = b[k] + st[k];
  const at::Tensor pos = at::nonzero(active.reshape({-1})).reshape({-1});  // ascending flat positions
  p.src = nbr_t.reshape({-1}).index_select(0, pos).to(at::kLong);
  p.dst = pos.remainder(n_out);
  return p;
}

static void check_pairs(const ConvPairs& p, const at::Tensor& feats, const char* feats_name) {
  TORCH_CHECK_VALUE(p.src.defined() && p.dst.defined() && p.begin.defined(), "pairs is not initialised");
  TORCH_CHECK_VALUE(feats.size(0) == p.n_in, feats_name, " must have N_in = ", p.n_in, " rows (the pairs' inputs), got ",
                    feats.sizes());
  TORCH_CHECK_VALUE(feats.device() == p.src.device(), feats_name, " must be on the pairs' device ", p.src.device(),
                    ", got ", feats.device());
}

at::Tensor conv_forward_pairs(const at::Tensor& feats, const at::Tensor& weight, const ConvPairs& p) {
  const NoAutocast no_autocast;
  S3D_CHECK_DIM(feats, 2);
  S3D_CHECK_DIM(weight, 3);
  check_pairs(p, feats, "feats");
  TORCH_CHECK_VALUE(weight.size(0) == p.num_offsets() && weight.size(1) == feats.size(1), "weight must have shape [K=",
                    p.num_offsets(), ", C_in=", feats.size(1), ", C_out], got ", weight.sizes());
  TORCH_CHECK_TYPE(feats.scalar_type() == weight.scalar_type(), "feats and weight must have one dtype, got ",
                   feats.scalar_type(), " and ", weight.scalar_type());
  s3d_check_float(feats, "feats");
  S3D_CHECK_DEVICE(feats);
  S3D_CHECK_SAME_DEVICE(feats, weight);
  if (feats.is_cuda()) {
#ifdef WITH_CUDA
    return conv_forward_pairs_cuda(feats.contiguous(), weight.contiguous(), p);
#else
    S3D_NO_CUDA("conv.forward_pairs");
#endif
  }
  return conv_forward_pairs_generic(feats.contiguous(), weight.contiguous(), p);
}

void check_weight_grad_pairs_args(const at::Tensor& feats, const at::Tensor& grad_out, const ConvPairs& p) {
  S3D_CHECK_DIM(feats, 2);
  S3D_CHECK_DIM(grad_out, 2);
  check_pairs(p, feats, "feats");
  TORCH_CHECK_VALUE(grad_out.size(0) == p.n_out, "grad_out must have N_out = ", p.n_out,
                    " rows (the pairs' outputs), got ", grad_out.sizes());
  TORCH_CHECK_TYPE(feats.scalar_type() == grad_out.scalar_type(), "feats and grad_out must have one dtype, got ",
                   feats.scalar_type(), " and ", grad_out.scalar_type());
  s3d_check_float(feats, "feats");
  S3D_CHECK_DEVICE(feats);
  S3D_CHECK_SAME_DEVICE(feats, grad_out);
}

at::Tensor conv_weight_grad_pairs(const at::Tensor& feats, const at::Tensor& grad_out, const ConvPairs& p) {
  const NoAutocast no_autocast;
  check_weight_grad_pairs_args(feats, grad_out, p);
  if (feats.is_cuda()) {
#ifdef WITH_CUDA
    return conv_weight_grad_pairs_cuda(feats.contiguous(), grad_out.contiguous(), p);
#else
    S3D_NO_CUDA("conv.weight_grad_pairs");
#endif
  }
  return conv_weight_grad_pairs_generic(feats.contiguous(), grad_out.contiguous(), p);
}

at::Tensor conv_forward_pairs_generic(const at::Tensor& feats, const at::Tensor& weight, const ConvPairs& p) {
  const at::ScalarType st = feats.scalar_type();
  const at::ScalarType acc = (st == at::kHalf || st == at::kBFloat16) ? at::kFloat : st;
  const at::Tensor f = feats.to(acc), w = weight.to(acc);
  at::Tensor out = at::zeros({p.n_out, weight.size(2)}, f.options());
  const int64_t* b = p.begin.data_ptr<int64_t>();
  for (int64_t k = 0; k < p.num_offsets(); ++k) {
    const int64_t m = b[k + 1] - b[k];
    if (m == 0) continue;
    out.index_add_(0, p.dst.narrow(0, b[k], m), f.index_select(0, p.src.narrow(0, b[k], m)).mm(w[k]));
  }
  return out.to(st);
}

at::Tensor conv_weight_grad_pairs_generic(const at::Tensor& feats, const at::Tensor& grad_out, const ConvPairs& p) {
  const at::ScalarType st = feats.scalar_type();
  const at::ScalarType acc = (st == at::kHalf || st == at::kBFloat16) ? at::kFloat : st;
  const at::Tensor f = feats.to(acc), g = grad_out.to(acc);
  at::Tensor gw = at::zeros({p.num_offsets(), feats.size(1), grad_out.size(1)}, f.options());
  const int64_t* b = p.begin.data_ptr<int64_t>();
  for (int64_t k = 0; k < p.num_offsets(); ++k) {
    const int64_t m = b[k + 1] - b[k];
    if (m == 0) continue;
    gw[k].copy_(f.index_select(0, p.src.narrow(0, b[k], m)).t().mm(g.index_select(0, p.dst.narrow(0, b[k], m))));
  }
  return gw.to(st);
}

}  // namespace s3d

void init_conv_pairs(pybind11::module_& m) {
  namespace py = pybind11;
  py::class_<s3d::ConvPairs>(m, "ConvPairs",
                             "Active (input row, output row) pairs per kernel offset; made by conv.pairs(nbr, n_in)")
      .def_readonly("src", &s3d::ConvPairs::src)
      .def_readonly("dst", &s3d::ConvPairs::dst)
      .def_readonly("begin", &s3d::ConvPairs::begin)
      .def_readonly("n_in", &s3d::ConvPairs::n_in)
      .def_readonly("n_out", &s3d::ConvPairs::n_out)
      .def("swapped", &s3d::ConvPairs::swapped, "the same pairs with inputs and outputs exchanged");
  m.def("pairs", &s3d::conv_pairs, py::arg("nbr"), py::arg("n_in"),
        "nbr int32 [N_out, K] -> ConvPairs (src, dst int64 [P] grouped by offset, begin int64 [K + 1] on the CPU)");
  m.def("forward_pairs", &s3d::conv_forward_pairs, py::arg("feats"), py::arg("weight"), py::arg("pairs"),
        "feats [N_in, C_in], weight [K, C_in, C_out], ConvPairs -> [N_out, C_out]");
  m.def("weight_grad_pairs", &s3d::conv_weight_grad_pairs, py::arg("feats"), py::arg("grad_out"), py::arg("pairs"),
        "feats [N_in, C_in], grad_out [N_out, C_out], ConvPairs -> [K, C_in, C_out]");
}

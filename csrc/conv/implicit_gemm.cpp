// Argument checks, dispatch and host-side planning of the implicit-GEMM convs (implicit_gemm.h):
// the row order, the weight gradient's chunk list and the reduction of its partials (ATen ops, any
// device), and the Python bindings.
#include "conv/implicit_gemm.h"
#include <algorithm>
#include <limits>
#include "common/checks.h"
#include "common/no_autocast.h"
#include "conv/implicit_gemm.cuh"

namespace s3d {

ImplicitTable implicit_table(const at::Tensor& nbr, int64_t n_in, bool sort_rows) {
  const NoAutocast no_autocast;
  S3D_CHECK_DIM(nbr, 2);
  S3D_CHECK_DTYPE(nbr, at::kInt);
  S3D_CHECK_DEVICE(nbr);
  s3d_check_range(n_in, 0, std::numeric_limits<int32_t>::max(), "n_in");  // rows are int32 indices
  ImplicitTable t;
  t.nbr = nbr.contiguous();
  t.n_in = n_in;
  const int64_t n = nbr.size(0), k = std::min<int64_t>(nbr.size(1), 63);
  if (nbr.numel() > 0) {  // the kernels read feats[nbr] unchecked
    const int64_t top = nbr.max().item<int64_t>();
    TORCH_CHECK_VALUE(top < n_in, "nbr holds an index >= N_in = ", n_in, " (rows of feats)");
  }
  if (!sort_rows || n == 0 || k == 0) return t;
  const at::TensorOptions lopt = nbr.options().dtype(at::kLong);
  const at::Tensor bits = at::pow(at::full({k}, 2, lopt), at::arange(k, lopt));  // 2^k, exact in int64
  const at::Tensor mask = ((nbr.narrow(1, 0, k) >= 0).to(at::kLong) * bits).sum(1);
  t.order = std::get<1>(at::sort(mask, /*stable=*/true, /*dim=*/0, /*descending=*/false));
  return t;
}

at::Tensor implicit_chunks(const ConvPairs& p, int64_t chunk, int64_t c_in, int64_t c_out) {
  // chunk <= 0 picks a size; a chunk is at most the pairs of one offset, so larger values add nothing
  s3d_check_range(chunk, std::numeric_limits<int64_t>::min(), int64_t(1) << 40, "chunk");
  s3d_check_range(c_in, 0, std::numeric_limits<int32_t>::max(), "c_in");
  s3d_check_range(c_out, 0, std::numeric_limits<int32_t>::max(), "c_out");
  const int64_t* b = p.begin.data_ptr<int64_t>();
  const int64_t k_total = p.num_offsets(), total = b[k_total];
  if (chunk <= 0) {
    const int64_t tiles = ((c_in + igemm::kBM - 1) / igemm::kBM) * ((c_out + igemm::kBN - 1) / igemm::kBN);
    // about 2048 blocks; with >= 2048 tiles one chunk per offset already gives that many (and the
    // clamp keeps total * tiles inside int64)
    const int64_t want = (total * std::clamp<int64_t>(tiles, 1, 2048) + 2047) / 2048;
    chunk = std::max<int64_t>(8 * igemm::kBK, (want + igemm::kBK - 1) / igemm::kBK * igemm::kBK);
  }
  std::vector<int64_t> rows;
  for (int64_t k = 0; k < k_total; ++k)
    for (int64_t s = b[k]; s < b[k + 1]; s += chunk) {
      rows.push_back(k);
      rows.push_back(s);
      rows.push_back(std::min(chunk, b[k + 1] - s));
    }
  return at::tensor(rows, at::TensorOptions().dtype(at::kLong)).reshape({-1, 3});
}

at::Tensor reduce_chunks(const at::Tensor& partial, const at::Tensor& chunks, int64_t k_total) {
  // one segmented sum over the chunks, which come grouped by offset (an offset without pairs has
  // none and sums to 0), in place of one launch per offset; deterministic, in chunk order
  std::vector<int64_t> counts(static_cast<size_t>(k_total), 0);
  const int64_t* c = chunks.data_ptr<int64_t>();
  for (int64_t i = 0; i < chunks.size(0); ++i) ++counts[static_cast<size_t>(c[i * 3])];
  at::Tensor lengths = at::tensor(counts, at::TensorOptions().dtype(at::kLong));
  if (partial.is_cuda()) lengths = lengths.pin_memory().to(partial.device(), /*non_blocking=*/true);
  // unsafe: skips the argument checks, which copy to the host (a stream sync on CUDA); the lengths
  // are counted here and sum to n_chunks
  return at::segment_reduce(partial, "sum", lengths, /*indices=*/c10::nullopt, /*offsets=*/c10::nullopt,
                            /*axis=*/0, /*unsafe=*/true);
}

static void check_forward(const at::Tensor& feats, const at::Tensor& weight, const ImplicitTable& t) {
  S3D_CHECK_DIM(feats, 2);
  S3D_CHECK_DIM(weight, 3);
  TORCH_CHECK_VALUE(t.nbr.defined(), "table is not initialised");
  TORCH_CHECK_VALUE(feats.size(0) == t.n_in, "feats must have N_in = ", t.n_in, " rows (the table's inputs), got ",
                    feats.sizes());
  TORCH_CHECK_VALUE(weight.size(1) == feats.size(1), "weight must have shape [K, C_in=", feats.size(1),
                    ", C_out], got ", weight.sizes());
  TORCH_CHECK_VALUE(t.nbr.size(1) == weight.size(0), "weight must have K = ", t.nbr.size(1),
                    " offsets (the table's columns), got shape ", weight.sizes());
  TORCH_CHECK_TYPE(feats.scalar_type() == weight.scalar_type(), "feats and weight must have one dtype, got ",
                   feats.scalar_type(), " and ", weight.scalar_type());
  s3d_check_float(feats, "feats");
  S3D_CHECK_DEVICE(feats);
  S3D_CHECK_SAME_DEVICE(feats, weight);
  TORCH_CHECK_VALUE(feats.device() == t.nbr.device(), "feats must be on the table's device ", t.nbr.device(),
                    ", got ", feats.device());
}

static void require_cuda(const at::Tensor& feats, const char* name) {
  TORCH_CHECK_VALUE(feats.is_cuda(), name, " runs the implicit-GEMM CUDA kernels and takes CUDA tensors: feats "
                    "must be on a CUDA device, got ", feats.device(), " (CPU tensors: conv.forward / conv.weight_grad; ",
                    name, "_emulated runs the kernel source on the CPU for tests)");
}

at::Tensor conv_forward_implicit(const at::Tensor& feats, const at::Tensor& weight, const ImplicitTable& t) {
  const NoAutocast no_autocast;
  check_forward(feats, weight, t);
  require_cuda(feats, "conv.forward_implicit");
#ifdef WITH_CUDA
  return conv_forward_implicit_cuda(feats.contiguous(), weight.contiguous(), t.nbr, t.order);
#else
  S3D_NO_CUDA("conv.forward_implicit");
#endif
}

at::Tensor conv_weight_grad_implicit(const at::Tensor& feats, const at::Tensor& grad_out, const ConvPairs& p,
                                     int64_t chunk) {
  const NoAutocast no_autocast;
  check_weight_grad_pairs_args(feats, grad_out, p);
  require_cuda(feats, "conv.weight_grad_implicit");
#ifdef WITH_CUDA
  return conv_weight_grad_implicit_cuda(feats.contiguous(), grad_out.contiguous(), p,
                                        implicit_chunks(p, chunk, feats.size(1), grad_out.size(1)));
#else
  S3D_NO_CUDA("conv.weight_grad_implicit");
#endif
}

at::Tensor conv_forward_implicit_emulated(const at::Tensor& feats, const at::Tensor& weight,
                                          const ImplicitTable& t) {
  const NoAutocast no_autocast;
  check_forward(feats, weight, t);
  TORCH_CHECK_VALUE(!feats.is_cuda(), "conv.forward_implicit_emulated takes CPU tensors, got ", feats.device());
  return conv_forward_implicit_emu(feats.contiguous(), weight.contiguous(), t.nbr, t.order);
}

at::Tensor conv_weight_grad_implicit_emulated(const at::Tensor& feats, const at::Tensor& grad_out,
                                              const ConvPairs& p, int64_t chunk) {
  const NoAutocast no_autocast;
  check_weight_grad_pairs_args(feats, grad_out, p);
  TORCH_CHECK_VALUE(!feats.is_cuda(), "conv.weight_grad_implicit_emulated takes CPU tensors, got ", feats.device());
  return conv_weight_grad_implicit_emu(feats.contiguous(), grad_out.contiguous(), p,
                                       implicit_chunks(p, chunk, feats.size(1), grad_out.size(1)));
}

}  // namespace s3d

void init_implicit_gemm(pybind11::module_& m) {
  namespace py = pybind11;
  py::class_<s3d::ImplicitTable>(m, "ImplicitTable",
                                 "a checked neighbor table and its row order; made by conv.implicit_table")
      .def_readonly("nbr", &s3d::ImplicitTable::nbr)
      .def_readonly("order", &s3d::ImplicitTable::order)
      .def_readonly("n_in", &s3d::ImplicitTable::n_in);
  m.def("implicit_table", &s3d::implicit_table, py::arg("nbr"), py::arg("n_in"), py::arg("sort_rows") = true,
        "nbr int32 [N_out, K] indexing n_in rows -> ImplicitTable (rows sorted by their active offsets)");
  m.def("implicit_chunks", &s3d::implicit_chunks, py::arg("pairs"), py::arg("chunk"), py::arg("c_in"),
        py::arg("c_out"), "the weight gradient's work list: int64 [n_chunks, 3] of (offset, first pair, pairs)");
  m.def("forward_implicit", &s3d::conv_forward_implicit, py::arg("feats"), py::arg("weight"), py::arg("table"),
        "CUDA implicit GEMM: feats [N_in, C_in], weight [K, C_in, C_out], ImplicitTable -> [N_out, C_out]");
  m.def("weight_grad_implicit", &s3d::conv_weight_grad_implicit, py::arg("feats"), py::arg("grad_out"),
        py::arg("pairs"), py::arg("chunk") = 0,
        "CUDA implicit GEMM: feats [N_in, C_in], grad_out [N_out, C_out], ConvPairs -> [K, C_in, C_out]");
  m.def("forward_implicit_emulated", &s3d::conv_forward_implicit_emulated, py::arg("feats"), py::arg("weight"),
        py::arg("table"),
        "forward_implicit's kernel source run on the CPU, one thread per CUDA thread (tests; slow)");
  m.def("weight_grad_implicit_emulated", &s3d::conv_weight_grad_implicit_emulated, py::arg("feats"),
        py::arg("grad_out"), py::arg("pairs"), py::arg("chunk") = 0,
        "weight_grad_implicit's kernel source run on the CPU, one thread per CUDA thread (tests; slow)");
}

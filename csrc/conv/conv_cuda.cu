// CUDA sparse convolution: gather-GEMM-scatter per kernel offset.
//
// The active pairs of every offset are compacted in one pass: the table is transposed to
// [K, N_out] and at::nonzero lists the positions with nbr >= 0 in order, i.e. grouped by
// offset k and ascending in the output row; per-offset counts come from one reduction and one
// small device->host copy. For offset k the matching input rows are gathered into a buffer
// (kernel), multiplied with weight[k] by at::mm (cuBLAS), and the product rows are added into
// the output (kernel). Within one offset every output row appears at most once and the
// offsets run one after another on the current stream, so the scatter needs no atomics and
// the result is deterministic.
//
// float16 / bfloat16 outputs are accumulated across offsets in float32 (at::opmath_type) and
// rounded once at the end; each GEMM itself accumulates in float32 inside cuBLAS.
// The `tile` argument (CPU output-tile size) is not used on CUDA: each offset is one GEMM over
// all its active rows.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <vector>
#include "common/checks.h"
#include "common/cuda_launch.cuh"
#include "conv/conv.h"

namespace s3d {
namespace {

// out[j, :] = src[idx[j], :] for j < m (rows of c elements).
template <typename T>
__global__ void gather_rows_kernel(const T* __restrict__ src, const int64_t* __restrict__ idx, int64_t m, int64_t c,
                                   T* __restrict__ out) {
  S3D_GRID_STRIDE(e, m * c) {
    const int64_t j = e / c, q = e - j * c;
    out[e] = src[idx[j] * c + q];
  }
}

// out[idx[j], :] += src[j, :] for j < m; idx holds distinct rows.
template <typename T, typename Acc>
__global__ void scatter_add_rows_kernel(const T* __restrict__ src, const int64_t* __restrict__ idx, int64_t m,
                                        int64_t c, Acc* __restrict__ out) {
  S3D_GRID_STRIDE(e, m * c) {
    const int64_t j = e / c, q = e - j * c;
    out[idx[j] * c + q] += static_cast<Acc>(src[e]);
  }
}

// Active pairs of every offset: src (input row) and dst (output row), int64, grouped by offset;
// begin[k] .. begin[k + 1] are the pairs of offset k.
struct Pairs {
  at::Tensor src, dst;
  std::vector<int64_t> begin;
  int64_t max_count = 0;
};

Pairs compact_pairs(const at::Tensor& nbr, int64_t n_in) {
  const int64_t n_out = nbr.size(0), k_total = nbr.size(1);
  Pairs p;
  const at::Tensor nbr_t = nbr.t().contiguous();  // [K, N_out]
  const at::Tensor active = nbr_t >= 0;
  // counts [K] and the largest index in one copy
  const at::Tensor stats =
      at::cat({active.sum(at::IntArrayRef{1}, /*keepdim=*/false, at::kLong), nbr_t.max().to(at::kLong).reshape({1})}).cpu();
  const int64_t* st = stats.data_ptr<int64_t>();
  TORCH_CHECK_VALUE(st[k_total] < n_in, "nbr holds an index >= N_in = ", n_in, " (rows of feats)");
  p.begin.resize(k_total + 1, 0);
  for (int64_t k = 0; k < k_total; ++k) {
    p.begin[k + 1] = p.begin[k] + st[k];
    p.max_count = std::max(p.max_count, st[k]);
  }
  const at::Tensor pos = at::nonzero(active.reshape({-1})).reshape({-1});  // ascending flat positions
  p.src = nbr_t.reshape({-1}).index_select(0, pos).to(at::kLong);
  p.dst = pos.remainder(n_out);
  return p;
}

template <typename T>
void gather_rows(const at::Tensor& src, const at::Tensor& idx, int64_t m, at::Tensor& out, cudaStream_t stream) {
  const int64_t c = src.size(1);
  if (m == 0 || c == 0) return;
  gather_rows_kernel<T><<<cuda::blocks_for(m * c), cuda::kThreads, 0, stream>>>(
      src.data_ptr<T>(), idx.data_ptr<int64_t>(), m, c, out.data_ptr<T>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

at::Tensor conv_forward_cuda(const at::Tensor& feats, const at::Tensor& weight, const at::Tensor& nbr, int64_t tile) {
  (void)tile;  // see the header comment of this file
  const c10::cuda::CUDAGuard guard(feats.device());
  const int64_t n_in = feats.size(0), c_in = feats.size(1);
  const int64_t k_total = weight.size(0), c_out = weight.size(2);
  const int64_t n_out = nbr.size(0);
  const at::ScalarType st = feats.scalar_type();
  TORCH_CHECK_TYPE(st == at::kFloat || st == at::kDouble || st == at::kHalf || st == at::kBFloat16,
                   "conv.forward on CUDA supports float32, float64, float16 and bfloat16, got ", st);
  if (n_out == 0 || k_total == 0 || c_in == 0 || c_out == 0) return at::zeros({n_out, c_out}, feats.options());
  const Pairs pairs = compact_pairs(nbr, n_in);
  const at::ScalarType acc_type = at::toOpMathType(st);
  at::Tensor acc = at::zeros({n_out, c_out}, feats.options().dtype(acc_type));
  if (pairs.max_count == 0) return acc.to(st);
  const cudaStream_t stream = cuda::current_stream();
  at::Tensor gbuf = at::empty({pairs.max_count, c_in}, feats.options());
  at::Tensor pbuf = at::empty({pairs.max_count, c_out}, feats.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, st, "conv_forward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    for (int64_t k = 0; k < k_total; ++k) {
      const int64_t b = pairs.begin[k], m = pairs.begin[k + 1] - b;
      if (m == 0) continue;
      const at::Tensor src = pairs.src.narrow(0, b, m), dst = pairs.dst.narrow(0, b, m);
      at::Tensor g = gbuf.narrow(0, 0, m);
      at::Tensor p = pbuf.narrow(0, 0, m);
      gather_rows<scalar_t>(feats, src, m, g, stream);
      at::mm_out(p, g, weight[k]);
      scatter_add_rows_kernel<scalar_t, acc_t><<<cuda::blocks_for(m * c_out), cuda::kThreads, 0, stream>>>(
          p.data_ptr<scalar_t>(), dst.data_ptr<int64_t>(), m, c_out, acc.data_ptr<acc_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  return acc_type == st ? acc : acc.to(st);
}

at::Tensor conv_weight_grad_cuda(const at::Tensor& feats, const at::Tensor& grad_out, const at::Tensor& nbr,
                                 int64_t tile) {
  (void)tile;  // see the header comment of this file
  const c10::cuda::CUDAGuard guard(feats.device());
  const int64_t n_in = feats.size(0), c_in = feats.size(1);
  const int64_t n_out = grad_out.size(0), c_out = grad_out.size(1);
  const int64_t k_total = nbr.size(1);
  const at::ScalarType st = feats.scalar_type();
  TORCH_CHECK_TYPE(st == at::kFloat || st == at::kDouble || st == at::kHalf || st == at::kBFloat16,
                   "conv.weight_grad on CUDA supports float32, float64, float16 and bfloat16, got ", st);
  at::Tensor grad_w = at::zeros({k_total, c_in, c_out}, feats.options());
  if (n_out == 0 || k_total == 0 || c_in == 0 || c_out == 0) return grad_w;
  const Pairs pairs = compact_pairs(nbr, n_in);
  if (pairs.max_count == 0) return grad_w;
  const cudaStream_t stream = cuda::current_stream();
  at::Tensor xbuf = at::empty({pairs.max_count, c_in}, feats.options());
  at::Tensor gbuf = at::empty({pairs.max_count, c_out}, feats.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, st, "conv_weight_grad_cuda", [&] {
    for (int64_t k = 0; k < k_total; ++k) {
      const int64_t b = pairs.begin[k], m = pairs.begin[k + 1] - b;
      if (m == 0) continue;
      const at::Tensor src = pairs.src.narrow(0, b, m), dst = pairs.dst.narrow(0, b, m);
      at::Tensor x = xbuf.narrow(0, 0, m);
      at::Tensor g = gbuf.narrow(0, 0, m);
      gather_rows<scalar_t>(feats, src, m, x, stream);
      gather_rows<scalar_t>(grad_out, dst, m, g, stream);
      at::Tensor gw = grad_w[k];
      at::mm_out(gw, x.t(), g);  // one GEMM per offset: cuBLAS accumulates in float32 for half types
    }
  });
  return grad_w;
}

}  // namespace s3d

// CUDA sparse convolution: gather-GEMM-scatter per kernel offset over compacted pairs
// (conv_pairs.h). The pairs are built once per kernel map (conv.pairs, ATen ops) and shared by the
// forward pass, the input gradient (the swapped pairs with the transposed weight) and the weight
// gradient; the table-based entry points (conv.forward / conv.weight_grad) compact on every call.
//
// For offset k the matching input rows are gathered into a buffer (kernel), multiplied with
// weight[k] by at::mm (cuBLAS), and the product rows are added into the output (kernel). Within
// one offset every output row appears at most once and the offsets run one after another on the
// current stream, so the scatter needs no atomics and the result is deterministic.
//
// float16 / bfloat16 outputs are accumulated across offsets in float32 (at::opmath_type) and
// rounded once at the end; each GEMM itself accumulates in float32 inside cuBLAS.
// The `tile` argument (CPU output-tile size) is not used on CUDA: each offset is one GEMM over
// all its active rows.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include "common/checks.h"
#include "common/cuda_launch.cuh"
#include "conv/conv.h"
#include "conv/conv_pairs.h"

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

template <typename T>
void gather_rows(const at::Tensor& src, const at::Tensor& idx, int64_t m, at::Tensor& out, cudaStream_t stream) {
  const int64_t c = src.size(1);
  if (m == 0 || c == 0) return;
  gather_rows_kernel<T><<<cuda::blocks_for(m * c), cuda::kThreads, 0, stream>>>(
      src.data_ptr<T>(), idx.data_ptr<int64_t>(), m, c, out.data_ptr<T>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// The largest number of pairs of one offset (the size of the gather buffers).
int64_t max_count(const ConvPairs& p) {
  const int64_t* b = p.begin.data_ptr<int64_t>();
  int64_t m = 0;
  for (int64_t k = 0; k < p.num_offsets(); ++k) m = std::max(m, b[k + 1] - b[k]);
  return m;
}

}  // namespace

at::Tensor conv_forward_pairs_cuda(const at::Tensor& feats, const at::Tensor& weight, const ConvPairs& p) {
  const c10::cuda::CUDAGuard guard(feats.device());
  const int64_t c_in = feats.size(1), c_out = weight.size(2), k_total = p.num_offsets();
  const at::ScalarType st = feats.scalar_type();
  const at::ScalarType acc_type = at::toOpMathType(st);
  at::Tensor acc = at::zeros({p.n_out, c_out}, feats.options().dtype(acc_type));
  const int64_t most = max_count(p);
  if (p.n_out == 0 || c_in == 0 || c_out == 0 || most == 0) return acc.to(st);
  const cudaStream_t stream = cuda::current_stream();
  at::Tensor gbuf = at::empty({most, c_in}, feats.options());
  at::Tensor pbuf = at::empty({most, c_out}, feats.options());
  const int64_t* b = p.begin.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, st, "conv_forward_pairs_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    for (int64_t k = 0; k < k_total; ++k) {
      const int64_t m = b[k + 1] - b[k];
      if (m == 0) continue;
      const at::Tensor src = p.src.narrow(0, b[k], m), dst = p.dst.narrow(0, b[k], m);
      at::Tensor g = gbuf.narrow(0, 0, m);
      at::Tensor prod = pbuf.narrow(0, 0, m);
      gather_rows<scalar_t>(feats, src, m, g, stream);
      at::mm_out(prod, g, weight[k]);
      scatter_add_rows_kernel<scalar_t, acc_t><<<cuda::blocks_for(m * c_out), cuda::kThreads, 0, stream>>>(
          prod.data_ptr<scalar_t>(), dst.data_ptr<int64_t>(), m, c_out, acc.data_ptr<acc_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  return acc_type == st ? acc : acc.to(st);
}

at::Tensor conv_weight_grad_pairs_cuda(const at::Tensor& feats, const at::Tensor& grad_out, const ConvPairs& p) {
  const c10::cuda::CUDAGuard guard(feats.device());
  const int64_t c_in = feats.size(1), c_out = grad_out.size(1), k_total = p.num_offsets();
  const at::ScalarType st = feats.scalar_type();
  at::Tensor grad_w = at::zeros({k_total, c_in, c_out}, feats.options());
  const int64_t most = max_count(p);
  if (p.n_out == 0 || c_in == 0 || c_out == 0 || most == 0) return grad_w;
  const cudaStream_t stream = cuda::current_stream();
  at::Tensor xbuf = at::empty({most, c_in}, feats.options());
  at::Tensor gbuf = at::empty({most, c_out}, feats.options());
  const int64_t* b = p.begin.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, st, "conv_weight_grad_pairs_cuda", [&] {
    for (int64_t k = 0; k < k_total; ++k) {
      const int64_t m = b[k + 1] - b[k];
      if (m == 0) continue;
      const at::Tensor src = p.src.narrow(0, b[k], m), dst = p.dst.narrow(0, b[k], m);
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

at::Tensor conv_forward_cuda(const at::Tensor& feats, const at::Tensor& weight, const at::Tensor& nbr, int64_t tile) {
  (void)tile;  // see the header comment of this file
  const at::ScalarType st = feats.scalar_type();
  TORCH_CHECK_TYPE(st == at::kFloat || st == at::kDouble || st == at::kHalf || st == at::kBFloat16,
                   "conv.forward on CUDA supports float32, float64, float16 and bfloat16, got ", st);
  return conv_forward_pairs_cuda(feats, weight, conv_pairs(nbr, feats.size(0)));
}

at::Tensor conv_weight_grad_cuda(const at::Tensor& feats, const at::Tensor& grad_out, const at::Tensor& nbr,
                                 int64_t tile) {
  (void)tile;  // see the header comment of this file
  const at::ScalarType st = feats.scalar_type();
  TORCH_CHECK_TYPE(st == at::kFloat || st == at::kDouble || st == at::kHalf || st == at::kBFloat16,
                   "conv.weight_grad on CUDA supports float32, float64, float16 and bfloat16, got ", st);
  return conv_weight_grad_pairs_cuda(feats, grad_out, conv_pairs(nbr, feats.size(0)));
}

}  // namespace s3d

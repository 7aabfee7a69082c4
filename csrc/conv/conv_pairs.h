// The active (input row, output row) pairs of a convolution, compacted per kernel offset: the
// form the CUDA kernels run on, built once per kernel map and shared by the forward pass and
// both backward passes.
//
//   out[dst[j]] += feats[src[j]] @ weight[k]      for j in [begin[k], begin[k + 1])
//
// Within one offset every output row and every input row appears at most once, so both the
// forward scatter (into dst) and the input-gradient scatter (into src) need no atomics.
#pragma once
#include <torch/extension.h>

namespace s3d {

struct ConvPairs {
  at::Tensor src;    // int64 [P], input rows, on the device of the neighbor table
  at::Tensor dst;    // int64 [P], output rows (ascending within an offset for a compacted table)
  at::Tensor begin;  // int64 [K + 1], on the CPU: pairs of offset k are [begin[k], begin[k + 1])
  int64_t n_in = 0, n_out = 0;

  int64_t num_offsets() const { return begin.size(0) - 1; }
  // The same pairs with inputs and outputs exchanged: the transposed conv, or the input gradient.
  ConvPairs swapped() const;
};

// Compacts a neighbor table nbr int32 [N_out, K] (entries < 0 absent) whose entries index N_in
// input rows; raises ValueError for an entry >= n_in. Any device (ATen ops).
ConvPairs conv_pairs(const at::Tensor& nbr, int64_t n_in);

// feats [N_in, C_in], weight [K, C_in, C_out] -> [N_out, C_out]; float16/bfloat16 accumulate in float32.
at::Tensor conv_forward_pairs(const at::Tensor& feats, const at::Tensor& weight, const ConvPairs& p);
// feats [N_in, C_in], grad_out [N_out, C_out] -> [K, C_in, C_out].
at::Tensor conv_weight_grad_pairs(const at::Tensor& feats, const at::Tensor& grad_out, const ConvPairs& p);

// The argument checks of a weight gradient over pairs (shapes, dtypes, devices); raises ValueError /
// TypeError naming the argument. Shared by the pair-list and implicit-GEMM weight gradients.
void check_weight_grad_pairs_args(const at::Tensor& feats, const at::Tensor& grad_out, const ConvPairs& p);

at::Tensor conv_forward_pairs_generic(const at::Tensor& feats, const at::Tensor& weight, const ConvPairs& p);
at::Tensor conv_weight_grad_pairs_generic(const at::Tensor& feats, const at::Tensor& grad_out, const ConvPairs& p);
#ifdef WITH_CUDA
at::Tensor conv_forward_pairs_cuda(const at::Tensor& feats, const at::Tensor& weight, const ConvPairs& p);
at::Tensor conv_weight_grad_pairs_cuda(const at::Tensor& feats, const at::Tensor& grad_out, const ConvPairs& p);
#endif

}  // namespace s3d

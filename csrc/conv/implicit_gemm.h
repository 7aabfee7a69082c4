// Implicit-GEMM sparse convolution (the kernels are in implicit_gemm.cuh): the forward pass and
// the input gradient over a neighbor table, the weight gradient over the pair lists of
// conv_pairs.h. CUDA tensors only; *_emulated runs the same kernel source on the CPU with one
// std::thread per CUDA thread, to test the kernels' indexing on machines without a GPU (slow).
//
//   forward:      feats [N_in, C_in], weight [K, C_in, C_out], ImplicitTable (nbr [N_out, K]) -> [N_out, C_out]
//   weight_grad:  feats [N_in, C_in], grad_out [N_out, C_out], ConvPairs -> [K, C_in, C_out]
//
// float16 / bfloat16 accumulate in float32 (tensor cores through wmma on sm_70+ / sm_80+) and are
// rounded once; float32 and float64 accumulate in their own type (SIMT). Deterministic: every
// output element is written by one thread, and the weight gradient's per-chunk partials are summed
// in a fixed order.
#pragma once
#include <torch/extension.h>
#include "conv/conv_pairs.h"

namespace s3d {

// A neighbor table checked against its input rows, with the order in which the kernel visits its
// rows: sorted by their set of active offsets (bit mask of offsets 0..62, stable), so the rows of
// one kernel tile share offsets and the tile skips the others. Made only by implicit_table(), so
// its entries are always valid rows of an N_in-row input and `order` is a permutation.
struct ImplicitTable {
  at::Tensor nbr;    // int32 [N_out, K], contiguous
  at::Tensor order;  // int64 [N_out] on nbr's device, or undefined: rows in table order
  int64_t n_in = 0;
};

// nbr int32 [N_out, K] (entries < 0 absent) indexing n_in input rows -> ImplicitTable; raises
// ValueError for an entry >= n_in. One device-to-host copy.
ImplicitTable implicit_table(const at::Tensor& nbr, int64_t n_in, bool sort_rows);

// The weight gradient's work list: int64 [n_chunks, 3] on the CPU, rows (offset k, first pair,
// number of pairs), at most `chunk` pairs each, never crossing offsets; chunk <= 0 picks a size
// that gives the GPU about 2048 blocks.
at::Tensor implicit_chunks(const ConvPairs& p, int64_t chunk, int64_t c_in, int64_t c_out);
// partial [n_chunks, C_in, C_out] (any device) -> [K, C_in, C_out]: the chunks of each offset summed
// in order, in one segmented sum; chunks is implicit_chunks' list (CPU).
at::Tensor reduce_chunks(const at::Tensor& partial, const at::Tensor& chunks, int64_t k_total);

at::Tensor conv_forward_implicit(const at::Tensor& feats, const at::Tensor& weight, const ImplicitTable& t);
at::Tensor conv_weight_grad_implicit(const at::Tensor& feats, const at::Tensor& grad_out, const ConvPairs& p,
                                     int64_t chunk);
at::Tensor conv_forward_implicit_emulated(const at::Tensor& feats, const at::Tensor& weight,
                                          const ImplicitTable& t);
at::Tensor conv_weight_grad_implicit_emulated(const at::Tensor& feats, const at::Tensor& grad_out,
                                              const ConvPairs& p, int64_t chunk);

// The device parts (arguments checked by the callers above; chunks on the CPU).
at::Tensor conv_forward_implicit_emu(const at::Tensor& feats, const at::Tensor& weight, const at::Tensor& nbr,
                                     const at::Tensor& order);
at::Tensor conv_weight_grad_implicit_emu(const at::Tensor& feats, const at::Tensor& grad_out, const ConvPairs& p,
                                         const at::Tensor& chunks);
#ifdef WITH_CUDA
at::Tensor conv_forward_implicit_cuda(const at::Tensor& feats, const at::Tensor& weight, const at::Tensor& nbr,
                                      const at::Tensor& order);
at::Tensor conv_weight_grad_implicit_cuda(const at::Tensor& feats, const at::Tensor& grad_out, const ConvPairs& p,
                                          const at::Tensor& chunks);
#endif

}  // namespace s3d

// Direct CPU sparse convolution for float32 with C_out in {8, 16, ..., 64}: every pair is multiplied
// straight from the input row into the output row (AVX2 + FMA registers), with no gather buffer, no
// scatter and no GEMM call per (tile, offset). At the channel counts of sparse networks (16-64) the
// per-call cost of a GEMM on a few hundred gathered rows dominates the arithmetic; this path does
// the same sums with the weights of one offset held in L1 and 8 independent FMA chains.
//
// Same contract as conv_cpu.cpp's tiled path: threads own whole output tiles (forward) or a fixed
// number of chunks added in order (weight gradient), so results do not depend on the thread count.
// Used when conv_direct_forward_ok() / conv_direct_weight_grad_ok() say so (float32, C_out % 8 == 0,
// C_out <= 64, a CPU with AVX2 and FMA; for the weight gradient also C_in * C_out <= 1024); conv_cpu.cpp
// takes the tiled GEMM path otherwise.
#pragma once
#include <torch/extension.h>

namespace s3d {

// True when conv_forward_direct handles feats of this dtype and this C_out on this CPU.
bool conv_direct_forward_ok(at::ScalarType dtype, int64_t c_out);
// True when conv_weight_grad_direct is used: as above and C_in * C_out <= 1024. Above that the tiled path's
// one GEMM per (tile, offset) over gathered rows is faster (measured: 0.58x at 64 -> 64, 1.17x at 32 -> 32,
// 2.4x at 16 -> 16 for the direct kernel; benchmarks/bm_conv.py).
bool conv_direct_weight_grad_ok(at::ScalarType dtype, int64_t c_in, int64_t c_out);

// out [N_out, C_out] (zeroed by the caller) += sum_k feats[nbr[o, k]] @ weight[k]. Sets *bad when nbr
// holds an index >= N_in (those entries are skipped).
void conv_forward_direct(const at::Tensor& feats, const at::Tensor& weight, const at::Tensor& nbr, int64_t tile,
                         at::Tensor& out, bool* bad);

// -> grad_weight [K, C_in, C_out] = sum_o feats[nbr[o, k]]^T grad_out[o]. Sets *bad as above.
at::Tensor conv_weight_grad_direct(const at::Tensor& feats, const at::Tensor& grad_out, const at::Tensor& nbr,
                                   int64_t tile, bool* bad);

}  // namespace s3d

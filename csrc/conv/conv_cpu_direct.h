// Direct CPU sparse convolution for float32 with C_out a multiple of 8 up to 64 (AVX2) or of 16 up to 128
// (AVX-512): every pair is multiplied
// straight from the input row into the output row in vector registers, with no gather buffer, no
// scatter and no GEMM call per (tile, offset). At the channel counts of sparse networks (16-64) the
// per-call cost of a GEMM on a few hundred gathered rows dominates the arithmetic; this path does
// the same sums with the weights of one offset held in L1 and many independent FMA chains.
//
// Two kernel sets: AVX-512F (C_out a multiple of 16 up to 128; conv_cpu_direct512.cpp, several pairs per
// weight load) and AVX2 + FMA (any multiple of 8 up to 64). ``simd`` caps the set a call may use ("auto": the
// widest this CPU has), so tests and benchmarks can run each set on one machine.
//
// Same contract as conv_cpu.cpp's tiled path: threads own whole output tiles (forward) or a fixed
// number of chunks added in order (weight gradient), so results do not depend on the thread count.
// conv_cpu.cpp takes the tiled GEMM path where conv_direct_forward_isa() / conv_direct_weight_grad_isa()
// say kNone (not float32, C_out not a multiple of 8, C_out above what the CPU's sets take, a CPU without AVX2,
// simd="none"; for the AVX2 weight gradient also C_in * C_out > 1024).
#pragma once
#include <torch/extension.h>

#include <string>

namespace s3d {

// The instruction sets of the direct kernels, narrowest first (kNone: the tiled GEMM path).
enum class Simd : int { kNone = 0, kAvx2 = 1, kAvx512 = 2 };

// "auto" -> kAvx512 (a cap: each call takes the widest set the CPU has and C_out allows); "avx512" / "avx2" ->
// that cap, ValueError when this CPU lacks it; "none" -> kNone. Anything else: ValueError naming simd.
Simd parse_simd(const std::string& simd);
// "avx512", "avx2" or "gemm" (kNone: the tiled GEMM path).
const char* simd_name(Simd isa);

// The kernel set conv_forward_direct uses for feats of this dtype and C_out, at most ``simd``; kNone: the tiled path.
Simd conv_direct_forward_isa(at::ScalarType dtype, int64_t c_out, Simd simd);
// The same for the weight gradient: as the forward, except that the AVX2 set stops at C_in * C_out = 1024, above
// which the tiled path's one GEMM per (tile, offset) over gathered rows is faster (measured: 0.58x at 64 -> 64,
// 1.17x at 32 -> 32, 2.4x at 16 -> 16 for the AVX2 kernel; benchmarks/bm_conv.py).
Simd conv_direct_weight_grad_isa(at::ScalarType dtype, int64_t c_in, int64_t c_out, Simd simd);

// out [N_out, C_out] (zeroed by the caller) += sum_k feats[nbr[o, k]] @ weight[k] with the kernel set ``isa``
// (from conv_direct_forward_isa, not kNone). Sets *bad when nbr holds an index >= N_in (those entries are skipped).
void conv_forward_direct(const at::Tensor& feats, const at::Tensor& weight, const at::Tensor& nbr, int64_t tile,
                         Simd isa, at::Tensor& out, bool* bad);

// -> grad_weight [K, C_in, C_out] = sum_o feats[nbr[o, k]]^T grad_out[o] with the kernel set ``isa`` (from
// conv_direct_weight_grad_isa, not kNone). Sets *bad as above.
at::Tensor conv_weight_grad_direct(const at::Tensor& feats, const at::Tensor& grad_out, const at::Tensor& nbr,
                                   int64_t tile, Simd isa, bool* bad);

}  // namespace s3d

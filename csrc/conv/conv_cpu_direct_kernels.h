// The row and pair kernels behind conv_cpu_direct.cpp's drivers, one set per instruction set: AVX2 + FMA
// (conv_cpu_direct.cpp) and AVX-512F (conv_cpu_direct512.cpp). Both sets have the same signatures, so the
// drivers (tiling, threads, partial sums) are shared and only the inner loops differ.
#pragma once
#include <cstdint>

namespace s3d {
namespace direct {

// out rows [r0, r1) (each [C_out], C_out fixed by the kernel) += sum_k feats[nbr[r, k]] @ weight[k], offset by
// offset; sets *bad on an index >= n_in (skipped). weight [K, c_in, C_out], nbr [N_out, k_total].
using ForwardFn = void (*)(const float* feats, int64_t n_in, int64_t c_in, const float* weight, const int32_t* nbr,
                           int64_t k_total, int64_t r0, int64_t r1, float* out, bool* bad);
// dw [c_in, C_out] += sum over the m pairs p of feats[src[p], :]^T grad_out[dst[p], :].
using WeightGradFn = void (*)(const float* feats, int64_t c_in, const float* grad_out, const int32_t* src,
                              const int32_t* dst, int64_t m, float* dw);

// AVX-512F kernels for C_out a multiple of 16 up to 16 * kMaxVectors512 = 128 (conv_cpu_direct512.cpp); nullptr for
// other C_out.
constexpr int64_t kMaxVectors512 = 8;
ForwardFn forward_fn_avx512(int64_t c_out);
WeightGradFn weight_grad_fn_avx512(int64_t c_out);

}  // namespace direct
}  // namespace s3d

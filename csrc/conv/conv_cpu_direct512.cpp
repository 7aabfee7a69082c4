// AVX-512F kernels of the direct float32 CPU conv (conv_cpu_direct.h), for C_out a multiple of 16 up to 128:
// NV = C_out / 16 registers per row. Compiled with a function attribute (the extension keeps the default
// target); the drivers of conv_cpu_direct.cpp call them only when the running CPU has AVX-512F.
//
// Against the AVX2 kernels: twice the floats per instruction, 32 registers, and register blocking over several
// pairs at once, so one load of a weight vector (forward) or of a grad_out vector (weight gradient) feeds several
// FMAs. Every output row still takes its terms in offset order, and within an offset in input-channel order:
// results do not depend on the tiling or the thread count.
#include <immintrin.h>

#include <algorithm>

#include "conv/conv_cpu_direct_kernels.h"

namespace s3d {
namespace direct {
namespace {

#define S3D_AVX512 __attribute__((target("avx512f")))

// R pairs of one offset (distinct output rows): out[rows[r]] += x[r] @ w, w [c_in, 16 NV] row-major.
template <int NV, int R>
S3D_AVX512 inline void group_forward(const float* const* x, int64_t c_in, const float* w, float* out,
                                     const int64_t* rows) {
  constexpr int CO = 16 * NV;
  __m512 acc[R][NV];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_loadu_ps(out + rows[r] * CO + 16 * j);
  for (int64_t q = 0; q < c_in; ++q) {
    __m512 wv[NV];
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) wv[j] = _mm512_loadu_ps(w + q * CO + 16 * j);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 xb = _mm512_set1_ps(x[r][q]);
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_fmadd_ps(xb, wv[j], acc[r][j]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) _mm512_storeu_ps(out + rows[r] * CO + 16 * j, acc[r][j]);
}

// Output rows [r0, r1), offset by offset; the present pairs of an offset go R at a time (the rest one by one).
template <int NV>
S3D_AVX512 void rows_forward(const float* feats, int64_t n_in, int64_t c_in, const float* weight, const int32_t* nbr,
                             int64_t k_total, int64_t r0, int64_t r1, float* out, bool* bad) {
  constexpr int CO = 16 * NV;
  constexpr int R = NV <= 2 ? 8 : (NV <= 4 ? 4 : 2);  // R * NV accumulators (8-16) + NV weights: at most 24 of 32
  const float* src[R];
  int64_t rows[R];
  for (int64_t k = 0; k < k_total; ++k) {
    const float* wk = weight + k * c_in * CO;
    int n = 0;
    for (int64_t r = r0; r < r1; ++r) {
      const int32_t s = nbr[r * k_total + k];
      if (s < 0) continue;
      if (s >= n_in) {
        *bad = true;
        continue;
      }
      src[n] = feats + static_cast<int64_t>(s) * c_in;
      rows[n] = r;
      if (++n == R) {
        group_forward<NV, R>(src, c_in, wk, out, rows);
        n = 0;
      }
    }
    for (int i = 0; i < n; ++i) group_forward<NV, 1>(src + i, c_in, wk, out, rows + i);
  }
}

// dw rows [q0, q0 + QB) += sum over the m pairs of feats[src[p], q0 + b] * grad_out[dst[p], :]; the QB x NV
// block stays in registers over the pairs.
template <int NV, int QB>
S3D_AVX512 inline void block_weight_grad(const float* feats, int64_t c_in, const float* grad_out, const int32_t* src,
                                         const int32_t* dst, int64_t m, int64_t q0, float* dw) {
  constexpr int CO = 16 * NV;
  __m512 acc[QB][NV];
#pragma GCC unroll 8
  for (int b = 0; b < QB; ++b)
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) acc[b][j] = _mm512_loadu_ps(dw + (q0 + b) * CO + 16 * j);
  for (int64_t p = 0; p < m; ++p) {
    const float* g = grad_out + static_cast<int64_t>(dst[p]) * CO;
    const float* x = feats + static_cast<int64_t>(src[p]) * c_in + q0;
    __m512 gv[NV];
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) gv[j] = _mm512_loadu_ps(g + 16 * j);
#pragma GCC unroll 8
    for (int b = 0; b < QB; ++b) {
      const __m512 xb = _mm512_set1_ps(x[b]);
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) acc[b][j] = _mm512_fmadd_ps(xb, gv[j], acc[b][j]);
    }
  }
#pragma GCC unroll 8
  for (int b = 0; b < QB; ++b)
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) _mm512_storeu_ps(dw + (q0 + b) * CO + 16 * j, acc[b][j]);
}

// The pairs in chunks whose rows stay in L1 while every block of input channels passes over them.
template <int NV>
S3D_AVX512 void pairs_weight_grad(const float* feats, int64_t c_in, const float* grad_out, const int32_t* src,
                                  const int32_t* dst, int64_t m, float* dw) {
  constexpr int QB = NV <= 2 ? 8 : (NV <= 4 ? 4 : 2);  // QB * NV accumulators (8-16) + NV grad_out vectors
  constexpr int64_t kChunk = 64;
  for (int64_t p0 = 0; p0 < m; p0 += kChunk) {
    const int64_t mc = std::min(kChunk, m - p0);
    int64_t q0 = 0;
    for (; q0 + QB <= c_in; q0 += QB)
      block_weight_grad<NV, QB>(feats, c_in, grad_out, src + p0, dst + p0, mc, q0, dw);
    for (; q0 < c_in; ++q0) block_weight_grad<NV, 1>(feats, c_in, grad_out, src + p0, dst + p0, mc, q0, dw);
  }
}

}  // namespace

ForwardFn forward_fn_avx512(int64_t c_out) {
  static constexpr ForwardFn fns[kMaxVectors512] = {rows_forward<1>, rows_forward<2>, rows_forward<3>,
                                                    rows_forward<4>, rows_forward<5>, rows_forward<6>,
                                                    rows_forward<7>, rows_forward<8>};
  return c_out > 0 && c_out % 16 == 0 && c_out / 16 <= kMaxVectors512 ? fns[c_out / 16 - 1] : nullptr;
}

WeightGradFn weight_grad_fn_avx512(int64_t c_out) {
  static constexpr WeightGradFn fns[kMaxVectors512] = {
      pairs_weight_grad<1>, pairs_weight_grad<2>, pairs_weight_grad<3>, pairs_weight_grad<4>,
      pairs_weight_grad<5>, pairs_weight_grad<6>, pairs_weight_grad<7>, pairs_weight_grad<8>};
  return c_out > 0 && c_out % 16 == 0 && c_out / 16 <= kMaxVectors512 ? fns[c_out / 16 - 1] : nullptr;
}

}  // namespace direct
}  // namespace s3d

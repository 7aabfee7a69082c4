// Direct float32 CPU sparse convolution (see conv_cpu_direct.h): the drivers, the instruction-set choice and
// the AVX2 + FMA kernels (the AVX-512 ones are in conv_cpu_direct512.cpp). The kernels are compiled with a
// function attribute, so the extension itself keeps the default target; the CPU is checked before they run.
#include "conv/conv_cpu_direct.h"

#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <atomic>

#include "conv/conv_cpu_direct_kernels.h"
#include "conv/tile_rows.h"

namespace s3d {
namespace {

using direct::ForwardFn;
using direct::WeightGradFn;

#define S3D_AVX2 __attribute__((target("avx2,fma")))

constexpr int64_t kMaxVectors = 8;  // C_out <= 64: 8 vectors of 8 floats per output row

// o[0, 8 NV) += x[0, c_in) @ w [c_in, 8 NV] (row-major). NS interleaved partial sums keep 8 FMA chains
// in flight when the row is narrow.
template <int NV>
S3D_AVX2 inline void pair_forward(const float* x, int64_t c_in, const float* w, float* o) {
  constexpr int NS = NV >= 8 ? 1 : 8 / NV;
  constexpr int CO = 8 * NV;
  __m256 acc[NS][NV];
#pragma GCC unroll 8
  for (int j = 0; j < NV; ++j) acc[0][j] = _mm256_loadu_ps(o + 8 * j);
#pragma GCC unroll 8
  for (int s = 1; s < NS; ++s)
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) acc[s][j] = _mm256_setzero_ps();
  int64_t q = 0;
  for (; q + NS <= c_in; q += NS) {
#pragma GCC unroll 8
    for (int s = 0; s < NS; ++s) {
      const __m256 xv = _mm256_broadcast_ss(x + q + s);
      const float* wq = w + (q + s) * CO;
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) acc[s][j] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(wq + 8 * j), acc[s][j]);
    }
  }
  for (; q < c_in; ++q) {
    const __m256 xv = _mm256_broadcast_ss(x + q);
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) acc[0][j] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w + q * CO + 8 * j), acc[0][j]);
  }
#pragma GCC unroll 8
  for (int s = 1; s < NS; ++s)
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) acc[0][j] = _mm256_add_ps(acc[0][j], acc[s][j]);
#pragma GCC unroll 8
  for (int j = 0; j < NV; ++j) _mm256_storeu_ps(o + 8 * j, acc[0][j]);
}

// Output rows [r0, r1): offset by offset (the offset's weights stay in L1), each present pair added into
// its output row. The rows' sums run in offset order whatever the tiling: deterministic.
template <int NV>
S3D_AVX2 void rows_forward(const float* feats, int64_t n_in, int64_t c_in, const float* weight, const int32_t* nbr,
                           int64_t k_total, int64_t r0, int64_t r1, float* out, bool* bad) {
  constexpr int CO = 8 * NV;
  for (int64_t k = 0; k < k_total; ++k) {
    const float* wk = weight + k * c_in * CO;
    for (int64_t r = r0; r < r1; ++r) {
      const int32_t s = nbr[r * k_total + k];
      if (s < 0) continue;
      if (s >= n_in) {
        *bad = true;
        continue;
      }
      pair_forward<NV>(feats + static_cast<int64_t>(s) * c_in, c_in, wk, out + r * CO);
    }
  }
}

// dw rows [q0, q0 + QB) of one offset ([c_in, 8 NV] row-major) += sum over the m pairs of
// feats[src[p], q0 + b] * grad_out[dst[p], :]; the QB x NV block stays in registers over all pairs.
template <int NV, int QB>
S3D_AVX2 inline void block_weight_grad(const float* feats, int64_t c_in, const float* grad_out, const int32_t* src,
                                       const int32_t* dst, int64_t m, int64_t q0, float* dw) {
  constexpr int CO = 8 * NV;
  __m256 acc[QB][NV];
#pragma GCC unroll 8
  for (int b = 0; b < QB; ++b)
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) acc[b][j] = _mm256_loadu_ps(dw + (q0 + b) * CO + 8 * j);
  for (int64_t p = 0; p < m; ++p) {
    const float* g = grad_out + static_cast<int64_t>(dst[p]) * CO;
    const float* x = feats + static_cast<int64_t>(src[p]) * c_in + q0;
    __m256 gv[NV];
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) gv[j] = _mm256_loadu_ps(g + 8 * j);
#pragma GCC unroll 8
    for (int b = 0; b < QB; ++b) {
      const __m256 xv = _mm256_broadcast_ss(x + b);
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) acc[b][j] = _mm256_fmadd_ps(xv, gv[j], acc[b][j]);
    }
  }
#pragma GCC unroll 8
  for (int b = 0; b < QB; ++b)
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) _mm256_storeu_ps(dw + (q0 + b) * CO + 8 * j, acc[b][j]);
}

template <int NV>
S3D_AVX2 void pairs_weight_grad(const float* feats, int64_t c_in, const float* grad_out, const int32_t* src,
                                const int32_t* dst, int64_t m, float* dw) {
  constexpr int QB = NV >= 8 ? 1 : 8 / NV;
  int64_t q0 = 0;
  for (; q0 + QB <= c_in; q0 += QB) block_weight_grad<NV, QB>(feats, c_in, grad_out, src, dst, m, q0, dw);
  for (; q0 < c_in; ++q0) block_weight_grad<NV, 1>(feats, c_in, grad_out, src, dst, m, q0, dw);
}

ForwardFn forward_fn_avx2(int64_t nv) {
  static constexpr ForwardFn fns[kMaxVectors] = {rows_forward<1>, rows_forward<2>, rows_forward<3>, rows_forward<4>,
                                                 rows_forward<5>, rows_forward<6>, rows_forward<7>, rows_forward<8>};
  return fns[nv - 1];
}

WeightGradFn weight_grad_fn_avx2(int64_t nv) {
  static constexpr WeightGradFn fns[kMaxVectors] = {
      pairs_weight_grad<1>, pairs_weight_grad<2>, pairs_weight_grad<3>, pairs_weight_grad<4>,
      pairs_weight_grad<5>, pairs_weight_grad<6>, pairs_weight_grad<7>, pairs_weight_grad<8>};
  return fns[nv - 1];
}

bool cpu_has(Simd isa) {
  switch (isa) {
    case Simd::kAvx512:
      return __builtin_cpu_supports("avx512f");
    case Simd::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    default:
      return true;
  }
}

}  // namespace

Simd parse_simd(const std::string& simd) {
  Simd isa;
  if (simd == "auto") {
    isa = Simd::kAvx512;
  } else if (simd == "avx512") {
    isa = Simd::kAvx512;
  } else if (simd == "avx2") {
    isa = Simd::kAvx2;
  } else if (simd == "none") {
    return Simd::kNone;
  } else {
    TORCH_CHECK_VALUE(false, "simd must be one of 'auto', 'avx512', 'avx2', 'none', got '", simd, "'");
  }
  if (simd == "auto") return isa;
  TORCH_CHECK_VALUE(cpu_has(isa), "simd='", simd, "' asks for ", isa == Simd::kAvx512 ? "AVX-512F" : "AVX2 + FMA",
                    ", which this CPU lacks; use simd='auto'");
  return isa;
}

const char* simd_name(Simd isa) {
  switch (isa) {
    case Simd::kAvx512:
      return "avx512";
    case Simd::kAvx2:
      return "avx2";
    default:
      return "gemm";
  }
}

Simd conv_direct_forward_isa(at::ScalarType dtype, int64_t c_out, Simd simd) {
  if (dtype != at::kFloat || c_out <= 0 || c_out % 8 != 0) return Simd::kNone;
  if (simd >= Simd::kAvx512 && c_out % 16 == 0 && c_out / 16 <= direct::kMaxVectors512 && cpu_has(Simd::kAvx512))
    return Simd::kAvx512;
  if (simd >= Simd::kAvx2 && c_out / 8 <= kMaxVectors && cpu_has(Simd::kAvx2)) return Simd::kAvx2;
  return Simd::kNone;
}

Simd conv_direct_weight_grad_isa(at::ScalarType dtype, int64_t c_in, int64_t c_out, Simd simd) {
  const Simd isa = conv_direct_forward_isa(dtype, c_out, simd);
  if (isa == Simd::kAvx2 && c_in * c_out > 1024) return Simd::kNone;
  return isa;
}

void conv_forward_direct(const at::Tensor& feats, const at::Tensor& weight, const at::Tensor& nbr, int64_t tile,
                         Simd isa, at::Tensor& out, bool* bad) {
  const int64_t n_in = feats.size(0), c_in = feats.size(1);
  const int64_t k_total = weight.size(0), c_out = weight.size(2);
  const int64_t n_out = nbr.size(0);
  const int64_t n_tiles = (n_out + tile - 1) / tile;
  // rows per pass over the offsets: their output rows (about 64 KiB) stay in L2 between offsets
  const int64_t block = std::max<int64_t>(64, (64 << 10) / (c_out * static_cast<int64_t>(sizeof(float))));
  const float* x = feats.data_ptr<float>();
  const float* w = weight.data_ptr<float>();
  const int32_t* nb = nbr.data_ptr<int32_t>();
  float* o = out.data_ptr<float>();
  const ForwardFn fn = isa == Simd::kAvx512 ? direct::forward_fn_avx512(c_out) : forward_fn_avx2(c_out / 8);
  TORCH_CHECK(fn != nullptr, "conv_forward_direct: no ", simd_name(isa), " kernel for C_out = ", c_out);
  std::atomic<bool> any_bad{false};
  at::parallel_for(0, n_tiles, 1, [&](int64_t tb, int64_t te) {
    bool local_bad = false;
    for (int64_t ti = tb; ti < te; ++ti) {
      const int64_t r_end = std::min(n_out, (ti + 1) * tile);
      for (int64_t r0 = ti * tile; r0 < r_end; r0 += block)
        fn(x, n_in, c_in, w, nb, k_total, r0, std::min(r_end, r0 + block), o, &local_bad);
    }
    if (local_bad) any_bad.store(true, std::memory_order_relaxed);
  });
  if (any_bad.load()) *bad = true;
}

at::Tensor conv_weight_grad_direct(const at::Tensor& feats, const at::Tensor& grad_out, const at::Tensor& nbr,
                                   int64_t tile, Simd isa, bool* bad) {
  const int64_t n_in = feats.size(0), c_in = feats.size(1);
  const int64_t n_out = grad_out.size(0), c_out = grad_out.size(1);
  const int64_t k_total = nbr.size(1);
  const int64_t n_tiles = (n_out + tile - 1) / tile;
  // A fixed number of chunks, each with its own partial sum, added in order (as the tiled path).
  const int64_t n_chunks = std::min<int64_t>(n_tiles, std::max<int64_t>(1, at::get_num_threads()));
  at::Tensor partial = at::zeros({n_chunks, k_total, c_in, c_out}, feats.options());
  const float* x = feats.data_ptr<float>();
  const float* g = grad_out.data_ptr<float>();
  const int32_t* nb = nbr.data_ptr<int32_t>();
  float* part = partial.data_ptr<float>();
  const WeightGradFn fn =
      isa == Simd::kAvx512 ? direct::weight_grad_fn_avx512(c_out) : weight_grad_fn_avx2(c_out / 8);
  TORCH_CHECK(fn != nullptr, "conv_weight_grad_direct: no ", simd_name(isa), " kernel for C_out = ", c_out);
  std::atomic<bool> any_bad{false};
  at::parallel_for(0, n_chunks, 1, [&](int64_t cb, int64_t ce) {
    TileRows t(tile);
    bool local_bad = false;
    for (int64_t c = cb; c < ce; ++c) {
      float* acc = part + c * k_total * c_in * c_out;
      const int64_t t0 = c * n_tiles / n_chunks, t1 = (c + 1) * n_tiles / n_chunks;
      for (int64_t ti = t0; ti < t1; ++ti) {
        const int64_t r0 = ti * tile, r1 = std::min(n_out, r0 + tile);
        for (int64_t k = 0; k < k_total; ++k) {
          collect_tile_rows(nb, k_total, k, r0, r1, n_in, t, &local_bad);
          if (t.count > 0) fn(x, c_in, g, t.src.data(), t.dst.data(), t.count, acc + k * c_in * c_out);
        }
      }
    }
    if (local_bad) any_bad.store(true, std::memory_order_relaxed);
  });
  if (any_bad.load()) *bad = true;
  return n_chunks == 1 ? partial[0] : partial.sum(0);
}

}  // namespace s3d

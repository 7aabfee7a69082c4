// CPU sparse convolution. float32 with C_out a multiple of 8 up to 64, or of 16 up to 128 (the channel counts
// of sparse networks), goes to the direct kernels of conv_cpu_direct.cpp when the CPU has AVX2 + FMA (up to 64)
// or AVX-512F (the AVX2 weight gradient only up to C_in * C_out = 1024; ``simd`` caps the set); every other
// case takes the tiled GEMM path of this file: output rows are cut into tiles; each thread owns whole tiles, so
// the scatter needs no atomics and results do not depend on the thread count. Per tile
// and kernel offset the active rows are gathered into a small buffer that stays in cache,
// multiplied with one GEMM (MKL through at::mm, single-threaded inside the parallel region)
// and added into the tile's output rows. A tile whose rows all read a contiguous run of
// inputs (the centre offset of a submanifold conv) skips the gather and the scatter.
//
// float16 / bfloat16 are computed in float32 (inputs widened once, the float32 result rounded
// once at the end): the same "accumulate in float32" contract as the CUDA kernels, and CPUs have
// no faster half-precision GEMM to lose.
#include <ATen/Parallel.h>
#include <atomic>
#include <cstring>
#include <vector>
#include "conv/conv.h"
#include "conv/conv_cpu_direct.h"
#include "conv/tile_rows.h"

namespace s3d {
namespace {

inline void gather_rows(const char* base, int64_t row_bytes, const int32_t* idx, int64_t m, char* dst) {
  for (int64_t j = 0; j < m; ++j) std::memcpy(dst + j * row_bytes, base + idx[j] * row_bytes, row_bytes);
}

template <typename scalar_t>
void scatter_add_rows(const scalar_t* src, const int32_t* idx, int64_t m, int64_t c, scalar_t* out) {
  for (int64_t j = 0; j < m; ++j) {
    scalar_t* o = out + static_cast<int64_t>(idx[j]) * c;
    const scalar_t* s = src + j * c;
    for (int64_t q = 0; q < c; ++q) o[q] += s[q];
  }
}

}  // namespace

static bool is_half_type(const at::Tensor& t) {
  return t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16;
}

at::Tensor conv_forward_cpu(const at::Tensor& feats, const at::Tensor& weight, const at::Tensor& nbr, int64_t tile,
                            Simd simd) {
  if (is_half_type(feats))
    return conv_forward_cpu(feats.to(at::kFloat), weight.to(at::kFloat), nbr, tile, simd).to(feats.scalar_type());
  const int64_t n_in = feats.size(0), c_in = feats.size(1);
  const int64_t k_total = weight.size(0), c_out = weight.size(2);
  const int64_t n_out = nbr.size(0);
  at::Tensor out = at::zeros({n_out, c_out}, feats.options());
  if (n_out == 0 || k_total == 0 || c_in == 0 || c_out == 0) return out;
  const Simd isa = conv_direct_forward_isa(feats.scalar_type(), c_out, simd);
  if (isa != Simd::kNone) {
    bool bad = false;
    conv_forward_direct(feats, weight, nbr, tile, isa, out, &bad);
    TORCH_CHECK_VALUE(!bad, "nbr holds an index >= N_in = ", n_in, " (rows of feats)");
    return out;
  }
  const int32_t* nb = nbr.data_ptr<int32_t>();
  const int64_t n_tiles = (n_out + tile - 1) / tile;
  const int64_t row_bytes = c_in * feats.element_size();
  std::atomic<bool> bad{false};  // set from several OpenMP threads
  AT_DISPATCH_FLOATING_TYPES(feats.scalar_type(), "conv_forward_cpu", [&] {
    at::parallel_for(0, n_tiles, 1, [&](int64_t tb, int64_t te) {
      at::NoGradGuard no_grad;  // grad mode is thread-local; worker threads must not record
      at::Tensor gbuf = at::empty({tile, c_in}, feats.options());
      at::Tensor pbuf = at::empty({tile, c_out}, feats.options());
      TileRows t(tile);
      bool local_bad = false;
      for (int64_t ti = tb; ti < te; ++ti) {
        const int64_t r0 = ti * tile, r1 = std::min(n_out, r0 + tile);
        at::Tensor out_tile = out.narrow(0, r0, r1 - r0);
        for (int64_t k = 0; k < k_total; ++k) {
          collect_tile_rows(nb, k_total, k, r0, r1, n_in, t, &local_bad);
          if (t.count == 0) continue;
          const at::Tensor wk = weight[k];
          if (t.contiguous) {
            out_tile.addmm_(feats.narrow(0, t.src[0], t.count), wk);
            continue;
          }
          at::Tensor g = gbuf.narrow(0, 0, t.count);
          at::Tensor p = pbuf.narrow(0, 0, t.count);
          gather_rows(static_cast<const char*>(feats.data_ptr()), row_bytes, t.src.data(), t.count,
                      static_cast<char*>(g.data_ptr()));
          at::mm_out(p, g, wk);
          scatter_add_rows<scalar_t>(p.data_ptr<scalar_t>(), t.dst.data(), t.count, c_out,
                                     out.data_ptr<scalar_t>());
        }
      }
      if (local_bad) bad.store(true, std::memory_order_relaxed);
    });
  });
  TORCH_CHECK_VALUE(!bad.load(), "nbr holds an index >= N_in = ", n_in, " (rows of feats)");
  return out;
}

at::Tensor conv_weight_grad_cpu(const at::Tensor& feats, const at::Tensor& grad_out, const at::Tensor& nbr,
                                int64_t tile, Simd simd) {
  if (is_half_type(feats))
    return conv_weight_grad_cpu(feats.to(at::kFloat), grad_out.to(at::kFloat), nbr, tile, simd)
        .to(feats.scalar_type());
  const int64_t n_in = feats.size(0), c_in = feats.size(1);
  const int64_t n_out = grad_out.size(0), c_out = grad_out.size(1);
  const int64_t k_total = nbr.size(1);
  if (n_out == 0 || k_total == 0 || c_in == 0 || c_out == 0)
    return at::zeros({k_total, c_in, c_out}, feats.options());
  const Simd isa = conv_direct_weight_grad_isa(feats.scalar_type(), c_in, c_out, simd);
  if (isa != Simd::kNone) {
    bool bad = false;
    at::Tensor grad_weight = conv_weight_grad_direct(feats, grad_out, nbr, tile, isa, &bad);
    TORCH_CHECK_VALUE(!bad, "nbr holds an index >= N_in = ", n_in, " (rows of feats)");
    return grad_weight;
  }
  const int32_t* nb = nbr.data_ptr<int32_t>();
  const int64_t n_tiles = (n_out + tile - 1) / tile;
  // A fixed number of chunks, each with its own partial sum, added in order: deterministic.
  const int64_t n_chunks = std::min<int64_t>(n_tiles, std::max<int64_t>(1, at::get_num_threads()));
  at::Tensor partial = at::zeros({n_chunks, k_total, c_in, c_out}, feats.options());
  const int64_t in_bytes = c_in * feats.element_size();
  const int64_t out_bytes = c_out * grad_out.element_size();
  std::atomic<bool> bad{false};  // set from several OpenMP threads
  at::parallel_for(0, n_chunks, 1, [&](int64_t cb, int64_t ce) {
    at::NoGradGuard no_grad;
    at::Tensor xbuf = at::empty({tile, c_in}, feats.options());
    at::Tensor gbuf = at::empty({tile, c_out}, feats.options());
    TileRows t(tile);
    bool local_bad = false;
    for (int64_t c = cb; c < ce; ++c) {
      at::Tensor acc = partial[c];
      const int64_t t0 = c * n_tiles / n_chunks, t1 = (c + 1) * n_tiles / n_chunks;
      for (int64_t ti = t0; ti < t1; ++ti) {
        const int64_t r0 = ti * tile, r1 = std::min(n_out, r0 + tile);
        for (int64_t k = 0; k < k_total; ++k) {
          collect_tile_rows(nb, k_total, k, r0, r1, n_in, t, &local_bad);
          if (t.count == 0) continue;
          at::Tensor acc_k = acc[k];
          if (t.contiguous) {
            acc_k.addmm_(feats.narrow(0, t.src[0], t.count).t(), grad_out.narrow(0, r0, t.count));
            continue;
          }
          at::Tensor x = xbuf.narrow(0, 0, t.count);
          at::Tensor g = gbuf.narrow(0, 0, t.count);
          gather_rows(static_cast<const char*>(feats.data_ptr()), in_bytes, t.src.data(), t.count,
                      static_cast<char*>(x.data_ptr()));
          gather_rows(static_cast<const char*>(grad_out.data_ptr()), out_bytes, t.dst.data(), t.count,
                      static_cast<char*>(g.data_ptr()));
          acc_k.addmm_(x.t(), g);
        }
      }
    }
    if (local_bad) bad.store(true, std::memory_order_relaxed);
  });
  TORCH_CHECK_VALUE(!bad.load(), "nbr holds an index >= N_in = ", n_in, " (rows of feats)");
  return n_chunks == 1 ? partial[0] : partial.sum(0);
}

}  // namespace s3d

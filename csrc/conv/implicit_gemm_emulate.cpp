// The implicit-GEMM kernels of implicit_gemm.cuh run on the CPU, to test their indexing, tiling,
// edge handling and barriers on machines without a GPU. Each block runs as kThreads std::threads
// with a real barrier (std::barrier) for __syncthreads, so a missing barrier or a race on shared
// memory shows up as a wrong result here too. The tensor-core policy is replaced by EmuWmmaTile,
// which keeps the wmma API's contract (a warp's four 16x16 fragments, float accumulation) with
// plain loops; only the hardware fragment layout is not exercised. Slow: for tests only.
// (C++17: torch before 2.13 builds extensions with -std=c++17, so no std::barrier.)
#include <ATen/Dispatch.h>
#include <atomic>
#include <memory>
#include <thread>
#include <vector>
#include "conv/implicit_gemm.cuh"
#include "conv/implicit_gemm.h"

namespace s3d {
namespace {

using namespace igemm;

// A reusable barrier for the kThreads threads of one block: the last thread to arrive opens the
// next generation; the others yield until it opens (the threads outnumber the cores by far).
class Barrier {
 public:
  void arrive_and_wait() {
    const int64_t gen = generation_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == kThreads) {
      arrived_.store(0, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_acq_rel);
    } else {
      while (generation_.load(std::memory_order_acquire) == gen) std::this_thread::yield();
    }
  }

 private:
  std::atomic<int> arrived_{0};
  std::atomic<int64_t> generation_{0};
};

struct EmuBlock {
  Barrier bar;
  std::atomic<int> any{0};
};

struct EmuCtx {
  int t;
  int64_t bx, by;
  EmuBlock* blk;
  int tid() const { return t; }
  int warp() const { return t / 32; }
  int64_t block_x() const { return bx; }
  int64_t block_y() const { return by; }
  void sync() const { blk->bar.arrive_and_wait(); }
  bool sync_or(bool p) const {
    if (p) blk->any.store(1);
    blk->bar.arrive_and_wait();
    const bool r = blk->any.load() != 0;
    blk->bar.arrive_and_wait();  // everyone has read the flag
    if (t == 0) blk->any.store(0);
    blk->bar.arrive_and_wait();  // the flag is clear for the next call
    return r;
  }
};

// The wmma policy's contract on the CPU: warp w owns the 32x32 sub-tile (32 (w / 2), 32 (w % 2)),
// as 2x2 fragments of 16x16 float accumulators; products of T values accumulate in float. The
// fragments are warp-collective, so lane 0 of each warp holds and stores the whole warp tile and
// the other lanes only take part in the barriers.
template <typename T>
struct EmuWmmaTile {
  using Acc = float;
  static constexpr int kStage = kBM * (kBN + kStagePad);
  float c[32][32];

  void zero() {
    for (auto& r : c)
      for (float& v : r) v = 0.f;
  }

  template <bool kAColMajor, typename Ctx>
  void mma(Ctx& ctx, const T* a, int lda, const T* b, int ldb) {
    if (ctx.tid() % 32 != 0) return;
    const int wm = ctx.warp() / 2, wn = ctx.warp() % 2;
    for (int kk = 0; kk < kBK; ++kk)
      for (int i = 0; i < 32; ++i) {
        const int m = wm * 32 + i;
        const float av = static_cast<float>(kAColMajor ? a[kk * lda + m] : a[m * lda + kk]);
        for (int j = 0; j < 32; ++j) c[i][j] += av * static_cast<float>(b[kk * ldb + wn * 32 + j]);
      }
  }

  template <typename Ctx, typename Write>
  void store(Ctx& ctx, float* stage, Write&& write) {
    const int ld = kBN + kStagePad, wm = ctx.warp() / 2, wn = ctx.warp() % 2;
    if (ctx.tid() % 32 == 0)
      for (int i = 0; i < 32; ++i)
        for (int j = 0; j < 32; ++j) stage[(wm * 32 + i) * ld + wn * 32 + j] = c[i][j];
    ctx.sync();
    for (int e = ctx.tid(); e < kBM * kBN; e += kThreads) write(e / kBN, e % kBN, stage[(e / kBN) * ld + e % kBN]);
  }
};

template <typename T>
struct EmuTileFor {
  using type = SimtTile<T, T>;
};
template <>
struct EmuTileFor<at::Half> {
  using type = EmuWmmaTile<at::Half>;
};
template <>
struct EmuTileFor<at::BFloat16> {
  using type = EmuWmmaTile<at::BFloat16>;
};

// Runs body(ctx, smem) for every block of a (gx, gy) grid, kThreads threads per block.
template <typename Smem, typename Body>
void run_grid(int64_t gx, int64_t gy, Body body) {
  for (int64_t by = 0; by < gy; ++by)
    for (int64_t bx = 0; bx < gx; ++bx) {
      auto smem = std::make_unique<Smem>();
      EmuBlock blk;
      std::vector<std::thread> threads;
      threads.reserve(kThreads);
      for (int t = 0; t < kThreads; ++t)
        threads.emplace_back([&, t] {
          EmuCtx ctx{t, bx, by, &blk};
          body(ctx, *smem);
        });
      for (auto& th : threads) th.join();
    }
}

}  // namespace

at::Tensor conv_forward_implicit_emu(const at::Tensor& feats, const at::Tensor& weight, const at::Tensor& nbr,
                                     const at::Tensor& order) {
  const int64_t n_out = nbr.size(0), k_total = nbr.size(1), c_in = feats.size(1), c_out = weight.size(2);
  at::Tensor out = at::empty({n_out, c_out}, feats.options());
  if (n_out == 0 || c_out == 0) return out;
  const int64_t* ord = order.defined() ? order.data_ptr<int64_t>() : nullptr;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, feats.scalar_type(), "forward_implicit_emulated", [&] {
    using Tile = typename EmuTileFor<scalar_t>::type;
    using Smem = ForwardSmem<scalar_t, typename Tile::Acc, Tile::kStage>;
    const scalar_t* f = feats.data_ptr<scalar_t>();
    const scalar_t* w = weight.data_ptr<scalar_t>();
    const int32_t* nb = nbr.data_ptr<int32_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    run_grid<Smem>((n_out + kBM - 1) / kBM, (c_out + kBN - 1) / kBN, [&](EmuCtx& ctx, Smem& sm) {
      forward_block<scalar_t, Tile>(ctx, sm, f, w, nb, ord, n_out, k_total, c_in, c_out, o);
    });
  });
  return out;
}

at::Tensor conv_weight_grad_implicit_emu(const at::Tensor& feats, const at::Tensor& grad_out, const ConvPairs& p,
                                         const at::Tensor& chunks) {
  const int64_t c_in = feats.size(1), c_out = grad_out.size(1), n_chunks = chunks.size(0);
  const at::ScalarType st = feats.scalar_type();
  const at::ScalarType acc = (st == at::kHalf || st == at::kBFloat16) ? at::kFloat : st;
  at::Tensor partial = at::empty({n_chunks, c_in, c_out}, feats.options().dtype(acc));
  if (n_chunks > 0 && c_in > 0 && c_out > 0) {
    const int64_t tiles = ((c_in + kBM - 1) / kBM) * ((c_out + kBN - 1) / kBN);
    const int64_t* ch = chunks.data_ptr<int64_t>();
    const int64_t* src = p.src.data_ptr<int64_t>();
    const int64_t* dst = p.dst.data_ptr<int64_t>();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, st, "weight_grad_implicit_emulated", [&] {
      using Tile = typename EmuTileFor<scalar_t>::type;
      using Smem = WeightGradSmem<scalar_t, typename Tile::Acc, Tile::kStage>;
      const scalar_t* f = feats.data_ptr<scalar_t>();
      const scalar_t* g = grad_out.data_ptr<scalar_t>();
      auto* part = partial.data_ptr<typename Tile::Acc>();
      run_grid<Smem>(n_chunks, tiles, [&](EmuCtx& ctx, Smem& sm) {
        weight_grad_block<scalar_t, Tile>(ctx, sm, f, g, src, dst, ch, c_in, c_out, part);
      });
    });
  }
  return reduce_chunks(partial, chunks, p.num_offsets()).to(st);
}

}  // namespace s3d

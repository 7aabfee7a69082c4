// Implicit-GEMM sparse convolution: the gather of input rows is fused into the GEMM's tile loads,
// so no gathered copy of the features and no product buffer ever goes through global memory.
//
// Two block bodies, written once against a thread context `Ctx` and a tile-arithmetic policy
// `Tile`, so the same source runs on the GPU (DevCtx + WmmaTile / SimtTile, implicit_gemm_cuda.cu)
// and, for testing without a GPU, on the CPU with one std::thread per CUDA thread
// (implicit_gemm_emulate.cpp):
//
// * forward_block: one block computes a kBM x kBN tile of
//     out[row] = sum_k feats[nbr[row, k]] @ weight[k]        nbr int32 [N_out, K], -1 = absent
//   looping over the offsets k (skipped when no row of the tile has one) and kBK-wide slices of
//   C_in. Output rows are visited in `order` (int64 [N_out], a permutation) when one is given, so
//   rows with the same active offsets can share a tile. Every output element is written once,
//   rounded once from the accumulator: no atomics, deterministic. The input gradient is the same
//   body over the input-stationary table with the transposed weight.
// * weight_grad_block: one block reduces a chunk of pairs of one offset k (chunks never cross
//   offsets) into a kBM x kBN tile of partial[chunk] = feats[src]^T @ grad_out[dst]; the partials
//   of an offset are summed afterwards in a fixed order (deterministic).
//
// Context interface: tid(), warp(), block_x(), block_y(), sync() (a block barrier) and
// sync_or(p) (a barrier that returns whether p held for any thread of the block).
// Tile interface: zero(); mma<A_COL_MAJOR>(ctx, a, lda, b, ldb) adds A[kBM x kBK] @ B[kBK x kBN]
// from shared memory (A(m, kk) at a[m * lda + kk], or a[kk * lda + m] when A_COL_MAJOR;
// B(kk, n) at b[kk * ldb + n]); store(ctx, stage, write) calls write(m, n, value) once per element
// of the tile (through the shared `stage` buffer of kStage accumulators where the policy needs it).
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define S3D_IG_DEV __device__ __forceinline__
#else
#define S3D_IG_DEV inline
#endif

namespace s3d {
namespace igemm {

constexpr int kBM = 64;       // tile rows (output rows; C_in channels for the weight gradient)
constexpr int kBN = 64;       // tile columns (output channels)
constexpr int kBK = 32;       // reduction slice (input channels; pairs for the weight gradient)
constexpr int kThreads = 128; // 4 warps
constexpr int kPad = 8;       // shared-memory row padding (keeps wmma pointers 32-byte aligned)
constexpr int kStagePad = 4;

// SIMT tile: thread (tx = tid % 16, ty = tid / 16) owns rows ty + 8 i (i < 8) and columns
// tx + 16 j (j < 4), accumulating in Acc. For float32 and float64.
template <typename T, typename AccT>
struct SimtTile {
  using Acc = AccT;
  static constexpr int kStage = 1;  // writes from registers
  Acc c[8][4];

  S3D_IG_DEV void zero() {
    for (int i = 0; i < 8; ++i)
      for (int j = 0; j < 4; ++j) c[i][j] = Acc(0);
  }

  template <bool kAColMajor, typename Ctx>
  S3D_IG_DEV void mma(Ctx& ctx, const T* a, int lda, const T* b, int ldb) {
    const int tx = ctx.tid() % 16, ty = ctx.tid() / 16;
    for (int kk = 0; kk < kBK; ++kk) {
      Acc av[8], bv[4];
      for (int i = 0; i < 8; ++i) {
        const int m = ty + 8 * i;
        av[i] = static_cast<Acc>(kAColMajor ? a[kk * lda + m] : a[m * lda + kk]);
      }
      for (int j = 0; j < 4; ++j) bv[j] = static_cast<Acc>(b[kk * ldb + tx + 16 * j]);
      for (int i = 0; i < 8; ++i)
        for (int j = 0; j < 4; ++j) c[i][j] += av[i] * bv[j];
    }
  }

  template <typename Ctx, typename Write>
  S3D_IG_DEV void store(Ctx& ctx, Acc* /*stage*/, Write&& write) {
    const int tx = ctx.tid() % 16, ty = ctx.tid() / 16;
    for (int i = 0; i < 8; ++i)
      for (int j = 0; j < 4; ++j) write(ty + 8 * i, tx + 16 * j, c[i][j]);
  }
};

// Shared memory of one forward block.
template <typename T, typename Acc, int kStage>
struct ForwardSmem {
  alignas(128) T a[kBM][kBK + kPad];  // gathered input rows x input-channel slice
  alignas(128) T b[kBK][kBN + kPad];  // weight[k] slice
  alignas(128) Acc stage[kStage];     // accumulator tile on its way out (tensor-core policy)
  int64_t rows[kBM];                  // output row of each tile row (-1 past N_out)
  int64_t src[kBM];                   // input row of each tile row for the current offset (-1 absent)
};

// Grid: x = ceil(N_out / kBM) row tiles, y = ceil(C_out / kBN) column tiles; kThreads threads.
template <typename T, typename Tile, typename Ctx>
S3D_IG_DEV void forward_block(Ctx& ctx, ForwardSmem<T, typename Tile::Acc, Tile::kStage>& sm, const T* __restrict__ feats,
                              const T* __restrict__ weight, const int32_t* __restrict__ nbr,
                              const int64_t* __restrict__ order, int64_t n_out, int64_t k_total, int64_t c_in,
                              int64_t c_out, T* __restrict__ out) {
  using Acc = typename Tile::Acc;
  const int tid = ctx.tid();
  const int64_t m0 = ctx.block_x() * int64_t(kBM), n0 = ctx.block_y() * int64_t(kBN);
  if (tid < kBM) {
    const int64_t pos = m0 + tid;
    sm.rows[tid] = pos < n_out ? (order != nullptr ? order[pos] : pos) : -1;
  }
  Tile tile;
  tile.zero();
  ctx.sync();
  for (int64_t k = 0; k < k_total; ++k) {
    bool active = false;
    if (tid < kBM) {
      const int64_t row = sm.rows[tid];
      const int64_t s = row >= 0 ? int64_t(nbr[row * k_total + k]) : -1;
      sm.src[tid] = s;
      active = s >= 0;
    }
    if (!ctx.sync_or(active)) continue;  // no row of this tile has offset k
    for (int64_t c0 = 0; c0 < c_in; c0 += kBK) {
      for (int e = tid; e < kBM * kBK; e += kThreads) {  // consecutive threads: consecutive channels
        const int r = e / kBK, c = e % kBK;
        const int64_t s = sm.src[r];
        sm.a[r][c] = (s >= 0 && c0 + c < c_in) ? feats[s * c_in + c0 + c] : T(0);
      }
      for (int e = tid; e < kBK * kBN; e += kThreads) {
        const int r = e / kBN, c = e % kBN;
        sm.b[r][c] = (c0 + r < c_in && n0 + c < c_out) ? weight[(k * c_in + c0 + r) * c_out + n0 + c] : T(0);
      }
      ctx.sync();
      tile.template mma<false>(ctx, &sm.a[0][0], kBK + kPad, &sm.b[0][0], kBN + kPad);
      ctx.sync();
    }
  }
  tile.store(ctx, sm.stage, [&](int m, int n, Acc v) {
    const int64_t row = sm.rows[m];
    if (row >= 0 && n0 + n < c_out) out[row * c_out + n0 + n] = static_cast<T>(v);
  });
}

// Shared memory of one weight-gradient block.
template <typename T, typename Acc, int kStage>
struct WeightGradSmem {
  alignas(128) T x[kBK][kBM + kPad];  // feats[src] rows x input-channel tile (A^T, column-major A)
  alignas(128) T g[kBK][kBN + kPad];  // grad_out[dst] rows x output-channel tile
  alignas(128) Acc stage[kStage];
  int64_t src[kBK];
  int64_t dst[kBK];
};

// chunks int64 [n_chunks, 3]: (offset k, first pair, number of pairs). Grid: x = n_chunks,
// y = ceil(C_in / kBM) * ceil(C_out / kBN); partial [n_chunks, C_in, C_out] in Acc.
template <typename T, typename Tile, typename Ctx>
S3D_IG_DEV void weight_grad_block(Ctx& ctx, WeightGradSmem<T, typename Tile::Acc, Tile::kStage>& sm, const T* __restrict__ feats,
                                  const T* __restrict__ grad_out, const int64_t* __restrict__ src,
                                  const int64_t* __restrict__ dst, const int64_t* __restrict__ chunks, int64_t c_in,
                                  int64_t c_out, typename Tile::Acc* __restrict__ partial) {
  using Acc = typename Tile::Acc;
  const int tid = ctx.tid();
  const int64_t chunk = ctx.block_x();
  const int64_t co_tiles = (c_out + kBN - 1) / kBN;
  const int64_t i0 = (ctx.block_y() / co_tiles) * kBM, n0 = (ctx.block_y() % co_tiles) * kBN;
  const int64_t p0 = chunks[chunk * 3 + 1], len = chunks[chunk * 3 + 2];
  Tile tile;
  tile.zero();
  for (int64_t s0 = 0; s0 < len; s0 += kBK) {
    if (tid < kBK) {
      const bool in = s0 + tid < len;
      sm.src[tid] = in ? src[p0 + s0 + tid] : -1;
      sm.dst[tid] = in ? dst[p0 + s0 + tid] : -1;
    }
    ctx.sync();
    for (int e = tid; e < kBK * kBM; e += kThreads) {
      const int p = e / kBM, c = e % kBM;
      const int64_t s = sm.src[p];
      sm.x[p][c] = (s >= 0 && i0 + c < c_in) ? feats[s * c_in + i0 + c] : T(0);
    }
    for (int e = tid; e < kBK * kBN; e += kThreads) {
      const int p = e / kBN, c = e % kBN;
      const int64_t d = sm.dst[p];
      sm.g[p][c] = (d >= 0 && n0 + c < c_out) ? grad_out[d * c_out + n0 + c] : T(0);
    }
    ctx.sync();
    tile.template mma<true>(ctx, &sm.x[0][0], kBM + kPad, &sm.g[0][0], kBN + kPad);
    ctx.sync();
  }
  Acc* part = partial + chunk * c_in * c_out;
  tile.store(ctx, sm.stage, [&](int m, int n, Acc v) {
    if (i0 + m < c_in && n0 + n < c_out) part[(i0 + m) * c_out + n0 + n] = v;
  });
}

}  // namespace igemm
}  // namespace s3d

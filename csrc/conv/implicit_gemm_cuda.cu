// The implicit-GEMM kernels of implicit_gemm.cuh on the GPU: a block of kThreads threads per tile,
// __syncthreads / __syncthreads_or for the context's barriers, and tensor cores through the wmma
// API for float16 (sm_70+) and bfloat16 (sm_80+; SIMT below that), with float32 accumulators.
// float32 and float64 use the SIMT tile.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>
#include <type_traits>
#include "common/cuda_launch.cuh"
#include "conv/implicit_gemm.cuh"
#include "conv/implicit_gemm.h"

namespace s3d {
namespace {

using namespace igemm;

struct DevCtx {
  __device__ int tid() const { return threadIdx.x; }
  __device__ int warp() const { return threadIdx.x >> 5; }
  __device__ int64_t block_x() const { return blockIdx.x; }
  __device__ int64_t block_y() const { return blockIdx.y; }
  __device__ void sync() const { __syncthreads(); }
  __device__ bool sync_or(bool p) const { return __syncthreads_or(p) != 0; }
};

template <typename T>
struct Native;
template <>
struct Native<at::Half> {
  using type = __half;
};
template <>
struct Native<at::BFloat16> {
  using type = __nv_bfloat16;
};

// Warp w of the 4 owns the 32x32 sub-tile (32 (w / 2), 32 (w % 2)) as 2x2 fragments of 16x16.
template <typename T>
struct WmmaTile {
  using Acc = float;
  using N = typename Native<T>::type;
  static constexpr int kStage = kBM * (kBN + kStagePad);
  nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float> c[2][2];

  __device__ void zero() {
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j) nvcuda::wmma::fill_fragment(c[i][j], 0.f);
  }

  template <bool kAColMajor, typename Ctx>
  __device__ void mma(Ctx& ctx, const T* a, int lda, const T* b, int ldb) {
    namespace wmma = nvcuda::wmma;
    using ALayout = std::conditional_t<kAColMajor, wmma::col_major, wmma::row_major>;
    const int wm = ctx.warp() / 2, wn = ctx.warp() % 2;
    for (int kk = 0; kk < kBK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, N, ALayout> af[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, N, wmma::row_major> bf[2];
      for (int i = 0; i < 2; ++i) {
        const int m = wm * 32 + 16 * i;
        const T* p = kAColMajor ? a + kk * lda + m : a + m * lda + kk;
        wmma::load_matrix_sync(af[i], reinterpret_cast<const N*>(p), lda);
      }
      for (int j = 0; j < 2; ++j)
        wmma::load_matrix_sync(bf[j], reinterpret_cast<const N*>(b + kk * ldb + wn * 32 + 16 * j), ldb);
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j) wmma::mma_sync(c[i][j], af[i], bf[j], c[i][j]);
    }
  }

  template <typename Ctx, typename Write>
  __device__ void store(Ctx& ctx, float* stage, Write&& write) {
    constexpr int ld = kBN + kStagePad;
    const int wm = ctx.warp() / 2, wn = ctx.warp() % 2;
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j)
        nvcuda::wmma::store_matrix_sync(stage + (wm * 32 + 16 * i) * ld + wn * 32 + 16 * j, c[i][j], ld,
                                        nvcuda::wmma::mem_row_major);
    ctx.sync();
    for (int e = ctx.tid(); e < kBM * kBN; e += kThreads) write(e / kBN, e % kBN, stage[(e / kBN) * ld + e % kBN]);
  }
};

template <typename T>
struct TileFor {
  using type = SimtTile<T, T>;  // float32, float64
};
template <>
struct TileFor<at::Half> {
  using type = WmmaTile<at::Half>;
};
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
template <>
struct TileFor<at::BFloat16> {
  using type = SimtTile<at::BFloat16, float>;  // no bfloat16 tensor cores before sm_80
};
#else
template <>
struct TileFor<at::BFloat16> {
  using type = WmmaTile<at::BFloat16>;
};
#endif

template <typename T>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(const T* __restrict__ feats, const T* __restrict__ weight, const int32_t* __restrict__ nbr,
                   const int64_t* __restrict__ order, int64_t n_out, int64_t k_total, int64_t c_in, int64_t c_out,
                   T* __restrict__ out) {
  using Tile = typename TileFor<T>::type;
  using Smem = ForwardSmem<T, typename Tile::Acc, Tile::kStage>;
  __shared__ __align__(128) unsigned char raw[sizeof(Smem)];
  DevCtx ctx;
  forward_block<T, Tile>(ctx, *reinterpret_cast<Smem*>(raw), feats, weight, nbr, order, n_out, k_total, c_in, c_out,
                         out);
}

template <typename T, typename Acc>
__global__ void __launch_bounds__(kThreads)
    weight_grad_kernel(const T* __restrict__ feats, const T* __restrict__ grad_out, const int64_t* __restrict__ src,
                       const int64_t* __restrict__ dst, const int64_t* __restrict__ chunks, int64_t c_in,
                       int64_t c_out, Acc* __restrict__ partial) {
  using Tile = typename TileFor<T>::type;
  static_assert(std::is_same<typename Tile::Acc, Acc>::value, "partial must be the tile's accumulator type");
  using Smem = WeightGradSmem<T, Acc, Tile::kStage>;
  __shared__ __align__(128) unsigned char raw[sizeof(Smem)];
  DevCtx ctx;
  weight_grad_block<T, Tile>(ctx, *reinterpret_cast<Smem*>(raw), feats, grad_out, src, dst, chunks, c_in, c_out,
                             partial);
}

}  // namespace

at::Tensor conv_forward_implicit_cuda(const at::Tensor& feats, const at::Tensor& weight, const at::Tensor& nbr,
                                      const at::Tensor& order) {
  const c10::cuda::CUDAGuard guard(feats.device());
  const int64_t n_out = nbr.size(0), k_total = nbr.size(1), c_in = feats.size(1), c_out = weight.size(2);
  at::Tensor out = at::empty({n_out, c_out}, feats.options());
  if (n_out == 0 || c_out == 0) return out;
  const dim3 grid(static_cast<unsigned int>((n_out + kBM - 1) / kBM), static_cast<unsigned int>((c_out + kBN - 1) / kBN));
  TORCH_CHECK_VALUE(grid.y <= 65535, "C_out = ", c_out, " is too large for the implicit-GEMM grid");
  const int64_t* ord = order.defined() ? order.data_ptr<int64_t>() : nullptr;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, feats.scalar_type(), "conv_forward_implicit_cuda", [&] {
    forward_kernel<scalar_t><<<grid, kThreads, 0, cuda::current_stream()>>>(
        feats.data_ptr<scalar_t>(), weight.data_ptr<scalar_t>(), nbr.data_ptr<int32_t>(), ord, n_out, k_total, c_in,
        c_out, out.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

at::Tensor conv_weight_grad_implicit_cuda(const at::Tensor& feats, const at::Tensor& grad_out, const ConvPairs& p,
                                          const at::Tensor& chunks) {
  const c10::cuda::CUDAGuard guard(feats.device());
  const int64_t c_in = feats.size(1), c_out = grad_out.size(1), n_chunks = chunks.size(0);
  const at::ScalarType st = feats.scalar_type();
  at::Tensor partial = at::empty({n_chunks, c_in, c_out}, feats.options().dtype(at::toOpMathType(st)));
  if (n_chunks > 0 && c_in > 0 && c_out > 0) {
    const int64_t tiles = ((c_in + kBM - 1) / kBM) * ((c_out + kBN - 1) / kBN);
    TORCH_CHECK_VALUE(tiles <= 65535 && n_chunks < (int64_t(1) << 31), "C_in x C_out = ", c_in, " x ", c_out,
                      " is too large for the implicit-GEMM grid");
    // pinned and non-blocking, so the copy is queued on the stream: a copy from pageable memory would
    // wait for every kernel queued before it, once per layer in every backward pass
    const at::Tensor ch = chunks.pin_memory().to(feats.device(), /*non_blocking=*/true);
    const dim3 grid(static_cast<unsigned int>(n_chunks), static_cast<unsigned int>(tiles));
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, st, "conv_weight_grad_implicit_cuda", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      weight_grad_kernel<scalar_t, acc_t><<<grid, kThreads, 0, cuda::current_stream()>>>(
          feats.data_ptr<scalar_t>(), grad_out.data_ptr<scalar_t>(), p.src.data_ptr<int64_t>(),
          p.dst.data_ptr<int64_t>(), ch.data_ptr<int64_t>(), c_in, c_out, partial.data_ptr<acc_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  return reduce_chunks(partial, chunks, p.num_offsets()).to(st);
}

}  // namespace s3d

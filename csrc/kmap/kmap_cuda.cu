// CUDA kernel maps, same semantics as kmap_cpu.cpp:
//  * sort_coords_cuda: range checks by torch reductions (one device->host copy), wide keys by a
//    kernel, at::sort only when the keys are not already strictly ascending, has_duplicates by
//    comparing neighbours of the sorted keys.
//  * neighbor_table_cuda: one thread per (query row, offset) binary-searches query_key + delta
//    in the table's sorted keys (no merge state, so every pair is independent).
//  * invert_table_cuda: scatter; an index >= n_in is flagged on the device and raised on the host.
#include "common/checks.h"
#include "common/cuda_launch.cuh"
#include "kmap/kmap.h"
#include "kmap/wide_key.h"

namespace s3d {
namespace {

__global__ void wide_keys_kernel(const int32_t* __restrict__ c, int64_t n, int64_t mul, int64_t* __restrict__ keys) {
  S3D_GRID_STRIDE(i, n) {
    keys[i] = wide_key(c[4 * i], int64_t(c[4 * i + 1]) * mul, int64_t(c[4 * i + 2]) * mul,
                       int64_t(c[4 * i + 3]) * mul);
  }
}

__global__ void neighbor_kernel(const int64_t* __restrict__ qk, const int32_t* __restrict__ qo, int64_t m,
                                const int64_t* __restrict__ tk, const int32_t* __restrict__ to, int64_t n,
                                const int64_t* __restrict__ delta, int64_t kt, int32_t* __restrict__ out) {
  S3D_GRID_STRIDE(idx, m * kt) {
    const int64_t p = idx / kt, k = idx - p * kt;
    const int64_t target = qk[p] + delta[k];
    int64_t lo = 0, hi = n;  // lower_bound in tk[0, n)
    while (lo < hi) {
      const int64_t mid = lo + ((hi - lo) >> 1);
      if (tk[mid] < target)
        lo = mid + 1;
      else
        hi = mid;
    }
    if (lo < n && tk[lo] == target) out[int64_t(qo[p]) * kt + k] = to[lo];
  }
}

__global__ void invert_kernel(const int32_t* __restrict__ src, int64_t m, int64_t kt, int64_t n_in,
                              int32_t* __restrict__ dst, int32_t* __restrict__ bad) {
  S3D_GRID_STRIDE(idx, m * kt) {
    const int32_t i = src[idx];
    if (i < 0) continue;
    if (i >= n_in) {
      *bad = 1;
      continue;
    }
    const int64_t o = idx / kt, k = idx - o * kt;
    // Each input feeds at most one output per offset, so no two threads write one slot.
    dst[int64_t(i) * kt + k] = static_cast<int32_t>(o);
  }
}

void check_sorted_coords(const SortedCoords& s, const char* name, const at::Device& dev) {
  TORCH_CHECK_VALUE(s.keys.defined() && s.order.defined(), name, " is not an initialised SortedCoords");
  TORCH_CHECK_VALUE(s.keys.device() == dev && s.order.device() == dev, name, " must be on ", dev, ", got keys on ",
                    s.keys.device(), " and order on ", s.order.device());
  TORCH_CHECK_VALUE(s.keys.dim() == 1 && s.order.dim() == 1 && s.keys.size(0) == s.order.size(0), name,
                    " has keys ", s.keys.sizes(), " and order ", s.order.sizes(), " of different lengths");
  S3D_CHECK_DTYPE(s.keys, at::kLong);
  S3D_CHECK_DTYPE(s.order, at::kInt);
}

}  // namespace

SortedCoords sort_coords_cuda(const at::Tensor& coords, int64_t mul) {
  const c10::cuda::CUDAGuard guard(coords.device());
  const int64_t n = coords.size(0);
  TORCH_CHECK_VALUE(n < INT32_MAX, "coords has ", n, " rows; at most ", INT32_MAX - 1, " are supported");
  SortedCoords s;
  s.mul = mul;
  s.keys = at::empty({n}, coords.options().dtype(at::kLong));
  if (n == 0) {
    s.order = at::empty({0}, coords.options());
    return s;
  }
  // One reduction pass and one small copy: [2, 4] = per-column min and max.
  const at::Tensor range = at::stack({std::get<0>(coords.min(0)), std::get<0>(coords.max(0))}).cpu();
  const int32_t* r = range.data_ptr<int32_t>();
  const int32_t bmin = r[0], bmax = r[4];
  TORCH_CHECK_VALUE(bmin >= 0 && bmax <= kWideBatchMax, "coords[:, 0] (batch) must be in [0, ", kWideBatchMax,
                    "], got [", bmin, ", ", bmax, "]");
  for (int a = 0; a < 3; ++a) {
    s.lo[a] = int64_t(r[1 + a]) * mul;
    s.hi[a] = int64_t(r[5 + a]) * mul;
    TORCH_CHECK_VALUE(s.lo[a] >= -kWideHeadroom && s.hi[a] < kWideHeadroom, "coords * ", mul,
                      " must stay in [", -kWideHeadroom, ", ", kWideHeadroom, ") on axis ", a, ", got [",
                      s.lo[a], ", ", s.hi[a], "]");
  }
  const cudaStream_t stream = cuda::current_stream();
  wide_keys_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, stream>>>(coords.data_ptr<int32_t>(), n, mul,
                                                                       s.keys.data_ptr<int64_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  const bool sorted = n == 1 || (s.keys.slice(0, 1) > s.keys.slice(0, 0, n - 1)).all().item<bool>();
  if (sorted) {
    s.order = at::arange(n, coords.options());
    return s;
  }
  auto [vals, idx] = at::sort(s.keys);
  s.keys = vals.contiguous();
  s.order = idx.to(at::kInt).contiguous();
  s.has_duplicates = (s.keys.slice(0, 1) == s.keys.slice(0, 0, n - 1)).any().item<bool>();
  return s;
}

at::Tensor neighbor_table_cuda(const SortedCoords& query, const SortedCoords& table, const at::Tensor& offsets) {
  const at::Device dev = query.keys.device();
  check_sorted_coords(query, "query", dev);
  check_sorted_coords(table, "table", dev);
  const c10::cuda::CUDAGuard guard(dev);
  const int64_t m = query.keys.size(0), n = table.keys.size(0), kt = offsets.size(0);
  at::Tensor nbr = at::full({m, kt}, -1, query.order.options());
  if (m == 0 || n == 0 || kt == 0) return nbr;
  // Offsets are small ([K, 3]); the deltas are formed on the host and copied over once.
  const at::Tensor off = offsets.to(at::kCPU).contiguous();
  const int32_t* o = off.data_ptr<int32_t>();
  at::Tensor delta_cpu = at::empty({kt}, off.options().dtype(at::kLong));
  int64_t* d = delta_cpu.data_ptr<int64_t>();
  for (int64_t k = 0; k < kt; ++k) d[k] = wide_delta(o[3 * k], o[3 * k + 1], o[3 * k + 2]);
  const at::Tensor delta = delta_cpu.to(dev);
  const at::Tensor qk = query.keys.contiguous(), qo = query.order.contiguous();
  const at::Tensor tk = table.keys.contiguous(), to = table.order.contiguous();
  const cudaStream_t stream = cuda::current_stream();
  neighbor_kernel<<<cuda::blocks_for(m * kt), cuda::kThreads, 0, stream>>>(
      qk.data_ptr<int64_t>(), qo.data_ptr<int32_t>(), m, tk.data_ptr<int64_t>(), to.data_ptr<int32_t>(), n,
      delta.data_ptr<int64_t>(), kt, nbr.data_ptr<int32_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return nbr;
}

at::Tensor invert_table_cuda(const at::Tensor& nbr_out, int64_t n_in) {
  const c10::cuda::CUDAGuard guard(nbr_out.device());
  const int64_t m = nbr_out.size(0), kt = nbr_out.size(1);
  TORCH_CHECK_VALUE(m <= INT32_MAX, "nbr_out has ", m, " rows; at most ", INT32_MAX, " are supported");
  at::Tensor nbr_in = at::full({n_in, kt}, -1, nbr_out.options());
  if (m == 0 || kt == 0) return nbr_in;
  at::Tensor bad = at::zeros({1}, nbr_out.options());
  const cudaStream_t stream = cuda::current_stream();
  invert_kernel<<<cuda::blocks_for(m * kt), cuda::kThreads, 0, stream>>>(
      nbr_out.data_ptr<int32_t>(), m, kt, n_in, nbr_in.data_ptr<int32_t>(), bad.data_ptr<int32_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  TORCH_CHECK_VALUE(bad.item<int32_t>() == 0, "nbr_out holds an index >= n_in = ", n_in);
  return nbr_in;
}

}  // namespace s3d

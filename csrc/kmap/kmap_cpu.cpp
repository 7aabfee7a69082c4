#include <ATen/Parallel.h>
#include <algorithm>
#include <atomic>
#include <vector>
#include "kmap/kmap.h"
#include "kmap/wide_key.h"

namespace s3d {

SortedCoords sort_coords_cpu(const at::Tensor& coords, int64_t mul) {
  const int64_t n = coords.size(0);
  SortedCoords s;
  s.mul = mul;
  s.keys = at::empty({n}, coords.options().dtype(at::kLong));
  if (n == 0) {
    s.order = at::empty({0}, coords.options());
    return s;
  }
  const int32_t* c = coords.data_ptr<int32_t>();
  int64_t* keys = s.keys.data_ptr<int64_t>();
  int32_t lo[3] = {INT32_MAX, INT32_MAX, INT32_MAX}, hi[3] = {INT32_MIN, INT32_MIN, INT32_MIN};
  int32_t bmin = INT32_MAX, bmax = INT32_MIN;
  for (int64_t i = 0; i < n; ++i) {
    bmin = std::min(bmin, c[4 * i]);
    bmax = std::max(bmax, c[4 * i]);
    for (int a = 0; a < 3; ++a) {
      lo[a] = std::min(lo[a], c[4 * i + 1 + a]);
      hi[a] = std::max(hi[a], c[4 * i + 1 + a]);
    }
  }
  TORCH_CHECK_VALUE(bmin >= 0 && bmax <= kWideBatchMax, "coords[:, 0] (batch) must be in [0, ", kWideBatchMax,
                    "], got [", bmin, ", ", bmax, "]");
  for (int a = 0; a < 3; ++a) {
    s.lo[a] = int64_t(lo[a]) * mul;
    s.hi[a] = int64_t(hi[a]) * mul;
    TORCH_CHECK_VALUE(s.lo[a] >= -kWideHeadroom && s.hi[a] < kWideHeadroom, "coords * ", mul,
                      " must stay in [", -kWideHeadroom, ", ", kWideHeadroom, ") on axis ", a, ", got [",
                      s.lo[a], ", ", s.hi[a], "]");
  }
  bool sorted = true;
  for (int64_t i = 0; i < n; ++i) {
    keys[i] = wide_key(c[4 * i], int64_t(c[4 * i + 1]) * mul, int64_t(c[4 * i + 2]) * mul,
                       int64_t(c[4 * i + 3]) * mul);
    if (i > 0 && keys[i] <= keys[i - 1]) sorted = false;
  }
  if (sorted) {
    s.order = at::arange(n, coords.options());
    return s;
  }
  auto [vals, idx] = at::sort(s.keys);
  s.keys = vals.contiguous();
  s.order = idx.to(at::kInt).contiguous();
  const int64_t* k = s.keys.data_ptr<int64_t>();
  for (int64_t i = 1; i < n && !s.has_duplicates; ++i) s.has_duplicates = k[i] == k[i - 1];
  return s;
}

at::Tensor neighbor_table_cpu(const SortedCoords& query, const SortedCoords& table, const at::Tensor& offsets) {
  const int64_t m = query.keys.size(0), n = table.keys.size(0), kt = offsets.size(0);
  at::Tensor nbr = at::full({m, kt}, -1, query.order.options());
  if (m == 0 || n == 0 || kt == 0) return nbr;
  const int64_t* qk = query.keys.data_ptr<int64_t>();
  const int32_t* qo = query.order.data_ptr<int32_t>();
  const int64_t* tk = table.keys.data_ptr<int64_t>();
  const int32_t* to = table.order.data_ptr<int32_t>();
  const int32_t* off = offsets.data_ptr<int32_t>();
  std::vector<int64_t> delta(kt);
  for (int64_t k = 0; k < kt; ++k) delta[k] = wide_delta(off[3 * k], off[3 * k + 1], off[3 * k + 2]);
  int32_t* out = nbr.data_ptr<int32_t>();
  at::parallel_for(0, m, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t k = 0; k < kt; ++k) {
      const int64_t d = delta[k];
      int64_t j = std::lower_bound(tk, tk + n, qk[begin] + d) - tk;
      for (int64_t p = begin; p < end && j < n; ++p) {
        const int64_t target = qk[p] + d;
        while (j < n && tk[j] < target) ++j;
        if (j < n && tk[j] == target) out[int64_t(qo[p]) * kt + k] = to[j];
      }
    }
  });
  return nbr;
}

at::Tensor invert_table_cpu(const at::Tensor& nbr_out, int64_t n_in) {
  const int64_t m = nbr_out.size(0), kt = nbr_out.size(1);
  at::Tensor nbr_in = at::full({n_in, kt}, -1, nbr_out.options());
  const int32_t* src = nbr_out.data_ptr<int32_t>();
  int32_t* dst = nbr_in.data_ptr<int32_t>();
  std::atomic<bool> bad{false};  // set from several OpenMP threads
  // Each input feeds at most one output per offset, so the writes of different rows never collide.
  at::parallel_for(0, m, 4096, [&](int64_t begin, int64_t end) {
    bool local_bad = false;
    for (int64_t o = begin; o < end; ++o) {
      for (int64_t k = 0; k < kt; ++k) {
        const int32_t i = src[o * kt + k];
        if (i < 0) continue;
        if (i >= n_in) {
          local_bad = true;
          continue;
        }
        dst[int64_t(i) * kt + k] = static_cast<int32_t>(o);
      }
    }
    if (local_bad) bad.store(true, std::memory_order_relaxed);
  });
  TORCH_CHECK_VALUE(!bad.load(), "nbr_out holds an index >= n_in = ", n_in);
  return nbr_in;
}

}  // namespace s3d

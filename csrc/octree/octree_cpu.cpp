// CPU (OpenMP through at::parallel_for) kernels of the octree build (octree.h). Arguments were checked
// by octree.cpp: values are in range here.
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "octree/octree.h"
#include "octree/octree_key.h"

namespace s3d {

namespace {

// Cells of in-range points; the first non-finite row and the first row outside the cube are recorded (checked in
// the same pass: octree.cpp raises naming the row).
template <typename scalar_t>
void cells_kernel(const scalar_t* p, int32_t* out, int64_t n, const double* origin, double size, int64_t depth,
                  int64_t* first_nonfinite, int64_t* first_outside) {
  const double scale = double(int64_t(1) << depth) / size;
  const int32_t last = int32_t((int64_t(1) << depth) - 1);
  std::atomic<int64_t> bad_nf{n}, bad_out{n};
  at::parallel_for(0, n, 8192, [&](int64_t begin, int64_t end) {
    int64_t nf = n, ou = n;
    for (int64_t i = begin; i < end; ++i) {
      for (int a = 0; a < 3; ++a) {
        const double v = double(p[3 * i + a]);
        const double rel = v - origin[a];
        if (!std::isfinite(v)) {
          nf = std::min(nf, i);
          out[3 * i + a] = 0;
          continue;
        }
        if (rel < 0 || rel > size) ou = std::min(ou, i);
        // the cell in the points' own precision, (p - origin) * (2^depth / size), as O-CNN computes it, so float32
        // points land in the same cells as there (the range check above is exact, in double)
        const scalar_t c_s = (p[3 * i + a] - scalar_t(origin[a])) * scalar_t(scale);
        const double c = std::floor(double(c_s));
        out[3 * i + a] = c < 0 ? 0 : (c > last ? last : int32_t(c));  // the max face -> the last cell
      }
    }
    for (int64_t cur = bad_nf.load(); nf < cur && !bad_nf.compare_exchange_weak(cur, nf);) {
    }
    for (int64_t cur = bad_out.load(); ou < cur && !bad_out.compare_exchange_weak(cur, ou);) {
    }
  });
  *first_nonfinite = bad_nf.load() < n ? bad_nf.load() : -1;
  *first_outside = bad_out.load() < n ? bad_out.load() : -1;
}

int bit_width(uint64_t v) {
  int b = 0;
  while (v) {
    ++b;
    v >>= 1;
  }
  return b;
}

// LSD radix sort (8-bit digits) of the shuffled keys through their compact form (b << 3 depth) | morton, which
// has the same order and only 3 depth + bits(batch) significant bits, so a depth-8 octree of one batch item
// takes 3 passes: the sorted keys and the input row of each (stable).
void radix_sort(const int64_t* key, int64_t n, int64_t depth, int64_t batch_size, std::vector<int64_t>& sorted,
                std::vector<int64_t>& perm) {
  const int bits = int(3 * depth) + bit_width(uint64_t(batch_size - 1));
  std::vector<uint64_t> ck(n), ck2(n);
  std::vector<int64_t> idx(n), idx2(n);
  for (int64_t i = 0; i < n; ++i) {
    ck[i] = (uint64_t(key[i] >> octree::kBatchShift) << (3 * depth)) | uint64_t(key[i] & octree::kMortonMask);
    idx[i] = i;
  }
  const int passes = std::max(1, (bits + 7) / 8);
  for (int pass = 0; pass < passes; ++pass) {
    const int shift = 8 * pass;
    int64_t count[257] = {0};
    for (int64_t i = 0; i < n; ++i) ++count[((ck[i] >> shift) & 0xFF) + 1];
    for (int d = 0; d < 256; ++d) count[d + 1] += count[d];
    for (int64_t i = 0; i < n; ++i) {
      const int64_t pos = count[(ck[i] >> shift) & 0xFF]++;
      ck2[pos] = ck[i];
      idx2[pos] = idx[i];
    }
    ck.swap(ck2);
    idx.swap(idx2);
  }
  sorted.resize(n);
  for (int64_t i = 0; i < n; ++i) sorted[i] = key[idx[i]];
  perm = std::move(idx);
}

at::Tensor to_tensor(std::vector<int64_t>&& v) {
  at::Tensor t = at::empty({int64_t(v.size())}, at::kLong);
  std::copy(v.begin(), v.end(), t.data_ptr<int64_t>());
  return t;
}

}  // namespace

at::Tensor octree_points_to_cells_cpu(const at::Tensor& points, const double* origin, double size, int64_t depth,
                                      int64_t* first_nonfinite, int64_t* first_outside) {
  at::Tensor out = at::empty({points.size(0), 3}, points.options().dtype(at::kInt));
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "octree.points_to_cells", [&] {
    cells_kernel<scalar_t>(points.data_ptr<scalar_t>(), out.data_ptr<int32_t>(), points.size(0), origin, size, depth,
                           first_nonfinite, first_outside);
  });
  return out;
}

OctreeLevels octree_build_cpu(const at::Tensor& cells, int64_t depth, int64_t full_depth, int64_t batch_size) {
  using namespace octree;
  const int64_t P = cells.size(0);
  const int32_t* c = cells.data_ptr<int32_t>();
  // 1. leaf keys of the input cells, sorted, made unique
  at::Tensor key_t = at::empty({P}, at::kLong);
  int64_t* key = key_t.data_ptr<int64_t>();
  at::parallel_for(0, P, 8192, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) key[i] = node_key(c[4 * i], c[4 * i + 1], c[4 * i + 2], c[4 * i + 3]);
  });
  std::vector<int64_t> skeys, perm_v;
  radix_sort(key, P, depth, batch_size, skeys, perm_v);
  const int64_t* sk = skeys.data();
  const int64_t* pm = perm_v.data();
  std::vector<std::vector<int64_t>> nonempty(depth + 1);  // sorted keys of the non-empty nodes per depth >= full
  std::vector<int64_t> uniq_of_sorted(P);
  nonempty[depth].reserve(P);
  for (int64_t s = 0; s < P; ++s) {
    if (s == 0 || sk[s] != sk[s - 1]) nonempty[depth].push_back(sk[s]);
    uniq_of_sorted[s] = int64_t(nonempty[depth].size()) - 1;
  }
  for (int64_t d = depth - 1; d >= full_depth; --d) {
    const std::vector<int64_t>& fine = nonempty[d + 1];
    std::vector<int64_t>& coarse = nonempty[d];
    coarse.reserve(fine.size() / 2 + 1);
    for (size_t j = 0; j < fine.size(); ++j) {
      const int64_t pk = parent_key(fine[j]);
      if (coarse.empty() || coarse.back() != pk) coarse.push_back(pk);
    }
  }
  // 2. the nodes of every depth, their children ordinals and coordinates
  OctreeLevels out;
  std::vector<int64_t> leaf_row_of_uniq(nonempty[depth].size(), -1);
  for (int64_t d = 0; d <= depth; ++d) {
    at::Tensor kt;
    if (d <= full_depth) {
      const int64_t per = int64_t(1) << (3 * d);
      kt = at::empty({batch_size * per}, at::kLong);
      int64_t* k = kt.data_ptr<int64_t>();
      at::parallel_for(0, batch_size * per, 16384, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) k[i] = ((i / per) << kBatchShift) | (i % per);
      });
    } else {
      const std::vector<int64_t>& par = nonempty[d - 1];
      const int64_t np = int64_t(par.size());
      kt = at::empty({8 * np}, at::kLong);
      int64_t* k = kt.data_ptr<int64_t>();
      at::parallel_for(0, np, 8192, [&](int64_t begin, int64_t end) {
        for (int64_t j = begin; j < end; ++j) {
          const int64_t base = (par[j] & ~kMortonMask) | ((par[j] & kMortonMask) << 3);
          for (int ch = 0; ch < 8; ++ch) k[8 * j + ch] = base | ch;
        }
      });
    }
    const int64_t n = kt.size(0);
    const int64_t* k = kt.data_ptr<int64_t>();
    at::Tensor ct = at::empty({n}, at::kInt);
    int32_t* ch = ct.data_ptr<int32_t>();
    if (d < full_depth) {
      at::parallel_for(0, n, 16384, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) ch[i] = int32_t(i);
      });
    } else {  // merge the sorted node keys with the sorted non-empty keys
      const std::vector<int64_t>& ne = nonempty[d];
      size_t j = 0;
      for (int64_t i = 0; i < n; ++i) {
        while (j < ne.size() && ne[j] < k[i]) ++j;
        if (j < ne.size() && ne[j] == k[i]) {
          ch[i] = int32_t(j);
          if (d == depth) leaf_row_of_uniq[j] = i;
        } else {
          ch[i] = -1;
        }
      }
    }
    at::Tensor xyz = at::empty({n, 4}, at::kInt);
    int32_t* x = xyz.data_ptr<int32_t>();
    at::parallel_for(0, n, 16384, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) key_coords(k[i], x + 4 * i);
    });
    out.keys.push_back(kt);
    out.children.push_back(ct);
    out.coords.push_back(xyz);
  }
  // 3. the leaf row of every input cell
  std::vector<int64_t> leaf(P);
  for (int64_t s = 0; s < P; ++s) leaf[pm[s]] = leaf_row_of_uniq[uniq_of_sorted[s]];
  out.leaf_of_input = to_tensor(std::move(leaf));
  return out;
}

at::Tensor octree_neighbors_cpu(const at::Tensor& nbr_parent, const at::Tensor& children_parent,
                                const at::Tensor& parent_rows, const at::Tensor& child_pos, int64_t n_child) {
  (void)n_child;
  const int64_t q = parent_rows.size(0);
  at::Tensor out = at::empty({q, 27}, parent_rows.options());
  const int32_t* nb = nbr_parent.data_ptr<int32_t>();
  const int32_t* chp = children_parent.data_ptr<int32_t>();
  const int32_t* pr = parent_rows.data_ptr<int32_t>();
  const int32_t* cp = child_pos.data_ptr<int32_t>();
  int32_t* o = out.data_ptr<int32_t>();
  int pk[8][27], cc[8][27];
  for (int c = 0; c < 8; ++c)
    for (int k = 0; k < 27; ++k) octree::child_neighbor(c, k, &pk[c][k], &cc[c][k]);
  at::parallel_for(0, q, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int32_t* row = nb + int64_t(pr[i]) * 27;
      const int c = cp[i];
      for (int k = 0; k < 27; ++k) {
        const int32_t np = row[pk[c][k]];
        const int32_t ch = np < 0 ? -1 : chp[np];
        o[27 * i + k] = ch < 0 ? -1 : 8 * ch + cc[c][k];
      }
    }
  });
  return out;
}

}  // namespace s3d

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
// the same pass: octree.cpp raises naming the row). Branch-free per coordinate, so the loop vectorises; a chunk
// with a bad coordinate is scanned again for its first bad row.
template <typename scalar_t>
void cells_kernel(const scalar_t* p, int32_t* out, int64_t n, const double* origin, double size, int64_t depth,
                  int64_t* first_nonfinite, int64_t* first_outside) {
  const double scale = double(int64_t(1) << depth) / size;
  const scalar_t last = scalar_t((int64_t(1) << depth) - 1);
  const scalar_t o_s[3] = {scalar_t(origin[0]), scalar_t(origin[1]), scalar_t(origin[2])};
  const scalar_t scale_s = scalar_t(scale);
  std::atomic<int64_t> bad_nf{n}, bad_out{n};
  at::parallel_for(0, n, 8192, [&](int64_t begin, int64_t end) {
    bool any_bad = false;
    for (int64_t i = begin; i < end; ++i) {
      for (int a = 0; a < 3; ++a) {
        const scalar_t v = p[3 * i + a];
        const double rel = double(v) - origin[a];
        // NaN fails both comparisons; +-inf fails one of them
        any_bad |= !(rel >= 0 && rel <= size);
        // the cell floor((p - origin) * (2^depth / size)) in the points' own precision, as O-CNN computes it, so
        // float32 points land in the same cells as there (the range check above is exact, in double); clamped to
        // [0, last] first (the max face -> the last cell; NaN -> 0, the row is reported anyway), where truncation
        // is floor: no libm call, the loop vectorises
        scalar_t c = (v - o_s[a]) * scale_s;
        c = c > last ? last : c;
        c = c >= 0 ? c : scalar_t(0);
        out[3 * i + a] = int32_t(c);
      }
    }
    if (!any_bad) return;
    int64_t nf = n, ou = n;
    for (int64_t i = begin; i < end; ++i) {
      for (int a = 0; a < 3; ++a) {
        const double v = double(p[3 * i + a]);
        if (!std::isfinite(v)) nf = std::min(nf, i);
        else if (v - origin[a] < 0 || v - origin[a] > size) ou = std::min(ou, i);
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

// Set bits of v, inline (the default target has no POPCNT instruction: __builtin_popcountll would call libgcc).
inline int64_t popcount64(uint64_t v) {
  v = v - ((v >> 1) & 0x5555555555555555ull);
  v = (v & 0x3333333333333333ull) + ((v >> 2) & 0x3333333333333333ull);
  v = (v + (v >> 4)) & 0x0F0F0F0F0F0F0F0Full;
  return int64_t((v * 0x0101010101010101ull) >> 56);
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

// The distinct leaf keys of the input cells, ascending (uniq), and each input row's ordinal among them
// (uniq_of_input). Small key spaces (batch_size * 8^depth <= kBitmapBits) mark the cells in a bitmap and read the
// ordinals off prefix popcounts: no sort. Larger ones radix-sort the keys.
constexpr uint64_t kBitmapBits = uint64_t(1) << 27;  // 16 MiB of bits: depth 8 up to 8 batch items

void unique_leaves_bitmap(const int32_t* c, int64_t P, int64_t depth, int64_t batch_size, std::vector<int64_t>& uniq,
                          std::vector<int64_t>& uniq_of_input) {
  using namespace octree;
  const int sh = int(3 * depth);
  const uint64_t low = (uint64_t(1) << sh) - 1;
  const int64_t n_words = int64_t(((uint64_t(batch_size) << sh) + 63) / 64);
  std::vector<uint64_t> bits(n_words, 0);
  std::vector<uint64_t> ck(P);
  for (int64_t i = 0; i < P; ++i) {
    const uint64_t k = (uint64_t(c[4 * i]) << sh) | uint64_t(node_key(0, c[4 * i + 1], c[4 * i + 2], c[4 * i + 3]));
    ck[i] = k;
    bits[k >> 6] |= uint64_t(1) << (k & 63);
  }
  std::vector<int64_t> rank(n_words);
  int64_t total = 0;
  for (int64_t w = 0; w < n_words; ++w) {
    rank[w] = total;
    total += popcount64(bits[w]);
  }
  uniq.resize(total);
  int64_t j = 0;
  for (int64_t w = 0; w < n_words; ++w) {
    for (uint64_t v = bits[w]; v; v &= v - 1) {
      const uint64_t k = uint64_t(w) * 64 + uint64_t(__builtin_ctzll(v));
      uniq[j++] = (int64_t(k >> sh) << kBatchShift) | int64_t(k & low);
    }
  }
  uniq_of_input.resize(P);
  for (int64_t i = 0; i < P; ++i) {
    const uint64_t k = ck[i];
    uniq_of_input[i] = rank[k >> 6] + popcount64(bits[k >> 6] & ((uint64_t(1) << (k & 63)) - 1));
  }
}

void unique_leaves_sorted(const int32_t* c, int64_t P, int64_t depth, int64_t batch_size, std::vector<int64_t>& uniq,
                          std::vector<int64_t>& uniq_of_input) {
  using namespace octree;
  std::vector<int64_t> key(P);
  at::parallel_for(0, P, 8192, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) key[i] = node_key(c[4 * i], c[4 * i + 1], c[4 * i + 2], c[4 * i + 3]);
  });
  std::vector<int64_t> sk, pm;
  radix_sort(key.data(), P, depth, batch_size, sk, pm);
  uniq.clear();
  uniq.reserve(P);
  uniq_of_input.resize(P);
  for (int64_t s = 0; s < P; ++s) {
    if (s == 0 || sk[s] != sk[s - 1]) uniq.push_back(sk[s]);
    uniq_of_input[pm[s]] = int64_t(uniq.size()) - 1;
  }
}

at::Tensor to_tensor(std::vector<int64_t>&& v) {
  at::Tensor t = at::empty({int64_t(v.size())}, at::kLong);
  std::copy(v.begin(), v.end(), t.data_ptr<int64_t>());
  return t;
}

}  // namespace

int64_t first_row_outside_cpu(const at::Tensor& t, int64_t lo, int64_t hi) {
  const int64_t n = t.size(0);
  if (n == 0) return -1;
  const int64_t w = t.numel() / n;
  const int32_t* v = t.data_ptr<int32_t>();
  for (int64_t i = 0; i < n * w; ++i)
    if (v[i] < lo || v[i] > hi) return i / w;
  return -1;
}

void cells_first_bad_cpu(const at::Tensor& cells, int64_t batch_size, int64_t side, int64_t* bad_b,
                         int64_t* bad_xyz) {
  const int64_t P = cells.size(0);
  const int32_t* c = cells.data_ptr<int32_t>();
  *bad_b = *bad_xyz = -1;
  bool any = false;  // a branch-free pass first (it vectorises); the rows only when something is out of range
  for (int64_t i = 0; i < P; ++i)
    any |= (uint64_t(int64_t(c[4 * i])) >= uint64_t(batch_size)) | (uint64_t(int64_t(c[4 * i + 1])) >= uint64_t(side)) |
           (uint64_t(int64_t(c[4 * i + 2])) >= uint64_t(side)) | (uint64_t(int64_t(c[4 * i + 3])) >= uint64_t(side));
  if (!any) return;
  for (int64_t i = 0; i < P && *bad_b < 0; ++i)
    if (c[4 * i] < 0 || c[4 * i] >= batch_size) *bad_b = i;
  for (int64_t i = 0; i < P && *bad_xyz < 0; ++i)
    for (int a = 1; a < 4; ++a)
      if (c[4 * i + a] < 0 || c[4 * i + a] >= side) *bad_xyz = i;
}

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
  // 1. the distinct leaf keys of the input cells (sorted) and each cell's ordinal among them
  std::vector<std::vector<int64_t>> nonempty(depth + 1);  // sorted keys of the non-empty nodes per depth >= full
  std::vector<int64_t> uniq_of_input;
  if ((uint64_t(batch_size) << (3 * depth)) <= kBitmapBits)
    unique_leaves_bitmap(c, P, depth, batch_size, nonempty[depth], uniq_of_input);
  else
    unique_leaves_sorted(c, P, depth, batch_size, nonempty[depth], uniq_of_input);
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
  for (int64_t i = 0; i < P; ++i) leaf[i] = leaf_row_of_uniq[uniq_of_input[i]];
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
    int32_t base[27];  // 8 * (children ordinal) of the current parent's 27 neighbours, or -1
    int32_t cur = -1;
    for (int64_t i = begin; i < end; ++i) {
      if (pr[i] != cur || i == begin) {  // rows come in runs of one parent: look its neighbours up once
        cur = pr[i];
        const int32_t* row = nb + int64_t(cur) * 27;
        for (int k = 0; k < 27; ++k) {
          const int32_t ch = row[k] < 0 ? -1 : chp[row[k]];
          base[k] = ch < 0 ? -1 : 8 * ch;
        }
      }
      const int c = cp[i];
      for (int k = 0; k < 27; ++k) {
        const int32_t b = base[pk[c][k]];
        o[27 * i + k] = b < 0 ? -1 : b + cc[c][k];
      }
    }
  });
  return out;
}

}  // namespace s3d

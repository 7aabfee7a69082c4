// Kernel maps as neighbor tables, built by merging sorted coordinate keys.
//
// sort_coords packs (b, x*mul, y*mul, z*mul) into "wide" int64 keys (batch 11 bits, 17 bits per
// axis with headroom, so adding a kernel offset to a key equals packing the offset coordinate)
// and sorts them (an already sorted set, the common case, costs one pass).
//
// neighbor_table(query, table, offsets): nbr[m, k] = row of table holding query[m]*mul + offsets[k],
// or -1. For one offset the shifted query keys are ascending, so one forward merge with the
// table's sorted keys finds every match: sequential memory access, no hashing.
//
// invert(nbr_out, n_in): the same pairs seen from the inputs, nbr_in[i, k] = o where nbr_out[o, k] = i.
#pragma once
#include <torch/extension.h>
#include <array>

namespace s3d {

struct SortedCoords {
  at::Tensor keys;   // int64 [N], ascending
  at::Tensor order;  // int32 [N], row of coords holding keys[j]
  int64_t mul = 1;
  std::array<int64_t, 3> lo{0, 0, 0}, hi{0, 0, 0};  // per-axis range of coords * mul
  bool has_duplicates = false;
};

SortedCoords sort_coords(const at::Tensor& coords, int64_t mul);
at::Tensor neighbor_table(const SortedCoords& query, const SortedCoords& table, const at::Tensor& offsets);
at::Tensor invert_table(const at::Tensor& nbr_out, int64_t n_in);

SortedCoords sort_coords_cpu(const at::Tensor& coords, int64_t mul);
at::Tensor neighbor_table_cpu(const SortedCoords& query, const SortedCoords& table, const at::Tensor& offsets);
at::Tensor invert_table_cpu(const at::Tensor& nbr_out, int64_t n_in);
#ifdef WITH_CUDA
SortedCoords sort_coords_cuda(const at::Tensor& coords, int64_t mul);
at::Tensor neighbor_table_cuda(const SortedCoords& query, const SortedCoords& table, const at::Tensor& offsets);
at::Tensor invert_table_cuda(const at::Tensor& nbr_out, int64_t n_in);
#endif

}  // namespace s3d

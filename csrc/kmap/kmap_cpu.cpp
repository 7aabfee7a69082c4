#include <ATen/Parallel.h>
#include "kmap/kmap.h"

namespace s3d {

at::Tensor neighbor_table_cpu(const at::Tensor& query, const CoordHashTable& table, const at::Tensor& offsets,
                              int64_t mul, int64_t div) {
  const int64_t m = query.size(0), k = offsets.size(0);
  at::Tensor nbr = at::empty({m, k}, query.options().dtype(at::kInt));
  if (m == 0 || k == 0) return nbr;
  const int32_t* q = query.data_ptr<int32_t>();
  const int32_t* off = offsets.data_ptr<int32_t>();
  const int64_t* keys = table.keys.data_ptr<int64_t>();
  const int32_t* values = table.values.data_ptr<int32_t>();
  const int64_t mask = table.keys.size(0) - 1;
  int32_t* out = nbr.data_ptr<int32_t>();
  const int32_t mu = static_cast<int32_t>(mul), dv = static_cast<int32_t>(div);
  at::parallel_for(0, m, 1024, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int32_t b = q[4 * i];
      const int32_t x = q[4 * i + 1] * mu, y = q[4 * i + 2] * mu, z = q[4 * i + 3] * mu;
      int32_t* row = out + i * k;
      for (int64_t j = 0; j < k; ++j) {
        int32_t tx = x + off[3 * j], ty = y + off[3 * j + 1], tz = z + off[3 * j + 2];
        if (dv > 1) {
          if (!divides(tx, dv) || !divides(ty, dv) || !divides(tz, dv)) {
            row[j] = -1;
            continue;
          }
          tx /= dv;  // exact: divisible
          ty /= dv;
          tz /= dv;
        }
        row[j] = coord_in_range(b, tx, ty, tz) ? probe(keys, values, mask, pack_coord(b, tx, ty, tz)) : -1;
      }
    }
  });
  return nbr;
}

}  // namespace s3d

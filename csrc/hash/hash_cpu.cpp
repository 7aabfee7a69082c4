#include <ATen/Parallel.h>
#include "hash/hash.h"

namespace s3d {

CoordHashTable build_hash_table_cpu(const at::Tensor& coords) {
  const int64_t n = coords.size(0);
  int64_t capacity = 16;
  while (capacity < 2 * n) capacity <<= 1;
  CoordHashTable t;
  t.keys = at::full({capacity}, kEmptyKey, coords.options().dtype(at::kLong));
  t.values = at::full({capacity}, -1, coords.options().dtype(at::kInt));
  t.size = n;
  int64_t* keys = t.keys.data_ptr<int64_t>();
  int32_t* values = t.values.data_ptr<int32_t>();
  const int32_t* c = coords.data_ptr<int32_t>();
  const int64_t mask = capacity - 1;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t b = c[4 * i], x = c[4 * i + 1], y = c[4 * i + 2], z = c[4 * i + 3];
    TORCH_CHECK_VALUE(coord_in_range(b, x, y, z), "coords row ", i, " = (", b, ", ", x, ", ", y, ", ", z,
                      ") is out of range: batch must be in [0, ", kBatchMax, "] and x, y, z in [",
                      kCoordMin, ", ", kCoordMax, "]");
    const int64_t key = pack_coord(b, x, y, z);
    int64_t slot = static_cast<int64_t>(hash_key(key)) & mask;
    while (keys[slot] != kEmptyKey) {
      TORCH_CHECK_VALUE(keys[slot] != key, "coords has duplicate rows: row ", i, " = (", b, ", ", x, ", ", y,
                        ", ", z, ") repeats row ", values[slot]);
      slot = (slot + 1) & mask;
    }
    keys[slot] = key;
    values[slot] = static_cast<int32_t>(i);
  }
  return t;
}

at::Tensor lookup_cpu(const CoordHashTable& table, const at::Tensor& coords) {
  const int64_t m = coords.size(0);
  at::Tensor out = at::empty({m}, coords.options().dtype(at::kInt));
  const int64_t* keys = table.keys.data_ptr<int64_t>();
  const int32_t* values = table.values.data_ptr<int32_t>();
  const int64_t mask = table.keys.size(0) - 1;
  const int32_t* c = coords.data_ptr<int32_t>();
  int32_t* o = out.data_ptr<int32_t>();
  at::parallel_for(0, m, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int32_t b = c[4 * i], x = c[4 * i + 1], y = c[4 * i + 2], z = c[4 * i + 3];
      o[i] = coord_in_range(b, x, y, z) ? probe(keys, values, mask, pack_coord(b, x, y, z)) : -1;
    }
  });
  return out;
}

}  // namespace s3d

#pragma once
#include "common/coord_pack.h"

namespace s3d {
// Index stored for `key` in an open-addressing table of capacity mask + 1 (a power of two),
// or -1 when absent. Linear probing visits each slot at most once, so a table with no empty
// slot (which the builders never make: capacity >= 2n) still ends with "not found".
S3D_HD inline int32_t probe(const int64_t* keys, const int32_t* values, int64_t mask, int64_t key) {
  int64_t slot = static_cast<int64_t>(hash_key(key)) & mask;
  for (int64_t probes = 0; probes <= mask; ++probes) {
    const int64_t k = keys[slot];
    if (k == key) return values[slot];
    if (k == kEmptyKey) return -1;
    slot = (slot + 1) & mask;
  }
  return -1;
}
}  // namespace s3d

#pragma once
#include "common/coord_pack.h"

namespace s3d {
S3D_HD inline int32_t probe(const int64_t* keys, const int32_t* values, int64_t mask, int64_t key) {
  int64_t slot = static_cast<int64_t>(hash_key(key)) & mask;
  while (true) {
    const int64_t k = keys[slot];
    if (k == key) return values[slot];
    if (k == kEmptyKey) return -1;
    slot = (slot + 1) & mask;
  }
}
}  // namespace s3d

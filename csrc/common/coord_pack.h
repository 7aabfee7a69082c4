// The coordinate limits of sparse3d (the one statement of them: bindings.cpp exports them as
// _C.limits, sparse3d/coords.py reads them from there) and the packing of (batch, x, y, z) into
// one int64 key: 15 bits of batch, 16 bits per axis (x, y, z stored with an offset of 32768).
// Keys are >= 0, so -1 marks an empty hash slot. The batch index is limited to [0, kBatchMax]
// = [0, 2047], below what the key could hold, because the kernel maps' wide keys
// (kmap/wide_key.h) keep 11 bits of batch; every op checks the same limits.
#pragma once
#include <cstdint>

#include "common/host_device.h"  // S3D_HD: host and device (nvcc) versions of the helpers below

namespace s3d {

constexpr int32_t kCoordMin = -32768;
constexpr int32_t kCoordMax = 32767;
constexpr int32_t kBatchMax = 2047;  // 11 bits: the kernel maps' wide keys (kmap/wide_key.h)
constexpr int64_t kEmptyKey = -1;

S3D_HD inline bool coord_in_range(int32_t b, int32_t x, int32_t y, int32_t z) {
  return b >= 0 && b <= kBatchMax && x >= kCoordMin && x <= kCoordMax && y >= kCoordMin &&
         y <= kCoordMax && z >= kCoordMin && z <= kCoordMax;
}

S3D_HD inline int64_t pack_coord(int32_t b, int32_t x, int32_t y, int32_t z) {
  return (static_cast<int64_t>(b) << 48) | (static_cast<int64_t>(x - kCoordMin) << 32) |
         (static_cast<int64_t>(y - kCoordMin) << 16) | static_cast<int64_t>(z - kCoordMin);
}

S3D_HD inline uint64_t hash_key(int64_t key) {  // splitmix64 finalizer
  uint64_t h = static_cast<uint64_t>(key);
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return h;
}

// Floor division and divisibility for possibly negative coordinates.
S3D_HD inline bool divides(int32_t v, int32_t d) { return ((v % d) + d) % d == 0; }

}  // namespace s3d

// Wide coordinate keys for sorted merges: 11 bits of batch, 17 bits per axis stored with an
// offset of 2^16. Coordinates are validated to [kCoordMin, kCoordMax] = [-32768, 32767] and batch to
// [0, kBatchMax] = [0, 2047] (common/coord_pack.h), so a
// coordinate times a small stride plus a kernel offset still fits its field, and
// wide(b, x + dx, y + dy, z + dz) == wide(b, x, y, z) + wide_delta(dx, dy, dz).
#pragma once
#include <cstdint>

#include "common/coord_pack.h"
#include "common/host_device.h"

namespace s3d {

constexpr int kWideBits = 17;
constexpr int64_t kWideOffset = int64_t(1) << 16;
constexpr int64_t kWideFieldMax = (int64_t(1) << kWideBits) - 1;
constexpr int64_t kWideBatchMax = kBatchMax;
static_assert(kWideBatchMax < (int64_t(1) << (63 - 3 * kWideBits)), "the batch field of a wide key is 11 bits");
constexpr int64_t kWideHeadroom = kWideOffset - 1024;  // |coords * mul| bound; the rest is for offsets

S3D_HD inline int64_t wide_key(int64_t b, int64_t x, int64_t y, int64_t z) {
  return (b << (3 * kWideBits)) | ((x + kWideOffset) << (2 * kWideBits)) | ((y + kWideOffset) << kWideBits) |
         (z + kWideOffset);
}

S3D_HD inline int64_t wide_delta(int64_t dx, int64_t dy, int64_t dz) {
  return dx * (int64_t(1) << (2 * kWideBits)) + dy * (int64_t(1) << kWideBits) + dz;
}

}  // namespace s3d

// Shuffled (Morton) keys of octree nodes, shared by the CPU and CUDA builds.
//
// A node at depth d with integer cell (x, y, z) in [0, 2^d)^3 of batch item b has the key
//   key = (b << 48) | morton_d(x, y, z),   morton_d = sum_i (x_i << (3i + 2)) | (y_i << (3i + 1)) | (z_i << 3i)
// (x_i: bit i of x), so x is the most significant bit of each 3-bit group: the child position of a node
// within its parent is c = (x & 1) << 2 | (y & 1) << 1 | (z & 1), the order of a 2x2x2 kernel's offsets
// (sparse3d/kernel.py: x slowest). The parent's key is (b << 48) | (morton >> 3). Sorting keys sorts by
// batch item, then along the Z-order curve; the 8 children of a node are consecutive.
#pragma once
#include <cstdint>

#include "common/coord_pack.h"
#include "common/host_device.h"

namespace s3d {
namespace octree {

constexpr int kMaxDepth = 15;  // cells < 2^15 = kCoordMax + 1, so every depth converts to SparseTensor coords
constexpr int kBatchShift = 48;
constexpr int64_t kMortonMask = (int64_t(1) << kBatchShift) - 1;

// Spreads the low 16 bits of v so that bit i lands on bit 3i.
S3D_HD inline uint64_t spread3(uint64_t v) {
  v &= 0xFFFFull;
  v = (v | (v << 16)) & 0x0000FF0000FFull;
  v = (v | (v << 8)) & 0x00F00F00F00Full;
  v = (v | (v << 4)) & 0x0C30C30C30C3ull;
  v = (v | (v << 2)) & 0x249249249249ull;
  return v;
}

// Inverse of spread3: bits 3i -> bit i.
S3D_HD inline uint64_t compact3(uint64_t v) {
  v &= 0x249249249249ull;
  v = (v | (v >> 2)) & 0x0C30C30C30C3ull;
  v = (v | (v >> 4)) & 0x00F00F00F00Full;
  v = (v | (v >> 8)) & 0x0000FF0000FFull;
  v = (v | (v >> 16)) & 0xFFFFull;
  return v;
}

S3D_HD inline int64_t node_key(int64_t b, int64_t x, int64_t y, int64_t z) {
  const uint64_t m = (spread3(uint64_t(x)) << 2) | (spread3(uint64_t(y)) << 1) | spread3(uint64_t(z));
  return (b << kBatchShift) | int64_t(m);
}

S3D_HD inline void key_coords(int64_t key, int32_t* out4) {
  const uint64_t m = uint64_t(key & kMortonMask);
  out4[0] = int32_t(key >> kBatchShift);
  out4[1] = int32_t(compact3(m >> 2));
  out4[2] = int32_t(compact3(m >> 1));
  out4[3] = int32_t(compact3(m));
}

S3D_HD inline int64_t parent_key(int64_t key) {
  return (key & ~kMortonMask) | ((key & kMortonMask) >> 3);
}

// The neighbour at offset index k (x slowest, (ox, oy, oz) = k / 9 - 1, k / 3 % 3 - 1, k % 3 - 1) of the
// child at position c (0..7) of a parent, seen from the parent's depth: the parent-level offset index
// (into a 3x3x3 table of the parent depth) and the child position within that neighbouring parent.
S3D_HD inline void child_neighbor(int c, int k, int* parent_k, int* child_c) {
  const int o[3] = {k / 9 - 1, (k / 3) % 3 - 1, k % 3 - 1};
  const int cb[3] = {(c >> 2) & 1, (c >> 1) & 1, c & 1};
  int pk = 0, cc = 0;
  for (int a = 0; a < 3; ++a) {
    const int t = cb[a] + o[a];      // in [-1, 2]
    const int p = (t + 2) / 2 - 1;   // floor(t / 2) in [-1, 1]
    pk = pk * 3 + (p + 1);
    cc = (cc << 1) | (t - 2 * p);
  }
  *parent_k = pk;
  *child_c = cc;
}

}  // namespace octree
}  // namespace s3d

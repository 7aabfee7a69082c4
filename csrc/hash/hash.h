// Open-addressing hash table (linear probing) from packed coordinates to row indices.
#pragma once
#include <torch/extension.h>

namespace s3d {

struct CoordHashTable {
  at::Tensor keys;    // int64 [capacity], -1 = empty
  at::Tensor values;  // int32 [capacity]
  int64_t size = 0;   // number of stored coordinates

  // Looks up coords int32 [M, 4]; returns int32 [M], -1 where absent.
  at::Tensor lookup(const at::Tensor& coords) const;
};

// Builds a table over coords int32 [N, 4] (b, x, y, z); row i maps to i. Raises ValueError
// naming the first duplicate or out-of-range coordinate.
CoordHashTable build_hash_table(const at::Tensor& coords);

CoordHashTable build_hash_table_cpu(const at::Tensor& coords);
at::Tensor lookup_cpu(const CoordHashTable& table, const at::Tensor& coords);
#ifdef WITH_CUDA
CoordHashTable build_hash_table_cuda(const at::Tensor& coords);
at::Tensor lookup_cuda(const CoordHashTable& table, const at::Tensor& coords);
#endif

}  // namespace s3d

#include "hash/hash_probe.h"  // probe(): index stored for a key, or -1

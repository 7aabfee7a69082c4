// Kernel maps as neighbor tables. For query row m and kernel offset k,
//   target = q[m].xyz * mul + offsets[k];  if div > 1: target must be divisible by div,
//   target /= div;  nbr[m, k] = row of (q[m].b, target) in `table`, or -1.
// One function covers every conv kind (see sparse3d/coords.py for how each uses it):
//   submanifold / strided (output-stationary): query = outputs, mul = stride, div = 1
//   strided, input-stationary / generative:    query = inputs,  mul = 1, div = stride, offsets negated
#pragma once
#include <torch/extension.h>
#include "hash/hash.h"

namespace s3d {

// query int32 [M, 4], offsets int32 [K, 3] -> int32 [M, K]
at::Tensor neighbor_table(const at::Tensor& query, const CoordHashTable& table, const at::Tensor& offsets,
                          int64_t mul, int64_t div);

at::Tensor neighbor_table_cpu(const at::Tensor& query, const CoordHashTable& table, const at::Tensor& offsets,
                              int64_t mul, int64_t div);
#ifdef WITH_CUDA
at::Tensor neighbor_table_cuda(const at::Tensor& query, const CoordHashTable& table, const at::Tensor& offsets,
                               int64_t mul, int64_t div);
#endif

}  // namespace s3d

// CUDA coordinate hash table: the same open-addressing layout as hash_cpu.cpp (keys int64
// [capacity] with -1 = empty, values int32, linear probing from hash_key(key) & mask), filled
// by one thread per coordinate that claims a slot with a 64-bit atomicCAS. Slot order may
// differ from the CPU table (threads race for slots) but every lookup gives the same answer.
//
// Errors (out-of-range or duplicate coordinates) are recorded on the device as the smallest
// offending row (atomicMin); the host reads the two flags once and, on error, re-runs the
// CPU build on a host copy so the ValueError names exactly the row the CPU path would.
#include <climits>
#include "common/checks.h"
#include "common/cuda_launch.cuh"
#include "hash/hash.h"

namespace s3d {
namespace {

__global__ void insert_kernel(const int32_t* __restrict__ c, int64_t n, unsigned long long* keys, int32_t* values,
                              int64_t mask, int32_t* flags /* [0]: first bad range row, [1]: first duplicate */) {
  S3D_GRID_STRIDE(i, n) {
    const int32_t b = c[4 * i], x = c[4 * i + 1], y = c[4 * i + 2], z = c[4 * i + 3];
    if (!coord_in_range(b, x, y, z)) {
      atomicMin(&flags[0], static_cast<int32_t>(i));
      continue;
    }
    const unsigned long long key = static_cast<unsigned long long>(pack_coord(b, x, y, z));
    const unsigned long long empty = static_cast<unsigned long long>(kEmptyKey);
    int64_t slot = static_cast<int64_t>(hash_key(static_cast<int64_t>(key))) & mask;
    // At most capacity >= 2n probes: the table is never more than half full.
    for (int64_t probes = 0; probes <= mask; ++probes) {
      const unsigned long long prev = atomicCAS(&keys[slot], empty, key);
      if (prev == empty) {
        values[slot] = static_cast<int32_t>(i);
        break;
      }
      if (prev == key) {
        atomicMin(&flags[1], static_cast<int32_t>(i));
        break;
      }
      slot = (slot + 1) & mask;
    }
  }
}

__global__ void lookup_kernel(const int32_t* __restrict__ c, int64_t m, const int64_t* __restrict__ keys,
                              const int32_t* __restrict__ values, int64_t mask, int32_t* __restrict__ out) {
  S3D_GRID_STRIDE(i, m) {
    const int32_t b = c[4 * i], x = c[4 * i + 1], y = c[4 * i + 2], z = c[4 * i + 3];
    out[i] = coord_in_range(b, x, y, z) ? probe(keys, values, mask, pack_coord(b, x, y, z)) : -1;
  }
}

}  // namespace

CoordHashTable build_hash_table_cuda(const at::Tensor& coords) {
  const c10::cuda::CUDAGuard guard(coords.device());
  const int64_t n = coords.size(0);
  TORCH_CHECK_VALUE(n < INT32_MAX, "coords has ", n, " rows; at most ", INT32_MAX - 1, " are supported");
  int64_t capacity = 16;
  while (capacity < 2 * n) capacity <<= 1;
  CoordHashTable t;
  t.keys = at::full({capacity}, kEmptyKey, coords.options().dtype(at::kLong));
  t.values = at::full({capacity}, -1, coords.options().dtype(at::kInt));
  t.size = n;
  if (n == 0) return t;
  at::Tensor flags = at::full({2}, INT32_MAX, coords.options().dtype(at::kInt));
  const cudaStream_t stream = cuda::current_stream();
  insert_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, stream>>>(
      coords.data_ptr<int32_t>(), n, reinterpret_cast<unsigned long long*>(t.keys.data_ptr<int64_t>()),
      t.values.data_ptr<int32_t>(), capacity - 1, flags.data_ptr<int32_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  const at::Tensor f = flags.cpu();
  const int32_t bad_range = f.data_ptr<int32_t>()[0], dup = f.data_ptr<int32_t>()[1];
  if (bad_range != INT32_MAX || dup != INT32_MAX) {
    build_hash_table_cpu(coords.cpu());  // raises the CPU path's ValueError (first offending row)
    TORCH_CHECK_VALUE(bad_range == INT32_MAX, "coords row ", bad_range, " is out of range: batch must be in [0, ",
                      kBatchMax, "] and x, y, z in [", kCoordMin, ", ", kCoordMax, "]");
    TORCH_CHECK_VALUE(false, "coords has duplicate rows: row ", dup, " repeats an earlier row");
  }
  return t;
}

at::Tensor lookup_cuda(const CoordHashTable& table, const at::Tensor& coords) {
  TORCH_CHECK_VALUE(table.keys.defined() && table.values.defined() && table.keys.is_cuda() &&
                        table.values.device() == table.keys.device(),
                    "hash table is not a CUDA table");
  const int64_t capacity = table.keys.size(0);
  TORCH_CHECK_VALUE(capacity > 0 && (capacity & (capacity - 1)) == 0 && table.values.size(0) == capacity,
                    "hash table has an invalid capacity ", capacity);
  const c10::cuda::CUDAGuard guard(coords.device());
  const int64_t m = coords.size(0);
  at::Tensor out = at::empty({m}, coords.options().dtype(at::kInt));
  if (m == 0) return out;
  const at::Tensor keys = table.keys.contiguous(), values = table.values.contiguous();
  const cudaStream_t stream = cuda::current_stream();
  lookup_kernel<<<cuda::blocks_for(m), cuda::kThreads, 0, stream>>>(
      coords.data_ptr<int32_t>(), m, keys.data_ptr<int64_t>(), values.data_ptr<int32_t>(), capacity - 1,
      out.data_ptr<int32_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace s3d

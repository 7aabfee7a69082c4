// Launch helpers shared by the CUDA sources (nvcc only).
#pragma once
// c10/cuda headers only: ATen/cuda/CUDAContext.h pulls in cuBLAS/cuSPARSE headers, which the
// compile-only check machine lacks. c10::cuda::getCurrentCUDAStream() is the function that
// at::cuda::getCurrentCUDAStream() names.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <algorithm>
#include <cstdint>

namespace s3d {
namespace cuda {

constexpr int kThreads = 256;

inline cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

// Blocks for a grid-stride loop over n items (kernels loop, so the grid may be capped).
inline unsigned int blocks_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned int>(std::max<int64_t>(1, std::min<int64_t>(b, int64_t(1) << 20)));
}

#define S3D_GRID_STRIDE(i, n)                                                                         \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += int64_t(blockDim.x) * gridDim.x)

}  // namespace cuda
}  // namespace s3d
